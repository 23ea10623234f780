// The official ElevenLabs JS SDK (@elevenlabs/elevenlabs-js, pinned in package.json) driven against
// speechgate's ElevenLabs facade, with only the base URL and the key changed.
//
// Environment:
//   GATEWAY  the facade's root, e.g. http://127.0.0.1:PORT/elevenlabs (the SDK appends v1/...)
//   KEY      a gateway API key (sent as `xi-api-key`)
//   VOICE    a voice id the gateway knows
//   VOICE2   a second voice id, for the dialogue calls
//
// Prints ONE JSON object on stdout: {"sdk": {...}, "<call>": {"ok": true, ...} | {"ok": false,
// "error": {"class", "status", "body"}}, ...}. The SDK hands back camelCase objects; this script
// prints the wire (snake_case) names, the same as drive.py, so one set of assertions checks both.

import { readFileSync } from "node:fs";
import { ElevenLabsClient } from "@elevenlabs/elevenlabs-js";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`drive.mjs: set ${name}`);
  return value;
};
const GATEWAY = env("GATEWAY");
const KEY = env("KEY");
const VOICE = env("VOICE");
const VOICE2 = env("VOICE2");

const TEXT = "Hello from the gateway.";
const inputs = [
  { text: "How was your weekend?", voiceId: VOICE },
  { text: "Good, thanks.", voiceId: VOICE2 },
];

// maxRetries 0: an error status reaches us at once (the SDK retries 408, 429 and >= 500 by default).
const options = { baseUrl: GATEWAY, maxRetries: 0, timeoutInSeconds: 60 };
const client = new ElevenLabsClient({ ...options, apiKey: KEY });
const intruder = new ElevenLabsClient({ ...options, apiKey: "wrong-key" });

const sdkVersion = JSON.parse(
  readFileSync(new URL("./node_modules/@elevenlabs/elevenlabs-js/package.json", import.meta.url)),
).version;

/** Byte length and the first 8 bytes (hex) of some audio. */
const audio = (bytes) => ({ bytes: bytes.length, head: Buffer.from(bytes.subarray(0, 8)).toString("hex") });

/** Reads a ReadableStream of audio (what convert/stream resolve to) to the end. */
async function drain(stream) {
  const parts = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** Summary of with-timestamps results: one JSON response, or the NDJSON chunks of a stream. */
function timed(chunks) {
  const chars = [], starts = [], ends = [], segments = [], pieces = [];
  let hasSegments = false;
  for (const c of chunks) {
    pieces.push(Buffer.from(c.audioBase64, "base64"));
    if (c.alignment != null) {
      chars.push(...c.alignment.characters);
      starts.push(...c.alignment.characterStartTimesSeconds);
      ends.push(...c.alignment.characterEndTimesSeconds);
    }
    if (c.voiceSegments !== undefined) hasSegments = true;
    for (const s of c.voiceSegments ?? []) {
      segments.push({
        voice_id: s.voiceId,
        start_time_seconds: s.startTimeSeconds,
        end_time_seconds: s.endTimeSeconds,
        character_start_index: s.characterStartIndex,
        character_end_index: s.characterEndIndex,
        dialogue_input_index: s.dialogueInputIndex,
      });
    }
  }
  return {
    chunks: chunks.length,
    ...audio(Buffer.concat(pieces)),
    characters: chars.join(""),
    first_start: starts.length ? starts[0] : null,
    last_start: starts.length ? starts[starts.length - 1] : null,
    last_end: ends.length ? ends[ends.length - 1] : null,
    normalized: chunks.map((c) => c.normalizedAlignment != null),
    voice_segments: hasSegments ? segments : null,
  };
}

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/** An SDK error as {class, status, body}: UnprocessableEntityError (422) or ElevenLabsError. */
const error = (e) => ({
  class: e?.constructor?.name ?? typeof e,
  status: e?.statusCode ?? null,
  body: e?.body === undefined ? null : e.body,
  ...(e?.statusCode == null ? { message: String(e?.message ?? e) } : {}),
});

const results = { sdk: { name: "@elevenlabs/elevenlabs-js", lang: "js", version: sdkVersion } };
async function run(name, call) {
  try {
    results[name] = { ok: true, ...(await call()) };
  } catch (e) {
    results[name] = { ok: false, error: error(e) };
  }
}

const tts = client.textToSpeech;
const dialogue = client.textToDialogue;

// --- text to speech -------------------------------------------------------------------------
// convert/stream resolve to a ReadableStream<Uint8Array> of the response body.
await run("tts_convert", async () => audio(await drain(await tts.convert(VOICE, { text: TEXT, modelId: "eleven_multilingual_v2" }))));
await run("tts_convert_wav", async () => audio(await drain(await tts.convert(VOICE, { text: TEXT, outputFormat: "wav_24000" }))));
await run("tts_convert_raw", async () => {
  // withRawResponse exposes the headers (request-id, character-cost) for request stitching.
  const { data, rawResponse } = await tts.convert(VOICE, { text: TEXT, outputFormat: "mp3_44100_128" }).withRawResponse();
  const h = rawResponse.headers;
  return { ...audio(await drain(data)), content_type: h.get("content-type"), request_id: h.get("request-id"), character_cost: h.get("character-cost") };
});
await run("tts_stream", async () => audio(await drain(await tts.stream(VOICE, { text: TEXT, outputFormat: "mp3_44100_128" }))));
await run("tts_stream_pcm", async () => audio(await drain(await tts.stream(VOICE, { text: TEXT, outputFormat: "pcm_24000" }))));
await run("tts_convert_with_timestamps", async () => timed([await tts.convertWithTimestamps(VOICE, { text: TEXT })]));
await run("tts_stream_with_timestamps", async () => timed(await collect(await tts.streamWithTimestamps(VOICE, { text: TEXT }))));

// --- text to dialogue -----------------------------------------------------------------------
await run("dialogue_convert", async () => audio(await drain(await dialogue.convert({ inputs }))));
await run("dialogue_convert_wav", async () => audio(await drain(await dialogue.convert({ inputs, outputFormat: "wav_24000" }))));
await run("dialogue_stream", async () => audio(await drain(await dialogue.stream({ inputs }))));
await run("dialogue_convert_with_timestamps", async () => timed([await dialogue.convertWithTimestamps({ inputs })]));
await run("dialogue_stream_with_timestamps", async () => timed(await collect(await dialogue.streamWithTimestamps({ inputs }))));

// --- voices and models ----------------------------------------------------------------------
await run("voices_get_all", async () => ({ ids: (await client.voices.getAll()).voices.map((v) => v.voiceId) }));
await run("voices_search", async () => {
  const r = await client.voices.search({ pageSize: 10 });
  return { ids: r.voices.map((v) => v.voiceId), has_more: r.hasMore, total_count: r.totalCount, next_page_token: r.nextPageToken ?? null };
});
await run("voices_get", async () => {
  const v = await client.voices.get(VOICE);
  return { id: v.voiceId, name: v.name ?? null };
});
await run("models_list", async () => ({ ids: (await client.models.list()).map((m) => m.modelId) }));

// --- errors ---------------------------------------------------------------------------------
// 422: a body without `text`. The SDK validates its request types before sending (a missing text
// throws client-side), so unset `text` through additionalBodyParameters, which is merged after
// validation (JSON.stringify then drops the undefined key).
const noText = { additionalBodyParameters: { text: undefined } };
await run("err_422_no_text", async () => audio(await drain(await tts.convert(VOICE, { text: TEXT }, noText))));
// 422: an output_format outside the enum. outputFormat itself is checked client-side, so send the
// bad value through queryParams, which override the SDK's own query parameters.
const badFormat = { queryParams: { output_format: "mp3_bogus" } };
await run("err_422_output_format", async () => audio(await drain(await tts.convert(VOICE, { text: TEXT }, badFormat))));
// 422 on a JSON-returning call.
await run("err_422_with_timestamps", async () => timed([await tts.convertWithTimestamps(VOICE, { text: TEXT }, noText)]));
// 401: a wrong key, on an audio call and on a JSON call.
await run("err_401", async () => audio(await drain(await intruder.textToSpeech.convert(VOICE, { text: TEXT }))));
await run("err_401_json", async () => ({ ids: (await intruder.voices.getAll()).voices.map((v) => v.voiceId) }));
// 404: an unknown voice, in speech, in the voice lookup and in a dialogue line.
await run("err_404", async () => audio(await drain(await tts.convert("no-such-voice", { text: TEXT }))));
await run("err_404_voice", async () => ({ id: (await client.voices.get("no-such-voice")).voiceId }));
await run("err_404_dialogue", async () => audio(await drain(await dialogue.convert({ inputs: [{ text: "Hi.", voiceId: "no-such-voice" }] }))));

process.stdout.write(`${JSON.stringify(results)}\n`);
