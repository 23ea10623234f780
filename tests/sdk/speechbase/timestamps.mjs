// The official Speechbase SDK (@speech-sdk/core, pinned in package.json) asking speechgate for word
// timestamps, with only the gateway client's base URL and key changed: `generateSpeech` and
// `generateConversation` with `timestamps: true`. Run by tests/sdk_speechbase.rs; prints ONE JSON
// line on stdout describing what the SDK sent, what the gateway answered and what the SDK returned.
//
// Environment:
//   GATEWAY  the gateway's origin, e.g. http://127.0.0.1:PORT (the script appends /v1, as the SDK's
//            own default base URL, https://api.speechbase.ai/v1, carries it)
//   KEY      a gateway API key
//   CASES    JSON object {"speech": {name: case}, "conversation": {name: case}}. A speech case is
//            generateSpeech's options ({"model":"openai/tts-1","voice":"alloy","text":"..."} plus any
//            other option); a conversation case is generateConversation's options ({"turns": [...],
//            "gapMs": ...}). Models (a case's and its turns') are routed through the gateway
//            client. `timestamps: true` is added to every case, and `maxRetries: 0`. A case's
//            `extraBody` object is not an SDK option: it is merged into the body the SDK built
//            (through the SDK's documented `fetch` option), for what the SDK cannot ask for itself
//            (`"timestamps": "native"`, `"split": true`).
//
// Output: {"sdk":{name,version},
//          "speech":{name: Case}, "conversation":{name: Case}} where Case is
//   {ok:true, resultKeys, timestamps, timestampKeys, warnings, mediaType, bytes, durationMs,
//    sent, attempts} | {ok:false, error:{name,status,code,message,problem,issues}, sent, attempts}
// and `sent` is the last request: {method, path, headers (authorization as "Bearer <KEY>"), body,
// status, contentType, response} with `response` the gateway's JSON answer as it came over the
// wire, its base64 audio replaced by its length (so the test can tell what the SDK dropped).

import { readFileSync } from "node:fs";
import { generateConversation, generateSpeech } from "@speech-sdk/core";
import { createSpeechGateway } from "@speech-sdk/core/providers";
import { describeError } from "./errors.mjs";

const env = (name) => {
  const value = process.env[name];
  if (value == null || value === "") throw new Error(`timestamps.mjs: set ${name}`);
  return value;
};

const gateway = env("GATEWAY").replace(/\/+$/, "");
const key = env("KEY");
const cases = JSON.parse(env("CASES"));

// The SDK reads these when `apiKey` is absent; the test passes the key explicitly, so make sure a
// developer's real Speechbase key in the environment can never be what authenticates.
delete process.env.SPEECHBASE_API_KEY;
delete process.env.SPEECH_GATEWAY_API_KEY;

const sdkPackage = JSON.parse(
  readFileSync(new URL("./node_modules/@speech-sdk/core/package.json", import.meta.url), "utf8"),
);

/** The gateway's JSON answer without its base64 payloads (kept as their lengths). */
function withoutAudio(value) {
  if (Array.isArray(value)) return value.map(withoutAudio);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, k === "audio" && typeof v === "string" ? v.length : withoutAudio(v)]),
    );
  }
  return value;
}

/** A gateway client whose requests (and JSON answers) are recorded; `extraBody` joins the body. */
function client(extraBody) {
  const log = [];
  const fetchFn = async (input, init = {}) => {
    let body = init.body;
    if (extraBody && typeof body === "string") {
      body = JSON.stringify({ ...JSON.parse(body), ...extraBody });
    }
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    const entry = { method: init.method ?? "GET", path: new URL(String(input)).pathname, headers, body: null };
    try {
      entry.body = JSON.parse(body);
    } catch {
      entry.body = body ?? null;
    }
    // The key is the test's own; keep only whether it was sent as a bearer token.
    entry.headers.authorization = headers.authorization === `Bearer ${key}` ? "Bearer <KEY>" : headers.authorization;
    const response = await fetch(input, { ...init, body });
    entry.status = response.status;
    entry.contentType = response.headers.get("content-type");
    entry.alignmentHeader = response.headers.get("x-speech-alignment");
    try {
      entry.response = withoutAudio(await response.clone().json());
    } catch {
      entry.response = null;
    }
    log.push(entry);
    return response;
  };
  const speechGateway = createSpeechGateway({ apiKey: key, baseURL: `${gateway}/v1`, fetch: fetchFn });
  return { speechGateway, log };
}

const keysOf = (list) => [...new Set((list ?? []).flatMap((item) => Object.keys(item)))].sort();

async function run(generate, { extraBody, ...options }) {
  const { speechGateway, log } = client(extraBody);
  const routed = {
    ...options,
    ...(typeof options.model === "string" && { model: speechGateway(options.model) }),
    ...(options.turns && {
      turns: options.turns.map((t) => ({ ...t, ...(typeof t.model === "string" && { model: speechGateway(t.model) }) })),
    }),
    timestamps: true,
    // No SDK-side retries: a 5xx would otherwise be sent three times with a back-off of seconds.
    maxRetries: 0,
  };
  try {
    const result = await generate(routed);
    return {
      ok: true,
      resultKeys: Object.keys(result).sort(),
      // Exactly what the SDK hands its caller (undefined → null).
      timestamps: result.timestamps ?? null,
      timestampKeys: keysOf(result.timestamps),
      warnings: result.warnings ?? null,
      mediaType: result.audio.mediaType,
      bytes: result.audio.uint8Array.length,
      // Measured by the SDK itself (mediabunny) on the bytes it got; null when it cannot.
      durationMs: result.metadata?.audioDurationMs ?? null,
      sent: log.at(-1) ?? null,
      attempts: log.length,
    };
  } catch (e) {
    return { ok: false, error: describeError(e), sent: log.at(-1) ?? null, attempts: log.length };
  }
}

const out = { sdk: { name: sdkPackage.name, version: sdkPackage.version }, speech: {}, conversation: {} };
for (const [name, options] of Object.entries(cases.speech ?? {})) {
  out.speech[name] = await run(generateSpeech, options);
}
for (const [name, options] of Object.entries(cases.conversation ?? {})) {
  out.conversation[name] = await run(generateConversation, options);
}

process.stdout.write(`${JSON.stringify(out)}\n`);
