"""What every request passes before an endpoint sees it: one ASGI layer.

- **Host** (a loopback service answers only its own names: DNS rebinding is 421) and
  **Origin** (a POST from another site's page is 403), then the **token** (401).
- **Admission**: a POST is counted from the moment its headers arrive until its answer
  is sent. At most ``queue + 1`` are in flight (one on the engine, ``queue`` reading,
  decoding or waiting); the next is 503 before a byte of its body is read, so memory is
  bounded by the admitted requests, not by how many clients connect.
- **Body**: every byte received is counted, whatever the framing (Content-Length,
  chunked, multipart): past ``max_body`` the request is 413 at once, the rest unread. A
  body must arrive within the request's time limit (408), so a client trickling bytes
  cannot hold an admission slot.

Connections that never finish their headers are the server's business
(:mod:`p3m.serve.server`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import urllib.parse
from typing import Any

from starlette.requests import ClientDisconnect


class Refusal(Exception):
    """A request refused with ``status`` and a one-line ``reason`` (the service's error body)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


class Guard:
    """ASGI middleware applying ``limits`` (a :class:`p3m.serve.app.ServiceLimits`)."""

    #: Paths open without the token: the page (it asks for the token) and the health check.
    OPEN_PATHS = ("/", "/healthz")

    def __init__(self, app, limits, counts: dict[str, int]) -> None:
        self.app, self.limits, self.counts = app, limits, counts
        counts["in_flight"] = 0  # admitted POSTs, reported by /healthz

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if scope["type"] == "websocket":
            await self._socket(scope, headers, receive, send)
            return
        try:
            self._check(scope, headers)
        except ValueError:  # a Host or Origin that is no address at all
            await answer(send, Refusal(400, "malformed Host or Origin header"))
            return
        except Refusal as refusal:
            await answer(send, refusal)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.counts["in_flight"] > self.limits.queue:
            await answer(send, Refusal(503, "busy: the queue is full, retry shortly", {"Retry-After": "2"}))
            return
        self.counts["in_flight"] += 1
        started = False

        async def sending(message) -> None:
            nonlocal started
            started = True
            await send(message)
        try:
            await self.app(scope, self._counted(receive), sending)
        except Refusal as refusal:  # raised while reading the body, outside the endpoint's handlers
            if started:
                raise
            await answer(send, refusal)
        except ClientDisconnect:
            return  # the client went away mid-request: nobody to answer
        finally:
            self.counts["in_flight"] -= 1

    async def _socket(self, scope, headers: dict[str, str], receive, send) -> None:
        """A WebSocket (the live stream) passes the Host and Origin checks before its
        handshake is answered; the token comes in its first message (browsers cannot
        set headers on a WebSocket), checked by the endpoint, as are the places."""
        try:
            self._check({**scope, "method": "WEBSOCKET"}, headers)
        except (ValueError, Refusal) as exc:
            reason = exc.reason if isinstance(exc, Refusal) else "malformed Host or Origin header"
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        await self.app(scope, receive, send)

    def _check(self, scope, headers: dict[str, str]) -> None:
        limits = self.limits
        host = urllib.parse.urlsplit(f"//{headers.get('host', '')}").hostname or ""
        if limits.hosts and host not in limits.hosts:  # DNS rebinding: a page of another site, renamed to us
            raise Refusal(421, f"Host {host!r} is not this service's name; use {' or '.join(limits.hosts)}")
        origin = headers.get("origin")
        if scope["method"] == "WEBSOCKET":  # every browser sends its page's Origin on a WebSocket
            if origin and urllib.parse.urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
                raise Refusal(403, f"cross-origin streams are refused (Origin {origin[:60]!r})")
            return
        if scope["method"] == "POST" and origin and urllib.parse.urlsplit(origin).netloc != headers.get("host"):
            raise Refusal(403, f"cross-origin requests are refused (Origin {origin[:100]!r}); call the API from "
                               "this service's page, or without a browser")
        if limits.token and scope["path"] not in self.OPEN_PATHS:
            given = headers.get("authorization", "")
            if not (given.startswith("Bearer ") and token_ok(given.removeprefix("Bearer "), limits)):
                raise Refusal(401, "a valid 'Authorization: Bearer <token>' header is required")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_body:
            raise Refusal(413, f"request of {int(length)} bytes exceeds the limit of {limits.max_body}")

    def _counted(self, receive):
        """``receive`` that counts the body's bytes and keeps to the time limit."""
        limits, size, whole = self.limits, 0, False
        deadline = time.monotonic() + limits.timeout

        async def counted() -> dict[str, Any]:
            nonlocal size, whole
            if whole:  # the body is in: what follows is waiting for a disconnect, unlimited
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise Refusal(408, f"the request's body did not arrive within {limits.timeout:g} s") from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limits.max_body:
                    raise Refusal(413, f"request exceeds the limit of {limits.max_body} bytes")
                whole = not message.get("more_body", False)
            return message
        return counted


def token_ok(given: str, limits) -> bool:
    """``given`` is the service's bearer token (compared in constant time), or the service has none."""
    return not limits.token or hmac.compare_digest(given.encode(), limits.token.encode())


async def answer(send, refusal: Refusal) -> None:
    """Send ``refusal`` as the service's JSON error ({"error": reason})."""
    body = json.dumps({"error": refusal.reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *((key.lower().encode(), value.encode()) for key, value in refusal.headers.items())]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
