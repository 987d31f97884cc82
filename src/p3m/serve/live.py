"""``/v1/live``: camera frames in over a WebSocket, their alphas out, at frame rate.

The protocol (the page's Live tab speaks it; any client may):

1. Open ``ws://HOST/v1/live`` (``wss://`` behind TLS), with query parameters
   ``engine`` (``live``, the default: segmentation + guided filter; or ``service``: the
   engine the service runs, P3M-Net if it was started with it) and ``temporal``
   (``flow``, ``edges`` or ``off``, as for videos).
2. Send one text message first: ``{"token": "..."}`` (``{}`` without a token; a
   client that can set headers may send ``Authorization: Bearer`` instead).
3. Send frames as binary messages, each an image (JPEG or PNG; WebP, BMP and TIFF are
   read too). Each frame is answered by a
   text message ``{"frame", "width", "height", "server_ms", "dropped"}`` and then a
   binary message: a PNG of the same size whose alpha channel is the matte (colour
   black), ready to mask the frame with (``destination-in`` on a canvas).
   A frame that cannot be used (a bad image, one over ``max_pixels``, an engine error
   or time-out) is answered by ``{"error": one line}``, and the stream goes on; a
   message over ``max_frame`` (4 MiB) closes the stream (1009, message too big).

Rules: the Guard's Host and Origin checks (refused with a bare 403 before the
handshake); the token, in a hello due within ``header_timeout``, with at most
:data:`GREETINGS_PER_PLACE` streams per place awaiting theirs; only then does the stream
take one of the service's places (``queue + 1``), for as long as it is open, so a full
service refuses it (close code 1013, "busy"); each frame is limited (``max_frame``
bytes, ``max_pixels``); each frame's engine work waits its turn with the photos'; a
stream with no frame and no answer for ``timeout`` seconds is closed (error lines are
no answer), and one whose client does not take an answer within ``timeout`` ends. A client that sends faster than frames are
matted is not queued: only the newest frame waiting is kept, and the others are
counted as ``dropped``. Frames are never written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

import numpy as np
from fastapi import WebSocket  # at module level: FastAPI resolves the endpoint's annotation here

from p3m.options import TEMPORAL_MODES
from p3m.serve.guard import Refusal, token_ok

LIVE_PATH = "/v1/live"
#: The stream's query parameters and their allowed values (the first is the default).
LIVE_PARAMETERS = {"engine": ("live", "service"), "temporal": TEMPORAL_MODES}
#: Streams waiting for their hello, at most this many per place (queue + 1): each may hold
#: up to max_frame bytes of a hello it has not finished, for header_timeout seconds.
GREETINGS_PER_PLACE = 4
#: WebSocket close codes: policy (a bad token, parameter or hello), the engine cannot
#: run here (its model is missing), and "try again later" (busy).
POLICY, UNAVAILABLE, BUSY = 1008, 1011, 1013


def add_live_stream(app, *, limits, counts: dict[str, int], engine, on_engine: Callable[..., Awaitable],
                    on_coder: Callable[..., Awaitable], decode: Callable[[bytes, str], np.ndarray]) -> None:
    """The ``/v1/live`` route on ``app``: frames go through ``on_engine`` (the service's
    engine thread, in turn with the photos) and are coded on ``on_coder``."""
    from starlette.websockets import WebSocketDisconnect

    from p3m.video.temporal import temporal_filter

    live_engine: list[Any] = []

    def engine_named(name: str):
        if name == "service":
            return engine
        if not live_engine:
            from p3m.inference.factory import open_engine

            live_engine.append(open_engine("live"))
        return live_engine[0]

    @app.websocket(LIVE_PATH)
    async def live(socket: WebSocket):
        params = dict(socket.query_params)
        await socket.accept()  # accepted first, so that every refusal is a close with a reason a page can show
        bad = _bad_parameters(list(socket.query_params.multi_items()))
        if bad:
            await socket.close(POLICY, bad)
            return
        # The token before a place: a client without it never holds one. The hello is
        # awaited like a request's headers (header_timeout), and the streams awaiting one
        # are few: an unauthenticated client costs a socket and at most max_frame bytes.
        if counts.get("greeting", 0) >= GREETINGS_PER_PLACE * (limits.queue + 1):
            await socket.close(BUSY, "busy: too many streams are starting, retry shortly")
            return
        counts["greeting"] = counts.get("greeting", 0) + 1
        try:
            greeted = await _hello(socket, limits)
        finally:
            counts["greeting"] -= 1
        if not greeted:
            return
        if counts["in_flight"] > limits.queue:
            await socket.close(BUSY, "busy: the service is full, retry shortly")
            return
        counts["in_flight"] += 1
        try:
            try:
                chosen = await on_engine(engine_named, params.get("engine", "live"))
            except Exception as exc:  # e.g. the live engine's model missing on the server: what to install
                reason = getattr(exc, "remedy", "") or str(exc) or type(exc).__name__
                await socket.close(UNAVAILABLE, " ".join(reason.split())[:120])
                return
            step = temporal_filter(params.get("temporal", "flow"))
            await _stream(socket, chosen, step, limits, on_engine, on_coder, decode)
        except (WebSocketDisconnect, Refusal, asyncio.TimeoutError):
            pass  # gone, or not reading its answers (the place is given back all the same)
        finally:
            counts["in_flight"] -= 1


def _bad_parameters(given: list[tuple[str, str]]) -> str:
    """The one-line reason the query is refused, or '' (the close reason: at most 123 bytes)."""
    names = [name for name, _ in given]
    for name, value in given:
        if name not in LIVE_PARAMETERS:
            return f"unknown parameter {name[:30]!r}; accepted: {', '.join(LIVE_PARAMETERS)}"
        if names.count(name) > 1:
            return f"{name} given more than once"
        if value not in LIVE_PARAMETERS[name]:
            return f"{name} must be one of {', '.join(LIVE_PARAMETERS[name])}"
    return ""


async def _hello(socket, limits) -> bool:
    """The first message: {"token"}; False (closed) when it is missing, late or wrong."""
    header = socket.headers.get("authorization", "")
    try:
        message = await asyncio.wait_for(socket.receive(), limits.header_timeout)
    except asyncio.TimeoutError:
        await socket.close(POLICY, f"no hello within {limits.header_timeout:g} s")
        return False
    if message["type"] == "websocket.disconnect":
        return False
    try:
        hello = json.loads(message.get("text") or "")
        given = hello.get("token") or ""
        if not isinstance(given, str):
            raise TypeError
    except (ValueError, TypeError, AttributeError):
        await socket.close(POLICY, 'the first message must be {"token": "..."} (or {} without a token)')
        return False
    if header.startswith("Bearer ") and not given:
        given = header.removeprefix("Bearer ")
    if not token_ok(given, limits):
        await socket.close(POLICY, "a valid token is required")
        return False
    return True


async def _stream(socket, engine, step, limits, on_engine, on_coder, decode) -> None:
    """Receive frames (keeping only the newest waiting) and answer each one matted.

    Idle means no frame arrived and no answer went out for ``limits.timeout`` seconds
    (text messages do not count; the server's own work on a frame does not either). An
    answer the client does not take within ``limits.timeout`` ends the stream: a client
    that stops reading gives its place back.
    """
    newest: list[bytes] = []
    state: dict[str, Any] = {"dropped": 0, "ended": "", "working": False, "last": time.monotonic()}
    arrived = asyncio.Event()
    sending = asyncio.Lock()  # a frame's JSON and its PNG go out together, never split by another answer

    async def send(*messages: dict | bytes) -> None:
        async with sending:
            for message in messages:
                out = socket.send_bytes(message) if isinstance(message, bytes) else socket.send_json(message)
                await asyncio.wait_for(out, limits.timeout)

    async def receive() -> None:
        try:
            while True:
                left = state["last"] + limits.timeout - time.monotonic()
                if state["working"] or left <= 0:
                    left = limits.timeout  # busy on this client's frame: not idle, look again later
                try:
                    message = await asyncio.wait_for(socket.receive(), left)
                except asyncio.TimeoutError:
                    if state["working"] or time.monotonic() - state["last"] < limits.timeout:
                        continue
                    state["ended"] = "idle"
                    break
                if message["type"] == "websocket.disconnect":
                    state["ended"] = "gone"
                    break
                data = message.get("bytes")
                if data is None:
                    await send({"error": "send frames as binary messages (an image: JPEG, PNG, WebP, BMP or TIFF)"})
                    continue
                state["last"] = time.monotonic()
                if newest:
                    state["dropped"] += 1
                    newest.clear()
                newest.append(data)
                arrived.set()
        except Exception:  # the connection broke, or the client stopped reading
            state["ended"] = "gone"
        arrived.set()

    receiver = asyncio.create_task(receive())
    frame = 0
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            if state["ended"]:
                break
            if not newest:
                continue
            data = newest.pop()
            started = time.perf_counter()
            state["working"] = True
            try:
                rgb = await on_coder(decode, data, "frame")
                alpha = await on_engine(_matte, engine, step, rgb)
                png = await on_coder(_alpha_png, alpha)
            except Exception as exc:  # the frame's one line (a bad image, an engine error or time-out); go on
                state["working"] = False  # an error is no answer: it does not keep the stream from idling
                await send({"error": " ".join(str(getattr(exc, "reason", exc) or type(exc).__name__).split())})
                continue
            await send({"frame": frame, "width": rgb.shape[1], "height": rgb.shape[0],
                        "server_ms": round((time.perf_counter() - started) * 1000, 1), "dropped": state["dropped"]},
                       png)
            state["working"], state["last"] = False, time.monotonic()
            frame += 1
    finally:
        receiver.cancel()
    if state["ended"] == "idle":
        await socket.close(1000, f"no frame for {limits.timeout:g} s")


def _matte(engine, step, rgb: np.ndarray) -> np.ndarray:
    return step(rgb, engine.predict([rgb])[0])


def _alpha_png(alpha: np.ndarray) -> bytes:
    """The matte as the alpha channel of a black RGBA PNG (fast compression: loopback and LAN)."""
    import cv2

    h, w = alpha.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 3] = np.round(np.clip(alpha, 0, 1) * 255)
    ok, png = cv2.imencode(".png", rgba, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()
