// The official OpenAI Node.js SDK against the gateway's OpenAI drop-in: only baseURL and the key
// differ from code written for OpenAI. Prints one JSON object (tests/sdk_openai.rs).
import OpenAI from "openai";

const baseURL = process.env.GATEWAY + "/openai/v1";
const client = new OpenAI({ baseURL, apiKey: process.env.KEY, maxRetries: 0 });
const result = {};
const hex = (buffer) => Buffer.from(buffer).toString("hex");
const error = (e) => ({ class: e.constructor.name, status: e.status, code: e.code, param: e.param, message: e.message });

const audio = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "Hello from the SDK." });
result.audio = hex(await audio.arrayBuffer());
const mapped = await client.audio.speech.create({ model: "tts-1", voice: "nova", input: "Mapped voice.", response_format: "wav" });
result.mapped = { provider: mapped.headers.get("x-speech-provider"), head: Buffer.from(await mapped.arrayBuffer()).subarray(0, 4).toString("latin1") };

for (const [name, body] of Object.entries({
  empty_input: { model: "tts-1", voice: "alloy", input: "" },
  unknown_model: { model: "no-such-model", voice: "alloy", input: "x" },
})) {
  try {
    await client.audio.speech.create(body);
    result[name] = "no error";
  } catch (e) {
    result[name] = error(e);
  }
}
try {
  await new OpenAI({ baseURL, apiKey: "sg_wrong", maxRetries: 0 }).audio.speech.create({ model: "tts-1", voice: "alloy", input: "x" });
} catch (e) {
  result.unauthorized = error(e);
}
result.models = [];
for await (const model of client.models.list()) result.models.push(model.id);
console.log(JSON.stringify(result));
