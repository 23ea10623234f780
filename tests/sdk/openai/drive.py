"""The official OpenAI Python SDK against the gateway: only base_url and the key differ from code
written for OpenAI. Prints one JSON object with what each call returned (tests/sdk_openai.rs)."""
import json
import os

import openai

BASE = os.environ["GATEWAY"] + os.environ["BASE_PATH"]
client = openai.OpenAI(base_url=BASE, api_key=os.environ["KEY"], max_retries=0)
result = {}


def error(e):
    return {"class": type(e).__name__, "status": e.status_code, "code": e.code, "param": e.param, "message": e.message}


# A retired model name and voice, as OpenAI code has them.
result["audio"] = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the SDK.").content.hex()
with client.audio.speech.with_streaming_response.create(
    model="gpt-4o-mini-tts", voice="coral", input="Streamed.", response_format="mp3"
) as streamed:
    result["streamed"] = b"".join(streamed.iter_bytes()).hex()

# A voice the gateway maps to another provider, and an alias served elsewhere.
mapped = client.audio.speech.with_raw_response.create(model="tts-1", voice="nova", input="Mapped voice.", response_format="wav")
result["mapped"] = {"provider": mapped.headers.get("x-speech-provider"), "head": mapped.content[:4].decode("latin-1")}
pcm = client.audio.speech.with_raw_response.create(model="tts-1-hd", voice="en-gb", input="Raw audio.", response_format="pcm")
result["pcm"] = {"provider": pcm.headers.get("x-speech-provider"), "bytes": len(pcm.content)}

# Server-sent events: the SDK returns the raw body.
sse = client.audio.speech.create(model="gpt-4o-mini-tts", voice="local:en-us", input="Events.", stream_format="sse")
events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
result["sse"] = [event["type"] for event in events]

for name, kwargs in {
    "empty_input": dict(model="tts-1", voice="alloy", input=""),
    "bad_speed": dict(model="tts-1", voice="alloy", input="x", speed=9),
    "sse_tts1": dict(model="tts-1", voice="alloy", input="x", stream_format="sse"),
    "unknown_model": dict(model="no-such-model", voice="alloy", input="x"),
}.items():
    try:
        client.audio.speech.create(**kwargs)
        result[name] = "no error"
    except openai.APIStatusError as e:
        result[name] = error(e)
try:
    openai.OpenAI(base_url=BASE, api_key="sg_wrong", max_retries=0).audio.speech.create(model="tts-1", voice="alloy", input="x")
except openai.APIStatusError as e:
    result["unauthorized"] = error(e)

result["models"] = [m.id for m in client.models.list().data]
if os.environ["BASE_PATH"] == "/openai/v1":
    result["retrieved"] = client.models.retrieve("tts-1").id
print(json.dumps(result))
