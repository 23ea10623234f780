// The official Speechbase SDK (@speech-sdk/core, pinned in package.json) generating conversations
// through speechgate, with only the gateway client's base URL and key changed. Run by
// tests/sdk_speechbase.rs; prints ONE JSON line on stdout describing what the SDK returned.
//
// Environment:
//   GATEWAY    the gateway's origin, e.g. http://127.0.0.1:PORT (the script appends /v1, as the
//              SDK's own default base URL, https://api.speechbase.ai/v1, carries it)
//   KEY        a gateway API key
//   TURNS      JSON array of turns: [{"model":"openai/tts-1","voice":"alloy","text":"..."}, ...]
//              (`speed` and `providerOptions` per turn are passed through too)
//   OPTIONS    optional JSON object of extra generateConversation options (gapMs, volumeDbfs,
//              output, speed, providerOptions, pronunciations; a string `model` is routed
//              through the gateway client like the turns' models)
//   FAILS      optional JSON object {"case name": [turns...], ...}: requests that must fail
//   FAIL_TURNS optional JSON array of turns: shorthand for FAILS={"fail": FAIL_TURNS}
//
// Output: {"sdk":{name,version},
//          "whole":{ok,mediaType,audio(base64),bytes,durationMs,warnings,sent,attempts} | {ok:false,error},
//          "split":{ok,sdkMediaType,contentType,audioSegments:[{turnIndex,durationMs,mediaType,audio}],
//                   warnings,sent,attempts} | {ok:false,error},
//          "errors":{name:{ok:false,error:{name,status,code,message,sdkTurnIndex,problem},sent,attempts}}}
//
// The SDK's version has no `split` option (its gateway client always reads the body as audio), so
// the split request goes through the SDK's documented `fetch` option, which adds `"split": true`
// to the body the SDK built; the SDK then hands back the JSON envelope as the "audio" bytes, with
// the response's Content-Type as mediaType. Every request passes through a recording `fetch` that
// changes nothing else, so the test can see the exact wire body the SDK sent.

import { readFileSync } from "node:fs";
import { generateConversation } from "@speech-sdk/core";
import { createSpeechGateway } from "@speech-sdk/core/providers";
import { describeError } from "./errors.mjs";

const env = (name, fallback) => {
  const value = process.env[name];
  if (value == null || value === "") {
    if (fallback !== undefined) return fallback;
    throw new Error(`conversation.mjs: set ${name}`);
  }
  return value;
};
const json = (name, fallback) => JSON.parse(env(name, fallback === undefined ? undefined : JSON.stringify(fallback)));

const gateway = env("GATEWAY").replace(/\/+$/, "");
const key = env("KEY");
const turns = json("TURNS");
const extra = json("OPTIONS", {});
const fails = process.env.FAILS ? json("FAILS") : process.env.FAIL_TURNS ? { fail: json("FAIL_TURNS") } : {};

// The SDK reads these when `apiKey` is absent; the test passes the key explicitly, so make sure a
// developer's real Speechbase key in the environment can never be what authenticates.
delete process.env.SPEECHBASE_API_KEY;
delete process.env.SPEECH_GATEWAY_API_KEY;

const sdkPackage = JSON.parse(
  readFileSync(new URL("./node_modules/@speech-sdk/core/package.json", import.meta.url), "utf8"),
);

const base64 = (bytes) => Buffer.from(bytes).toString("base64");

/** A gateway client whose requests are recorded (and, with `rewrite`, whose body is changed). */
function client(rewrite) {
  const log = [];
  const fetchFn = async (input, init = {}) => {
    let body = init.body;
    if (rewrite && typeof body === "string") {
      body = JSON.stringify(rewrite(JSON.parse(body)));
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
    log.push(entry);
    return response;
  };
  const speechGateway = createSpeechGateway({ apiKey: key, baseURL: `${gateway}/v1`, fetch: fetchFn });
  return { speechGateway, log };
}

function options(speechGateway, turnList) {
  const { model, ...rest } = extra;
  return {
    ...rest,
    ...(model != null && { model: speechGateway(model) }),
    // No SDK-side retries: a 5xx would otherwise be sent three times with a back-off of seconds.
    maxRetries: 0,
    turns: turnList.map((turn) => ({ ...turn, ...(turn.model != null && { model: speechGateway(turn.model) }) })),
  };
}

async function run(rewrite, turnList, shape) {
  const { speechGateway, log } = client(rewrite);
  try {
    const result = await generateConversation(options(speechGateway, turnList));
    return { ok: true, ...shape(result, log.at(-1)), sent: log.at(-1) ?? null, attempts: log.length };
  } catch (e) {
    return { ok: false, error: describeError(e), sent: log.at(-1) ?? null, attempts: log.length };
  }
}

const out = { sdk: { name: sdkPackage.name, version: sdkPackage.version } };

// (a) the whole conversation as one file.
out.whole = await run(null, turns, (result) => ({
  mediaType: result.audio.mediaType,
  audio: result.audio.base64,
  bytes: result.audio.uint8Array.length,
  // Measured by the SDK itself (mediabunny) on the bytes it got; null when it cannot decode them.
  durationMs: result.metadata?.audioDurationMs ?? null,
  warnings: result.warnings ?? [],
}));

// (b) the same conversation, one segment per turn.
out.split = await run((body) => ({ ...body, split: true }), turns, (result, sent) => {
  const text = new TextDecoder().decode(result.audio.uint8Array);
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    return { envelopeError: `not JSON: ${text.slice(0, 200)}`, sdkMediaType: result.audio.mediaType };
  }
  return {
    sdkMediaType: result.audio.mediaType,
    contentType: sent?.contentType ?? null,
    keys: Object.keys(envelope),
    audioSegments: (envelope.audioSegments ?? []).map((s) => ({
      turnIndex: s.turnIndex,
      durationMs: s.durationMs,
      mediaType: s.mediaType,
      audio: typeof s.audio === "string" ? s.audio : base64(s.audio ?? []),
    })),
    warnings: envelope.warnings ?? null,
  };
});

// (c) requests that must fail.
out.errors = {};
for (const [name, failTurns] of Object.entries(fails)) {
  out.errors[name] = await run(null, failTurns, (result) => ({
    mediaType: result.audio.mediaType,
    bytes: result.audio.uint8Array.length,
  }));
}

process.stdout.write(`${JSON.stringify(out)}\n`);
