"""The HTTP server under the service: uvicorn, with the connection limits it lacks.

uvicorn closes a keep-alive connection that stays idle, but not one that sends half a
request's headers and then nothing: thousands of those ("slowloris") use up the file
descriptors, the event loop logs every failed accept, and ``/healthz`` stops answering.
Here each connection must deliver a request's headers within ``header_timeout``
seconds of opening (or of its previous answer), and at most ``max_connections`` are
open: a new one beyond that closes the oldest connection that has no request in
progress. A client that sends its request promptly is never the one closed. An upload
answered before it ended (a refusal) is read on and dropped, for at most ``LINGER``
seconds, so that its client reads the answer; its connection is closed when it ends.
"""

from __future__ import annotations

import asyncio
from typing import Any


def protocol(limits) -> type:
    """uvicorn's h11 protocol with ``limits.header_timeout`` and ``limits.max_connections``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        #: open connections of this server, oldest first (a dict keeps insertion order)
        opened: dict[GuardedH11Protocol, None] = {}
        header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.opened[self] = None
            if len(self.opened) > limits.max_connections:
                idle = next((other for other in self.opened if other is not self and not other.busy
                             and not other.transport.is_closing()), self)
                idle.drop()
            self.expect_request()

        def connection_lost(self, exc) -> None:
            self.lost = True
            self.opened.pop(self, None)  # counted until its socket is really gone
            self.stop_timer()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self, event) -> None:
            """The connection becomes a WebSocket (the live stream), handed to uvicorn's
            WebSocket protocol: no longer a request whose headers are awaited, nor one of the
            HTTP connections counted here (the stream takes one of the service's places)."""
            self.stop_timer()
            self.opened.pop(self, None)
            super().handle_websocket_upgrade(event)

        def timeout_keep_alive_handler(self) -> None:
            super().timeout_keep_alive_handler()
            self.abort_later()

        discarding: int | None = None  # bytes of a refused upload still allowed in before closing

        def handle_events(self) -> None:
            super().handle_events()
            cycle = self.cycle
            if cycle is not None and not getattr(cycle, "guarded", False):  # a request has just begun
                cycle.guarded = True
                cycle.send = self.closing_early(cycle.send)
                cycle.transport = _HalfClosing(self.transport, self)

        def closing_early(self, send):
            """An answer that starts before its upload ended says ``Connection: close``, so that
            no client sends its next request down a connection about to end."""
            async def guarded(message) -> None:
                if message["type"] == "http.response.start" and self.conn.their_state is h11.SEND_BODY:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
                await send(message)
            return guarded

        def on_response_complete(self) -> None:
            if self.conn.their_state is h11.SEND_BODY:
                # Answered before the upload ended (a refusal). Closing at once would reset the
                # connection under a client still sending, and it would never read the answer.
                # So the rest is read and dropped (its framing followed, nothing handed on), up
                # to max_body bytes or LINGER seconds; the answer said Connection: close, so the
                # connection then closes.
                self.discarding = limits.max_body
                self.linger()
                self.flow.resume_reading()
                self.discard(b"")  # what came in already
                return
            super().on_response_complete()
            self.expect_request()

        def data_received(self, data: bytes) -> None:
            if self.discarding is None:
                super().data_received(data)
            else:
                self.discard(data)

        def discard(self, data: bytes) -> None:
            """Drop a refused upload's bytes; at its end, close (nothing is left unread)."""
            self.discarding -= len(data)
            if self.discarding < 0:
                self.drop()
                return
            if data:
                self.conn.receive_data(data)
            while True:
                try:
                    event = self.conn.next_event()
                except h11.RemoteProtocolError:
                    self.drop()
                    return
                if isinstance(event, h11.EndOfMessage):
                    self.discarding = None
                    self.drop()
                    return
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return

        @property
        def busy(self) -> bool:
            """A request's headers are in and its answer is not yet complete."""
            return self.cycle is not None and not self.cycle.response_complete

        def expect_request(self) -> None:
            """The next request's headers must arrive within the header timeout."""
            self.stop_timer()
            self.header_timer = self.loop.call_later(limits.header_timeout, self.headers_overdue)

        def headers_overdue(self) -> None:
            self.header_timer = None
            if not self.busy:
                self.drop()

        def linger(self) -> None:
            """Closed in LINGER seconds, whatever the client still sends."""
            self.stop_timer()
            self.header_timer = self.loop.call_later(LINGER, self.drop)

        def stop_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def drop(self) -> None:
            """Close the connection (it has no request in progress)."""
            self.stop_timer()
            if not self.transport.is_closing():
                self.transport.close()
            self.abort_later()

        lost = False

        def abort_later(self) -> None:
            """A close waits for the answer to be read; a client that never reads it would keep
            the socket and the answer's memory. Once nothing of it has drained for ``STALL``
            seconds, the socket is reset (a slow reader that makes progress is left be)."""
            transport = self.transport

            def check(before: int | None) -> None:
                if self.lost:
                    return
                size = transport.get_write_buffer_size()
                if before is not None and size >= before:
                    transport.abort()
                else:
                    self.loop.call_later(STALL, check, size)
            self.loop.call_later(STALL, check, None)

    GuardedH11Protocol.opened = {}
    return GuardedH11Protocol


class _HalfClosing:
    """The transport as an answer's cycle sees it: closing while the client still sends its
    upload only ends our side (FIN after the answer), and the protocol drops the rest of
    the upload before closing; closing at once would reset the connection under the
    answer."""

    def __init__(self, transport, protocol) -> None:
        self._transport, self._protocol = transport, protocol

    def close(self) -> None:
        import h11

        if self._protocol.conn.their_state is h11.SEND_BODY and self._transport.can_write_eof():
            self._transport.write_eof()
            self._protocol.linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


#: Seconds a closing connection may go without its answer draining before it is reset.
STALL = 60.0

#: Seconds a refused upload is read on (and dropped) so that its client can read the answer.
LINGER = 2.0


def config(app, host: str, port: int, **options: Any):
    """The uvicorn configuration p3m serves ``app`` (from :func:`p3m.serve.app.create_app`)
    with: the command and the tests alike."""
    import dataclasses

    import uvicorn

    limits = app.state.limits
    limits = dataclasses.replace(limits, max_connections=_room_for(limits.max_connections))
    return uvicorn.Config(app, host=host, port=port, http=protocol(limits), log_level="warning",
                          ws_max_size=limits.max_frame, **options)  # a live stream's message, the hello too


def serve(app, host: str, port: int) -> None:
    """Serve ``app`` until interrupted (``p3m serve``)."""
    import uvicorn

    uvicorn.Server(config(app, host, port)).run()


#: File descriptors kept free beside the connections (models, logs, temporary files).
SPARE_DESCRIPTORS = 128


def _room_for(connections: int) -> int:
    """Raise the soft limit on open files to hold ``connections`` (within the hard
    limit); the connections that fit if it cannot be raised far enough. Never letting
    accept() fail keeps the loop from logging a traceback per refused connection."""
    try:
        import resource
    except ImportError:  # not on Unix
        return connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return connections
    return max(1, min(connections, soft - SPARE_DESCRIPTORS))
