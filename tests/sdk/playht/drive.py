#!/usr/bin/env python3
"""Drive the official PlayHT Python SDK (pyht 0.1.x), then the raw PlayHT / Play.ai REST and
WebSocket API, against a speechgate gateway, and print ONE JSON object saying what happened.

Environment:
    GATEWAY       gateway base URL, plain HTTP, e.g. http://127.0.0.1:1234
    KEY           gateway API key (sent as the PlayHT "secret key")
    USER          PlayHT user id (sent as X-USER-ID)
    VOICE         voice id / URL for the first speaker
    VOICE2        voice id / URL for the second speaker (PlayDialog)
    CALL_TIMEOUT  seconds before one call is declared hung (default 20)

Output (stdout, one line of JSON):
    {"versions": {...}, "sdk": {name: entry}, "raw": {name: entry}, "unexpected": [names]}
    entry = {"expect": "ok"|"error"|"any", "ok": bool, ...details}
    audio details are {"bytes": N, "head": "<first 8 bytes hex>"}; failures are
    {"error": {"class": "module.Class", "message": str}}; a hang is class "Timeout".
    "unexpected" lists the entries whose outcome differs from "expect".
The process exits 0 whenever the JSON was printed; the Rust test judges the content.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from importlib.metadata import version
from urllib.parse import urlsplit

import requests
import websockets
from websockets.sync.client import connect as ws_connect

import pyht
from pyht import AsyncClient, Client, Format, Language, TTSOptions
from pyht.inference_coordinates import InferenceCoordinatesOptions
from pyht.lease import EPOCH

GATEWAY = os.environ["GATEWAY"].rstrip("/")
KEY = os.environ["KEY"]
USER = os.environ["USER"]
VOICE = os.environ["VOICE"]
VOICE2 = os.environ["VOICE2"]
TIMEOUT = float(os.environ.get("CALL_TIMEOUT", "20"))

PLAYHT = f"{GATEWAY}/playht/api"
PLAYAI = f"{GATEWAY}/playai/api"

MINI_TEXT = "Hello from the PlayHT SDK."
DIALOG_TEXT = "Host 1: Welcome to the show. Host 2: Thanks, glad to be here."

OUT: dict = {"sdk": {}, "raw": {}, "unexpected": []}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def audio(data: bytes) -> dict:
    return {"bytes": len(data), "head": data[:8].hex()}


def describe(exc: BaseException) -> dict:
    cls = type(exc)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "message": str(exc)[:600]}


def run(section: str, name: str, fn, expect: str = "ok"):
    """Run fn() in a daemon thread with a deadline and record its outcome under OUT[section][name].

    fn returns a dict; keys starting with "_" are handed back to the caller but not printed.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - we want to record everything, even asserts
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():
        entry = {"ok": False, "error": {"class": "Timeout",
                                        "message": f"no result after {TIMEOUT:g}s (call hung)"}}
    elif "error" in box:
        entry = {"ok": False, "error": describe(box["error"])}
    else:
        entry = {"ok": True, **{k: v for k, v in box["value"].items() if not k.startswith("_")}}
    entry["expect"] = expect
    OUT[section][name] = entry
    timed_out = entry.get("error", {}).get("class") == "Timeout"
    if (expect == "ok" and not entry["ok"]) or (expect == "error" and (entry["ok"] or timed_out)):
        OUT["unexpected"].append(f"{section}.{name}")
    return box.get("value") or {}


def http_summary(resp: requests.Response) -> dict:
    """Status, content type and either the JSON body or an audio summary."""
    out = {"status": resp.status_code, "content_type": resp.headers.get("content-type")}
    if "json" in (out["content_type"] or ""):
        try:
            out["json"] = resp.json()
        except ValueError:
            out["text"] = resp.text[:300]
    else:
        out.update(audio(resp.content))
    return out


# --------------------------------------------------------------------------------------------
# Part 1: the official SDK (pyht), every byte of traffic pointed at the gateway
# --------------------------------------------------------------------------------------------

def advanced_options(cls=Client):
    """AdvancedOptions that send ALL pyht traffic to the gateway over plain HTTP / ws://."""
    host_port = urlsplit(GATEWAY).netloc
    return cls.AdvancedOptions(
        api_url=PLAYHT,                       # POST {api_url}/v2/leases
        grpc_addr=host_port,                  # gRPC channel is created (lazily) but never used here
        insecure=True,                        # ... and must not try TLS if it ever is
        disable_lease_disk_cache=True,        # otherwise a lease cached in $TMPDIR skips the gateway
        inference_coordinates_options=InferenceCoordinatesOptions(
            api_url=f"{PLAYHT}/v4",           # POST {api_url}/sdk-auth -> inference URLs
        ),
    )


def make_client(key: str = KEY) -> Client:
    # auto_connect=True (default): lease + sdk-auth + OPTIONS preflight happen here.
    return Client(USER, key, advanced=advanced_options())


def connect_info(client: Client) -> dict:
    lease = client._lease
    coords = client._inference_coordinates or {}
    return {
        "_client": client,
        "lease": {
            "bytes": len(lease.data),
            "created_skew_s": round(time.time() - (lease.created + EPOCH)),
            "duration_s": lease.duration,
            "metadata": lease.metadata,
        },
        "coordinates": {m: {k: v for k, v in c.items()} for m, c in coords.items() if isinstance(c, dict)},
    }


def tts(client: Client, text, options: TTSOptions, engine: str, protocol: str, streaming=True) -> dict:
    return audio(b"".join(client.tts(text, options, voice_engine=engine, protocol=protocol,
                                     streaming=streaming)))


def ws_path(client: Client):
    ws = client._ws
    return ws.request.path if ws is not None and ws.request is not None else None


mini_mp3 = TTSOptions(voice=VOICE, format=Format.FORMAT_MP3, sample_rate=24000,
                      temperature=0.7, language=Language.ENGLISH)
mini_wav = TTSOptions(voice=VOICE)  # defaults: wav, speed 1.0, everything else null
dialog = TTSOptions(voice=VOICE, voice_2=VOICE2, turn_prefix="Host 1:", turn_prefix_2="Host 2:",
                    format=Format.FORMAT_MP3)


def sdk_part():
    sdk = lambda name, fn, expect="ok": run("sdk", name, fn, expect)  # noqa: E731

    client = sdk("connect", lambda: connect_info(make_client())).get("_client")
    if client is None:
        return
    # HTTP (protocol="http"): POST to the http_streaming_url returned by sdk-auth.
    sdk("http_mini_mp3", lambda: tts(client, MINI_TEXT, mini_mp3, "Play3.0-mini", "http"))
    sdk("http_mini_wav", lambda: tts(client, MINI_TEXT, mini_wav, "Play3.0-mini", "http"))
    sdk("http_mini_text_list", lambda: tts(client, ["First part.", "Second part."], mini_mp3,
                                           "Play3.0-mini", "http"))
    # streaming=False posts to http_nonstreaming_url = http_streaming_url.replace("stream", "").
    sdk("http_mini_nonstreaming", lambda: tts(client, MINI_TEXT, mini_mp3, "Play3.0-mini", "http",
                                              streaming=False))
    sdk("http_dialog_two_speakers", lambda: tts(client, DIALOG_TEXT, dialog, "PlayDialog", "http"))
    sdk("http_empty_text", lambda: tts(client, "", mini_mp3, "Play3.0-mini", "http"), expect="error")

    # WebSocket (protocol="ws"): one socket per Client, reused for every later ws call.
    ws_client = sdk("ws_connect", lambda: {"_client": make_client()}).get("_client")
    if ws_client is not None:
        sdk("ws_mini_1", lambda: tts(ws_client, "First websocket request.", mini_mp3, "Play3.0-mini", "ws"))
        first_socket = ws_client._ws
        sdk("ws_mini_2", lambda: tts(ws_client, "Second websocket request.", mini_wav, "Play3.0-mini", "ws"))

        def abandon_after_first_chunk():
            # Read one chunk, then drop the generator: the server still streams the rest of this
            # request, which the NEXT request must skip by counting "start" messages.
            gen = ws_client.tts("This request is abandoned after one chunk.", mini_mp3,
                                voice_engine="Play3.0-mini", protocol="ws")
            chunk = next(gen)
            gen.close()
            return audio(chunk)

        sdk("ws_mini_abandoned", abandon_after_first_chunk)
        sdk("ws_mini_after_abandon", lambda: tts(ws_client, "Request after the abandoned one.", mini_mp3,
                                                 "Play3.0-mini", "ws"))
        # pyht keeps ONE socket per client whatever the engine: this PlayDialog command travels on
        # the socket opened for Play3.0-mini, so the server must honour the body's voice_engine.
        sdk("ws_dialog_same_socket", lambda: tts(ws_client, DIALOG_TEXT, dialog, "PlayDialog", "ws"))
        OUT["sdk"]["ws_socket"] = {
            "path": ws_path(ws_client),
            "reused": first_socket is not None and ws_client._ws is first_socket,
            "requests_sent": ws_client._ws_requests_sent,
            "responses_received": ws_client._ws_responses_received,
        }

    def dialog_fresh_client():
        c = make_client()
        result = tts(c, DIALOG_TEXT, dialog, "PlayDialog", "ws")
        result["path"] = ws_path(c)
        c.close()
        return result

    sdk("ws_dialog_fresh_client", dialog_fresh_client)

    def ws_empty_text():
        c = make_client()
        try:
            return tts(c, "", mini_mp3, "Play3.0-mini", "ws")
        finally:
            c.close()

    # Either an exception (server closed the socket with an error code) or 0 bytes (server sent
    # start/error/end); a hang here means the server left pyht waiting for "end".
    sdk("ws_empty_text", ws_empty_text, expect="any")

    # Wrong key: with the lease disk cache off, Client() fails on POST /v2/leases.
    sdk("error_wrong_key", lambda: {"_client": make_client(key="wrong-" + KEY)}, expect="error")

    # AsyncClient: aiohttp (chunked request body) + websockets asyncio client.
    async def async_tts(protocol: str) -> dict:
        ac = AsyncClient(USER, KEY, advanced=advanced_options(AsyncClient))
        try:
            chunks = [c async for c in ac.tts(MINI_TEXT, mini_mp3, voice_engine="Play3.0-mini",
                                              protocol=protocol)]
            return audio(b"".join(chunks))
        finally:
            if ac._ws is not None:
                await ac._ws.close()
            await ac.close()

    sdk("async_http_mini", lambda: asyncio.run(async_tts("http")))
    sdk("async_ws_mini", lambda: asyncio.run(async_tts("ws")))

    client.close()
    if ws_client is not None:
        ws_client.close()


# --------------------------------------------------------------------------------------------
# Part 2: raw REST / WebSocket calls that pyht never makes but users of the HTTP API do
# --------------------------------------------------------------------------------------------

RAW_KEY_HEADERS = {"AUTHORIZATION": KEY, "X-USER-ID": USER}             # docs' curl style, no Bearer
BEARER_HEADERS = {"Authorization": f"Bearer {KEY}", "X-USER-ID": USER}  # play.ai / v4 style


def raw_v2_stream(key: str = KEY) -> dict:
    resp = requests.post(f"{PLAYHT}/v2/tts/stream", timeout=TIMEOUT,
                         headers={"AUTHORIZATION": key, "X-USER-ID": USER, "accept": "audio/mpeg"},
                         json={"text": MINI_TEXT, "voice": VOICE, "output_format": "mp3",
                               "voice_engine": "Play3.0-mini"})
    return http_summary(resp)


def raw_playai_stream() -> dict:
    body = {"model": "PlayDialog", "text": DIALOG_TEXT, "voice": VOICE, "voice2": VOICE2,
            "turnPrefix": "Host 1:", "turnPrefix2": "Host 2:", "outputFormat": "mp3",
            "speed": 1, "sampleRate": 24000, "seed": None, "temperature": None, "language": "english"}
    resp = requests.post(f"{PLAYAI}/v1/tts/stream", timeout=TIMEOUT,
                         headers={**BEARER_HEADERS, "accept": "audio/mpeg"}, json=body)
    return http_summary(resp)


def raw_v2_job() -> dict:
    resp = requests.post(f"{PLAYHT}/v2/tts", timeout=TIMEOUT,
                         headers={**RAW_KEY_HEADERS, "accept": "application/json"},
                         json={"text": MINI_TEXT, "voice": VOICE, "output_format": "mp3",
                               "voice_engine": "Play3.0-mini"})
    out = {"create": {"status": resp.status_code, "location": resp.headers.get("location")}}
    job = resp.json()
    out["create"]["keys"] = sorted(job)
    job_id = job["id"]
    deadline = time.monotonic() + TIMEOUT / 2
    polls = 0
    while True:  # poll until the job has an output (bounded)
        got = requests.get(f"{PLAYHT}/v2/tts/{job_id}", timeout=TIMEOUT,
                           headers={**RAW_KEY_HEADERS, "accept": "application/json"})
        polls += 1
        job = got.json()
        if got.status_code != 200 or job.get("output") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out["get_json"] = {"status": got.status_code, "polls": polls, "keys": sorted(job),
                       "output": job.get("output")}
    mp3 = requests.get(f"{PLAYHT}/v2/tts/{job_id}", params={"format": "audio-mpeg"},
                       headers=RAW_KEY_HEADERS, timeout=TIMEOUT)
    out["get_audio"] = http_summary(mp3)
    return out


def raw_voices() -> dict:
    resp = requests.get(f"{PLAYHT}/v2/voices", headers={**RAW_KEY_HEADERS, "accept": "application/json"},
                        timeout=TIMEOUT)
    body = resp.json()
    out = {"status": resp.status_code, "is_array": isinstance(body, list)}
    if isinstance(body, list):
        out["count"] = len(body)
        out["first_keys"] = sorted(body[0]) if body else []
    else:
        out["json"] = body
    return out


def raw_ws_auth(url: str, urls_key: str, expires_key: str) -> dict:
    resp = requests.post(url, headers={**BEARER_HEADERS, "content-type": "application/json"}, timeout=TIMEOUT)
    body = resp.json()
    urls = body.get(urls_key) or {}
    return {"status": resp.status_code, "models": sorted(urls), "expires": body.get(expires_key),
            "_urls": urls}


def ws_session(url: str, commands: list[dict]) -> dict:
    """Send all commands back to back on one socket, then read until one "end" per command.

    Returns the text messages in order, and the audio attributed to the request whose "start"
    came last (the protocol's only way to tell pipelined responses apart).
    """
    order, per_request, errors = [], {}, []
    current = None
    with ws_connect(url, open_timeout=TIMEOUT) as ws:
        for cmd in commands:
            ws.send(json.dumps(cmd))
        ends = 0
        deadline = time.monotonic() + TIMEOUT
        while ends < len(commands):
            msg = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(msg, bytes):
                if current is None:
                    errors.append("binary frame before any start")
                    continue
                per_request[current] += msg
                continue
            event = json.loads(msg)
            rid = "null" if event.get("request_id") is None else str(event["request_id"])
            order.append(f"{event.get('type')}:{rid}")
            if event.get("type") == "start":
                current = rid
                per_request.setdefault(current, b"")
            elif event.get("type") == "end":
                ends += 1
            else:
                errors.append(event)
    return {"order": order, "audio": {k: audio(v) for k, v in per_request.items()}, "errors": errors}


def raw_part():
    raw = lambda name, fn, expect="ok": run("raw", name, fn, expect)  # noqa: E731

    raw("v2_stream_raw_key", raw_v2_stream)
    raw("v2_stream_wrong_key", lambda: raw_v2_stream("wrong-" + KEY), expect="any")
    raw("playai_v1_stream_dialog", raw_playai_stream)
    raw("v2_job", raw_v2_job)
    raw("v2_voices", raw_voices)
    playai = raw("playai_websocket_auth", lambda: raw_ws_auth(f"{PLAYAI}/v1/tts/websocket-auth",
                                                             "webSocketUrls", "expiresAt"))
    v4 = raw("v4_websocket_auth", lambda: raw_ws_auth(f"{PLAYHT}/v4/websocket-auth",
                                                     "websocket_urls", "expires_at"))

    # Two pipelined commands (snake_case, as on the WS API), one with request_id and one without.
    url = (playai.get("_urls") or {}).get("Play3.0-mini")
    if url:
        raw("ws_pipelined_mini", lambda: ws_session(url, [
            {"text": "Pipelined command A.", "voice": VOICE, "output_format": "mp3", "request_id": "req-A"},
            {"text": "Pipelined command B.", "voice": VOICE, "output_format": "mp3"},
        ]))
    url = (v4.get("_urls") or {}).get("PlayDialog")
    if url:
        raw("ws_v4_dialog", lambda: ws_session(url, [
            {"text": DIALOG_TEXT, "voice": VOICE, "voice_2": VOICE2, "turn_prefix": "Host 1:",
             "turn_prefix_2": "Host 2:", "output_format": "wav", "request_id": "dialog-1"},
        ]))


def main():
    OUT["versions"] = {"python": sys.version.split()[0], "pyht": pyht.__version__,
                       "websockets": websockets.__version__, "requests": requests.__version__,
                       "grpcio": version("grpcio"), "protobuf": version("protobuf")}
    sdk_part()
    raw_part()
    sys.stdout.write(json.dumps(OUT, default=str) + "\n")
    sys.stdout.flush()
    # A hung call leaves a thread (and maybe a pyht lease timer) behind: leave without waiting.
    os._exit(0)


if __name__ == "__main__":
    main()
