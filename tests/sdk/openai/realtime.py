"""The official OpenAI Python SDK asks for the retired `gpt-4o-mini-tts`, which the gateway serves
with a realtime model through an alias (tests/provider_realtime.rs). Prints one JSON object."""
import json
import os

import openai

client = openai.OpenAI(base_url=os.environ["BASE_URL"], api_key=os.environ["KEY"], max_retries=0)
with client.audio.speech.with_streaming_response.create(
    model="gpt-4o-mini-tts", voice="marin", input="Hello from the retired model's name.", response_format="mp3"
) as response:
    chunks = list(response.iter_bytes())
    provider = response.headers.get("x-speech-provider")
print(json.dumps({"provider": provider, "chunks": len(chunks), "audio": b"".join(chunks).hex()}))
