// The official Speechbase SDK (@speech-sdk/core) making plain speech through speechgate —
// generateSpeech (the whole clip) and streamSpeech (the provider's stream) — with only the
// gateway client's base URL and key changed. Run by tests/sdk_speechbase.rs; prints ONE JSON line.
//
// Environment:
//   GATEWAY  the gateway's origin (the script appends /v1, as the SDK's default base URL has it)
//   KEY      a gateway API key
//   CASES    {"generate": {name: options}, "stream": {name: options}}: generateSpeech and
//            streamSpeech options; a string `model` is routed through the gateway client, and
//            `key` replaces the API key for that case
//
// Output: {"sdk":{name,version}, "generate":{name:result}, "stream":{name:result}}, each result
//         {ok, mediaType, bytes, head (first 4 bytes, hex), durationMs, sent:{path, body, status}}
//         or {ok:false, error, sent}.

import { readFileSync } from "node:fs";
import { generateSpeech, streamSpeech } from "@speech-sdk/core";
import { createSpeechGateway } from "@speech-sdk/core/providers";
import { describeError } from "./errors.mjs";

const gateway = process.env.GATEWAY.replace(/\/+$/, "");
const cases = JSON.parse(process.env.CASES);
delete process.env.SPEECHBASE_API_KEY;
delete process.env.SPEECH_GATEWAY_API_KEY;
const sdkPackage = JSON.parse(
  readFileSync(new URL("./node_modules/@speech-sdk/core/package.json", import.meta.url), "utf8"),
);

/** A gateway client that records the last request it sent and the status it got. */
function client(apiKey) {
  const sent = {};
  const fetchFn = async (input, init = {}) => {
    sent.path = new URL(String(input)).pathname;
    sent.body = typeof init.body === "string" ? JSON.parse(init.body) : null;
    const response = await fetch(input, init);
    sent.status = response.status;
    return response;
  };
  return { speechGateway: createSpeechGateway({ apiKey, baseURL: `${gateway}/v1`, fetch: fetchFn }), sent };
}

const hex = (bytes) => Buffer.from(bytes.subarray(0, 4)).toString("hex");

async function run(kind, { key, ...options }) {
  const { speechGateway, sent } = client(key ?? process.env.KEY);
  const routed = { ...options, model: speechGateway(options.model), maxRetries: 0 };
  try {
    if (kind === "generate") {
      const result = await generateSpeech(routed);
      const bytes = result.audio.uint8Array;
      return {
        ok: true,
        mediaType: result.audio.mediaType,
        bytes: bytes.length,
        head: hex(bytes),
        durationMs: result.metadata?.audioDurationMs ?? null,
        sent,
      };
    }
    const result = await streamSpeech(routed);
    const chunks = [];
    for await (const chunk of result.audio) chunks.push(Buffer.from(chunk));
    const bytes = Buffer.concat(chunks);
    return { ok: true, mediaType: result.mediaType ?? null, bytes: bytes.length, chunks: chunks.length, head: hex(bytes), sent };
  } catch (e) {
    return { ok: false, error: describeError(e), sent };
  }
}

const out = { sdk: { name: sdkPackage.name, version: sdkPackage.version }, generate: {}, stream: {} };
for (const [name, options] of Object.entries(cases.generate ?? {})) out.generate[name] = await run("generate", options);
for (const [name, options] of Object.entries(cases.stream ?? {})) out.stream[name] = await run("stream", options);
process.stdout.write(`${JSON.stringify(out)}\n`);
