"""Hostile loads on ``p3m serve``: what each costs the server, and whether it stays up.

Each load runs against a fresh ``p3m serve`` (default engine, default limits unless
said) started as a subprocess, so its memory peak (VmHWM) is the load's alone:

- **chunked**: a 48 MB multipart upload sent chunked (no Content-Length) to a
  ``--max-body-mb 1`` service: the bytes taken before the 413.
- **concurrent**: 40 clients at once, each posting a 22 MB PNG (noise, so it does not
  compress): how many are answered 200 and 503, and the memory peak.
- **webp-bomb**: a 1.6 KB WebP declaring 8000 x 5000 pixels (within the 40-megapixel
  limit), asked for a cut-out: seconds and memory peak.
- **half-open**: 20,000 connections (from 2 client processes), each holding half a
  request line: how many the server keeps open and closes.

During every load a prober asks ``/healthz`` every 0.25 s (each with a 1 s limit) and
the slowest answer (or a miss) is reported: the promise is that it stays under a second.

    python benchmarks/serve_hostile.py [--loads chunked,concurrent,webp-bomb,half-open]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import platform
import select
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from PIL import Image

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs

MB = 2**20


def _memory_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak) of a process, MiB."""
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    """``p3m serve`` on a free loopback port, stopped on exit."""

    def __init__(self, *options: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a flood of log lines must not block the server
        self.process = subprocess.Popen([sys.executable, "-m", "p3m", "serve", "--port", str(self.port), *options],
                                        stderr=self.log)

    def __enter__(self) -> Server:
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        small = io.BytesIO()
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(small, "PNG")
        httpx.post(f"{self.url}/v1/matte", content=small.getvalue(), timeout=300)  # warm-up
        self.warm = _memory_mib(self.process.pid)[0]
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def log_bytes(self) -> int:
        """Bytes the server has written to its log (stderr) so far."""
        return os.fstat(self.log.fileno()).st_size

    def peak(self) -> float:
        return _memory_mib(self.process.pid)[1]


class HealthProbe:
    """Asks /healthz every 0.25 s from its own process (the loads' client threads must not
    slow the prober); ``summary()`` after the load: the slowest answer and the misses."""

    def __init__(self, url: str) -> None:
        self.url, self.times = url, []
        self.stop, self.results = multiprocessing.Event(), multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_probe, args=(url, self.stop, self.results), daemon=True)

    def __enter__(self) -> HealthProbe:
        self.process.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.times = self.results.get(timeout=30)
        self.process.join(timeout=10)

    def summary(self, since: float | None = None, until: float | None = None) -> str:
        """The probes (optionally those started between the wall-clock times ``since`` and ``until``)."""
        times = [t for at, t in self.times if (since is None or at >= since) and (until is None or at < until)]
        misses = sum(t == float("inf") for t in times)
        answered = [t for t in times if t != float("inf")]
        slowest = max(answered, default=float("nan"))
        verdict = "under 1 s" if not misses and slowest < 1 else "NOT under 1 s"
        return f"/healthz {len(times)} probes, slowest {slowest * 1000:.0f} ms, {misses} missed: {verdict}"


def _probe(url: str, stop, results) -> None:
    times = []
    while True:
        start = time.perf_counter()
        try:
            with httpx.Client(timeout=1.0) as client:  # a new connection each time, as a monitor makes
                ok = client.get(f"{url}/healthz").status_code == 200
        except httpx.HTTPError:
            ok = False
        times.append((time.time(), time.perf_counter() - start if ok else float("inf")))
        if stop.wait(0.25):
            break
    results.put(times)


def chunked() -> str:
    with Server("--max-body-mb", "1") as server, HealthProbe(server.url) as probe:
        time.sleep(0.5)  # a probe before the load
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"POST /v1/matte HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        chunk, sent, start = os.urandom(256 * 1024), 0, time.perf_counter()
        try:
            while sent < 48 * MB and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (OSError, socket.timeout):
            pass
        sock.settimeout(10)
        try:
            status = sock.recv(200).split(b" ")[1].decode()
        except (OSError, IndexError):
            status = "no answer"
        seconds = time.perf_counter() - start
        sock.close()
        time.sleep(0.5)  # a probe after it
        peak = server.peak()
    return (f"chunked 48 MB multipart, limit 1 MB: answer {status} after {sent / MB:.1f} MB sent "
            f"(socket buffers included) in {seconds:.2f} s; server peak {peak:.0f} MiB "
            f"(after warm-up {server.warm:.0f}); {probe.summary()}")


def concurrent() -> str:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (2720, 2720, 3), dtype=np.uint8)).save(buffer, "PNG", compress_level=1)
    png = buffer.getvalue()
    with Server("--timeout", "600") as server, HealthProbe(server.url) as probe:
        def post(_: int) -> int:
            try:
                return httpx.post(f"{server.url}/v1/matte", content=png, timeout=600,
                                  headers={"content-type": "image/png"}).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__
        start = time.perf_counter()
        with ThreadPoolExecutor(40) as pool:
            codes = list(pool.map(post, range(40)))
        seconds = time.perf_counter() - start
        counts = {code: codes.count(code) for code in sorted(set(codes), key=str)}
        peak = server.peak()
    return (f"40 concurrent {len(png) / MB:.0f} MB PNGs (queue 8): answers {counts} in {seconds:.0f} s; "
            f"server peak {peak:.0f} MiB (after warm-up {server.warm:.0f}); {probe.summary()}")


def webp_bomb() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 5000), (200, 180, 160)).save(buffer, "WEBP", lossless=True)
    bomb = buffer.getvalue()
    with Server("--timeout", "600") as server, HealthProbe(server.url) as probe:
        start = time.perf_counter()
        answer = httpx.post(f"{server.url}/v1/matte", content=bomb, timeout=600)
        seconds = time.perf_counter() - start
        peak = server.peak()
    return (f"{len(bomb) / 1024:.1f} KB WebP of 8000 x 5000 as a cut-out: answer {answer.status_code} in "
            f"{seconds:.1f} s; server peak {peak:.0f} MiB (after warm-up {server.warm:.0f}); {probe.summary()}")


def _hold_half_open(port: int, count: int, ready, done) -> None:
    """Open ``count`` connections each sending half a request line; count those the server closed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))
    socks, refused = [], 0
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            socks.append(sock)
        except OSError:
            refused += 1
    ready.put((len(socks), refused))
    done.wait(120)
    closed = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        sock.close()
    ready.put(closed)


def half_open(total: int = 20_000, clients: int = 2) -> str:
    with Server() as server, HealthProbe(server.url) as probe:
        ready, done = multiprocessing.Queue(), multiprocessing.Event()
        workers = [multiprocessing.Process(target=_hold_half_open, args=(server.port, total // clients, ready, done))
                   for _ in range(clients)]
        start, began = time.perf_counter(), time.time()
        for worker in workers:
            worker.start()
        opened = [ready.get(timeout=600) for _ in workers]
        seconds, flooded = time.perf_counter() - start, time.time()
        held = _open_files(server.process.pid)
        time.sleep(12)  # past the 10 s header timeout
        after = _open_files(server.process.pid)
        done.set()
        closed = sum(ready.get(timeout=120) for _ in workers)
        for worker in workers:
            worker.join(timeout=30)
        peak, log = server.peak(), server.log_bytes()
    return (f"{sum(o for o, _ in opened)} half-open connections ({sum(r for _, r in opened)} refused) in "
            f"{seconds:.0f} s: server file descriptors {held} while they were held, {after} 12 s later; "
            f"{closed} seen closed by the server; server peak {peak:.0f} MiB (after warm-up {server.warm:.0f}); "
            f"server log {log} bytes; while they were opened: {probe.summary(began, flooded)}; "
            f"while held and after: {probe.summary(flooded)}")


LOADS = {"chunked": chunked, "concurrent": concurrent, "webp-bomb": webp_bomb, "half-open": half_open}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", default=",".join(LOADS), help="comma-separated: " + ", ".join(LOADS))
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}; p3m serve, default engine")
    for name in args.loads.split(","):
        print(f"- {LOADS[name.strip()]()}", flush=True)


if __name__ == "__main__":
    main()
