"""The official ElevenLabs Python SDK (`elevenlabs`, pinned by the test runner) driven against
speechgate's ElevenLabs facade, with only the base URL and the key changed.

Environment:
  GATEWAY  the facade's root, e.g. http://127.0.0.1:PORT/elevenlabs (the SDK appends v1/...)
  KEY      a gateway API key (sent as `xi-api-key`)
  VOICE    a voice id the gateway knows
  VOICE2   a second voice id, for the dialogue calls

Prints ONE JSON object on stdout: {"sdk": {...}, "<call>": {"ok": true, ...} | {"ok": false,
"error": {"class", "status", "body"}}, ...}. Field names are the wire (snake_case) names, the same as
drive.mjs prints, so a test can check both scripts' output with one set of assertions.
"""
import base64
import json
import os
import sys
from importlib.metadata import version

from elevenlabs.client import ElevenLabs

GATEWAY = os.environ["GATEWAY"]
KEY = os.environ["KEY"]
VOICE = os.environ["VOICE"]
VOICE2 = os.environ["VOICE2"]

TEXT = "Hello from the gateway."
LINES = [("How was your weekend?", VOICE), ("Good, thanks.", VOICE2)]
# No retries, so an error status reaches us at once (streaming-style calls never retry anyway).
ONCE = {"max_retries": 0}

client = ElevenLabs(base_url=GATEWAY, api_key=KEY, timeout=60)
intruder = ElevenLabs(base_url=GATEWAY, api_key="wrong-key", timeout=60)
inputs = [{"text": t, "voice_id": v} for t, v in LINES]


def audio(data):
    """Byte length and the first 8 bytes (hex) of some audio."""
    return {"bytes": len(data), "head": data[:8].hex()}


def joined(chunks):
    return b"".join(chunks)


def timed(chunks):
    """Summary of with-timestamps results: one JSON response, or the NDJSON chunks of a stream."""
    chars, starts, ends, segments, pieces = [], [], [], [], []
    for c in chunks:
        pieces.append(base64.b64decode(c.audio_base_64))
        if c.alignment is not None:
            chars += c.alignment.characters
            starts += c.alignment.character_start_times_seconds
            ends += c.alignment.character_end_times_seconds
        segments += [s.dict() for s in getattr(c, "voice_segments", None) or []]
    return {
        "chunks": len(chunks),
        **audio(b"".join(pieces)),
        "characters": "".join(chars),
        "first_start": starts[0] if starts else None,
        "last_start": starts[-1] if starts else None,
        "last_end": ends[-1] if ends else None,
        "normalized": [c.normalized_alignment is not None for c in chunks],
        "voice_segments": segments if any(hasattr(c, "voice_segments") for c in chunks) else None,
    }


def error(e):
    body = getattr(e, "body", None)
    try:
        json.dumps(body)
    except TypeError:
        body = repr(body)
    out = {"class": type(e).__name__, "status": getattr(e, "status_code", None), "body": body}
    if out["status"] is None:
        out["message"] = str(e)  # not an HTTP error: a client-side or parsing failure
    return out


results = {"sdk": {"name": "elevenlabs", "lang": "python", "version": version("elevenlabs")}}


def run(name, call):
    try:
        results[name] = {"ok": True, **call()}
    except Exception as e:  # every failure is recorded, never raised
        results[name] = {"ok": False, "error": error(e)}


tts = client.text_to_speech
dialogue = client.text_to_dialogue

# --- text to speech -------------------------------------------------------------------------
# convert()/stream() are generators: the request goes out on first iteration.
run("tts_convert", lambda: audio(joined(tts.convert(VOICE, text=TEXT, model_id="eleven_multilingual_v2", request_options=ONCE))))
run("tts_convert_wav", lambda: audio(joined(tts.convert(VOICE, text=TEXT, output_format="wav_24000", request_options=ONCE))))


def convert_raw():
    # with_raw_response exposes the headers (request-id, character-cost) for request stitching.
    with tts.with_raw_response.convert(VOICE, text=TEXT, output_format="mp3_44100_128", request_options=ONCE) as r:
        data = joined(r.data)
        h = r.headers
        return {**audio(data), "content_type": h.get("content-type"), "request_id": h.get("request-id"),
                "character_cost": h.get("character-cost")}


run("tts_convert_raw", convert_raw)
run("tts_stream", lambda: audio(joined(tts.stream(VOICE, text=TEXT, output_format="mp3_44100_128", request_options=ONCE))))
run("tts_stream_pcm", lambda: audio(joined(tts.stream(VOICE, text=TEXT, output_format="pcm_24000", request_options=ONCE))))
run("tts_convert_with_timestamps", lambda: timed([tts.convert_with_timestamps(VOICE, text=TEXT, request_options=ONCE)]))
run("tts_stream_with_timestamps", lambda: timed(list(tts.stream_with_timestamps(VOICE, text=TEXT, request_options=ONCE))))

# --- text to dialogue -----------------------------------------------------------------------
run("dialogue_convert", lambda: audio(joined(dialogue.convert(inputs=inputs, request_options=ONCE))))
run("dialogue_convert_wav", lambda: audio(joined(dialogue.convert(inputs=inputs, output_format="wav_24000", request_options=ONCE))))
run("dialogue_stream", lambda: audio(joined(dialogue.stream(inputs=inputs, request_options=ONCE))))
run("dialogue_convert_with_timestamps", lambda: timed([dialogue.convert_with_timestamps(inputs=inputs, request_options=ONCE)]))
run("dialogue_stream_with_timestamps", lambda: timed(list(dialogue.stream_with_timestamps(inputs=inputs, request_options=ONCE))))

# --- voices and models ----------------------------------------------------------------------
run("voices_get_all", lambda: {"ids": [v.voice_id for v in client.voices.get_all(request_options=ONCE).voices]})


def search():
    r = client.voices.search(page_size=10, request_options=ONCE)
    return {"ids": [v.voice_id for v in r.voices], "has_more": r.has_more, "total_count": r.total_count,
            "next_page_token": r.next_page_token}


run("voices_search", search)


def get_voice():
    v = client.voices.get(VOICE, request_options=ONCE)
    return {"id": v.voice_id, "name": v.name}


run("voices_get", get_voice)
run("models_list", lambda: {"ids": [m.model_id for m in client.models.list(request_options=ONCE)]})

# --- errors ---------------------------------------------------------------------------------
# 422: a body without `text`. The SDK drops any argument equal to its OMIT sentinel (`...`), so
# passing it for the required `text` sends a body the server must reject.
run("err_422_no_text", lambda: audio(joined(tts.convert(VOICE, text=..., request_options=ONCE))))
# 422: an output_format outside the enum (the SDK passes unknown strings through to the query).
run("err_422_output_format", lambda: audio(joined(tts.convert(VOICE, text=TEXT, output_format="mp3_bogus", request_options=ONCE))))
# 422 on a non-streaming, JSON-returning call (raised by HttpClient.request, not .stream).
run("err_422_with_timestamps", lambda: timed([tts.convert_with_timestamps(VOICE, text=..., request_options=ONCE)]))
# 401: a wrong key, on an audio call and on a JSON call.
run("err_401", lambda: audio(joined(intruder.text_to_speech.convert(VOICE, text=TEXT, request_options=ONCE))))
run("err_401_json", lambda: {"ids": [v.voice_id for v in intruder.voices.get_all(request_options=ONCE).voices]})
# 404: an unknown voice, in speech and in the voice lookup.
run("err_404", lambda: audio(joined(tts.convert("no-such-voice", text=TEXT, request_options=ONCE))))
run("err_404_voice", lambda: {"id": client.voices.get("no-such-voice", request_options=ONCE).voice_id})
run("err_404_dialogue", lambda: audio(joined(dialogue.convert(inputs=[{"text": "Hi.", "voice_id": "no-such-voice"}], request_options=ONCE))))

json.dump(results, sys.stdout)
sys.stdout.write("\n")
