"""The HTTP server under the service: uvicorn, with the connection limits it lacks.

uvicorn closes a keep-alive connection that stays idle, but not one that sends half a
request's headers and then nothing: thousands of those ("slowloris") use up the file
descriptors, the event loop logs every failed accept, and ``/healthz`` stops answering.
Here each connection must deliver a request's headers within ``header_timeout``
seconds of opening (or of its previous answer), and at most ``max_connections`` are
open: a new one beyond that closes the oldest connection that has no request in
progress. A client that sends its request promptly is never the one closed.
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
                idle = next((other for other in self.opened if other is not self and not other.busy), self)
                idle.drop()
            self.expect_request()

        def connection_lost(self, exc) -> None:
            self.opened.pop(self, None)
            self.stop_timer()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            if self.conn.their_state is h11.SEND_BODY:
                # Answered before the upload ended (a refusal): close rather than read and
                # discard the rest, which a refused 25 MB upload would make the loop do.
                self.transport.close()
            super().on_response_complete()
            self.expect_request()

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

        def stop_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def drop(self) -> None:
            """Close the connection without an answer (it has no request to answer)."""
            self.opened.pop(self, None)
            self.stop_timer()
            if not self.transport.is_closing():
                self.transport.close()

    GuardedH11Protocol.opened = {}
    return GuardedH11Protocol


def config(app, host: str, port: int, **options: Any):
    """The uvicorn configuration p3m serves ``app`` (from :func:`p3m.serve.app.create_app`)
    with: the command and the tests alike."""
    import dataclasses

    import uvicorn

    limits = app.state.limits
    limits = dataclasses.replace(limits, max_connections=_room_for(limits.max_connections))
    return uvicorn.Config(app, host=host, port=port, http=protocol(limits), log_level="warning", **options)


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
