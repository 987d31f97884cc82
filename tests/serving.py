"""A p3m service on loopback for tests: the server of ``p3m serve`` in a thread, stopped by the test."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import numpy as np

from p3m.inference.engine import MattingEngine


class ConstantEngine(MattingEngine):
    description = "constant (test)"

    def __init__(self, value: float = 0.5, seconds: float = 0.0) -> None:
        self.value, self.seconds = value, seconds

    def predict(self, images):
        time.sleep(self.seconds)
        return [np.full(image.shape[:2], self.value, np.float32) for image in images]


@contextmanager
def running(app):
    """Serve ``app`` on a free loopback port; yields its base URL."""
    import uvicorn

    from p3m.serve.server import config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
