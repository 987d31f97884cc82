"""Hostile clients against the real server (uvicorn on loopback, as ``p3m serve`` runs it):
bodies past the limit however framed, more clients than the queue, bodies trickled,
and connections that never finish their headers. Every loop is bounded."""

from __future__ import annotations

import select
import socket
import time
import urllib.parse

import httpx

from p3m.serve.app import ServiceLimits, create_app
from serving import ConstantEngine, running

MB = 2**20


def _connect(url: str, timeout: float = 10.0) -> socket.socket:
    address = urllib.parse.urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=timeout)
    return sock


def _status(sock: socket.socket, wait: float) -> int | None:
    """The status code of the answer waiting on ``sock`` within ``wait`` seconds, or None."""
    sock.settimeout(wait)
    try:
        head = sock.recv(4096)
    except (socket.timeout, ConnectionResetError):
        return None
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None


def test_a_chunked_multipart_upload_is_stopped_at_the_body_limit():
    """The old service spooled a whole chunked multipart body (48 MB with a 1 MB limit)
    before answering 413; now reading stops at the limit."""
    with running(create_app(ConstantEngine(), ServiceLimits(max_body=1 * MB))) as url:
        sock = _connect(url, timeout=3)
        sock.sendall(b"POST /v1/matte HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        chunk, sent = b"\0" * (256 * 1024), 0
        try:
            while sent < 48 * MB:
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer came while sending
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading
        assert _status(sock, 10) == 413
        assert sent < 24 * MB, f"{sent / MB:.0f} MB taken in with a 1 MB limit"
        sock.close()


def test_clients_beyond_the_queue_are_refused_before_their_bodies_are_read():
    """Each admitted request may hold a body in memory; the rest get 503 without sending one."""
    with running(create_app(ConstantEngine(), ServiceLimits(queue=2, timeout=30))) as url:
        socks = []
        for _ in range(10):  # each announces 20 MB and sends 10 bytes of it
            sock = _connect(url)
            sock.sendall(b"POST /v1/matte HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20971520\r\n"
                         b"Content-Type: application/octet-stream\r\n\r\n0123456789")
            socks.append(sock)
        time.sleep(0.5)
        codes = [_status(sock, 0.5 if i < 3 else 5) for i, sock in enumerate(socks)]
        assert codes[:3] == [None, None, None], "the first three (queue + 1) wait for their bodies"
        assert codes[3:] == [503] * 7
        health = httpx.get(f"{url}/healthz", timeout=1)
        assert health.json()["waiting"] == 3
        for sock in socks[3:]:  # refused mid-upload: closed, not read and discarded to its end
            sock.settimeout(5)  # left open, recv times out and the test fails
            while sock.recv(65536):  # the rest of the answer, then the end of the stream
                pass
        for sock in socks:
            sock.close()


def test_a_trickled_body_is_cut_off_at_the_time_limit():
    """A client that sends a body byte by byte cannot hold an admission slot forever."""
    with running(create_app(ConstantEngine(), ServiceLimits(timeout=1.0))) as url:
        sock = _connect(url)
        sock.sendall(b"POST /v1/matte HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
        answer, deadline = None, time.monotonic() + 10
        while answer is None and time.monotonic() < deadline:
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            answer = _status(sock, 0.2)
        assert answer == 408
        sock.close()


def test_half_open_connections_neither_pile_up_nor_block_health_checks():
    """Slowloris: 300 connections holding half a request line. Beyond max_connections the
    oldest are closed at once; the rest within the header timeout; /healthz answers."""
    limits = ServiceLimits(header_timeout=1.5, max_connections=50)
    with running(create_app(ConstantEngine(), limits)) as url:
        socks = []
        for _ in range(300):
            sock = _connect(url)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            socks.append(sock)
        started = time.monotonic()
        assert httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        assert time.monotonic() - started < 1

        def closed(sock: socket.socket) -> bool:
            sock.settimeout(0.01)
            try:
                return sock.recv(1) == b""
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
        assert sum(closed(sock) for sock in socks[:240]) >= 240, "the oldest beyond 50 are closed at once"
        time.sleep(2.5)
        assert all(closed(sock) for sock in socks), "every half-open connection is closed by the header timeout"
        for sock in socks:
            sock.close()


def test_a_prompt_client_keeps_its_keep_alive_connection_past_the_header_timeout():
    """The header timeout applies to waiting for headers, not to a request that is answered."""
    with running(create_app(ConstantEngine(seconds=0.0), ServiceLimits(header_timeout=0.5))) as url:
        with httpx.Client(base_url=url, timeout=5) as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
                time.sleep(0.2)


def test_a_refused_upload_is_answered_then_closed_once_it_is_in():
    """Refused before its body (no token): the client still reads the 401, and once the
    body is in, the connection ends at once (not on a keep-alive timer)."""
    with running(create_app(ConstantEngine(), ServiceLimits(token="s3cret"))) as url:
        sock = _connect(url)
        sock.sendall(b"POST /v1/matte HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 150000\r\n\r\n")
        time.sleep(0.2)
        sock.sendall(b"\0" * 150000)
        sock.settimeout(5)
        answer = b""
        started = time.monotonic()
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 401") and b"connection: close" in answer.lower()
        assert time.monotonic() - started < 2, "closed when the upload was in"
        sock.close()


def test_a_malformed_host_is_a_bad_request_not_a_server_error():
    with running(create_app(ConstantEngine(), ServiceLimits())) as url:
        sock = _connect(url)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: [\r\n\r\n")
        assert _status(sock, 5) == 400
        sock.close()
