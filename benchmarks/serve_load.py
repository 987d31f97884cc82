"""Load on ``p3m serve``: concurrent clients posting 1080p portraits, on loopback.

Starts ``p3m serve`` (default engine unless --engine) as a subprocess, warms it up, then
``--clients`` threads each send ``--requests`` cut-out requests. Prints p50/p99 latency,
throughput (and its ratio to the same cut-outs made in-process, one at a time, without
HTTP), errors, and the server's resident memory: peak, after warm-up and at the
end (its growth shows a leak). Bounded: every request has a time limit, and the
server is stopped at the end.

    python benchmarks/serve_load.py [--clients 4] [--requests 50] [--engine default]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from PIL import Image
from skimage import data

from p3m.inference.compose import cover


def _rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MiB."""
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _in_process_rate(photos: list[bytes], engine_spec: str, count: int = 4) -> float:
    """Cut-outs per second through ``p3m.remove`` in this process: the naive way, no service."""
    import p3m

    engine = p3m.open_engine(engine_spec)
    p3m.remove(photos[0], engine=engine)  # warm-up
    start = time.perf_counter()
    for i in range(count):
        p3m.remove(photos[i % len(photos)], engine=engine).save(io.BytesIO(), format="PNG")
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--engine", default="default")
    args = parser.parse_args()
    photos = []
    for shift in range(4):  # 1080p portraits, a little different each
        buffer = io.BytesIO()
        Image.fromarray(np.roll(cover(data.astronaut(), 1080, 1920), 40 * shift, axis=1)).save(buffer, "JPEG", quality=92)
        photos.append(buffer.getvalue())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "p3m", "serve", "--port", str(port), "--engine", args.engine,
                               "--queue", str(args.clients + 2), "--timeout", "300"], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for photo in photos:  # warm-up
            httpx.post(f"{url}/v1/matte", content=photo, timeout=300).raise_for_status()
        warm, _ = _rss_mib(server.pid)

        def client(index: int) -> list[tuple[float, int]]:
            with httpx.Client(timeout=300) as session:
                results = []
                for i in range(args.requests):
                    start = time.perf_counter()
                    status = session.post(f"{url}/v1/matte", content=photos[(index + i) % len(photos)]).status_code
                    results.append((time.perf_counter() - start, status))
                return results

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = [r for rs in pool.map(client, range(args.clients)) for r in rs]
        seconds = time.perf_counter() - start
        end, peak = _rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = np.array([t for t, status in results if status == 200])
    errors = sum(status != 200 for _, status in results)
    print(f"{platform.machine()}, {os.cpu_count()} cores; engine {args.engine}; {args.clients} clients x "
          f"{args.requests} requests of 1080 x 1920 JPEG portraits, cut-out PNG answers")
    print(f"latency p50 {np.percentile(latencies, 50):.2f} s, p99 {np.percentile(latencies, 99):.2f} s; "
          f"throughput {len(results) / seconds:.2f} requests/s; errors {errors}")
    alone = _in_process_rate(photos, args.engine)
    print(f"the same requests in this process without HTTP (p3m.remove, one at a time): {alone:.2f} requests/s; "
          f"the service gives {len(results) / seconds / alone:.2f}x that")
    print(f"server memory: {warm:.0f} MiB after warm-up, {end:.0f} MiB at the end "
          f"(growth {end - warm:+.0f} MiB), peak {peak:.0f} MiB")


if __name__ == "__main__":
    main()
