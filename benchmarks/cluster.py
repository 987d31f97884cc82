"""Batch jobs on a local Ray cluster: images/s with 1 and 2 actors, against one machine.

Starts a Ray cluster on loopback (a head node and a second node, one CPU each), then
mattes ``--images`` portraits of 1620 x 1080 (P3M-Net ResNet-34, RESIZE, fixture
weights: speed does not depend on the values) and anonymises them. Each job runs on
one machine (the ordinary ``p3m matte`` / ``p3m anonymize`` path in this process) and
on the cluster with 1 and 2 actors. Start-up (connecting, starting actors, loading the
network) is included, as a user meets it. The cluster is stopped at the end.

    python benchmarks/cluster.py [--images 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

from p3m.cluster import ClusterOptions
from p3m.inference import open_engine
from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
from p3m.jobs.matte import MatteOptions, matte_files
from p3m.reference import load_reference_model
from p3m.weights.io import save_model

RAY = str(Path(sys.executable).with_name("ray"))


def start_cluster(temp: Path) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
                    *common], check=True, capture_output=True, env=env)
    subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], check=True, capture_output=True, env=env)
    return f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="p3m-cluster-"))
    photo = cv2.resize(data.astronaut(), (1080, 1080), interpolation=cv2.INTER_AREA)
    photo = np.pad(photo, ((270, 270), (0, 0), (0, 0)), mode="edge")  # 1620 x 1080, one real face
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(args.images):
        Image.fromarray(np.roll(photo, 5 * i, axis=1)).save(inputs / f"p{i}.jpg", quality=95)
    weights = save_model(load_reference_model("p3mnet-r34"), tmp / "r34.safetensors")
    network = dict(method="resize")
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.images} portraits of 1620 x 1080; start-up included")
    address = start_cluster(tmp / "ray")
    try:
        jobs = {
            "matte (P3M-Net RESIZE)": (
                lambda out: matte_files(open_engine(weights, **network), [inputs], out, MatteOptions(workers=1)),
                lambda out, n: matte_files(str(weights), [inputs], out, MatteOptions(),
                                           cluster=ClusterOptions(address, actors=n, engine_options=network))),
            "anonymize (HOG)": (
                lambda out: anonymize_files([inputs], out, AnonymizeOptions(workers=1)),
                lambda out, n: anonymize_files([inputs], out, AnonymizeOptions(),
                                               cluster=ClusterOptions(address, actors=n))),
        }
        for name, (local, remote) in jobs.items():
            start = time.perf_counter()
            local(tmp / "local")
            base = time.perf_counter() - start
            print(f"{name}: one machine, one worker: {args.images / base:.2f} images/s")
            for actors in (1, 2):
                out = tmp / f"ray-{actors}"
                start = time.perf_counter()
                remote(out, actors)
                seconds = time.perf_counter() - start
                print(f"  Ray, {actors} actor(s) on {actors} node(s): {args.images / seconds:.2f} images/s "
                      f"({base / seconds:.2f}x one machine)")
                shutil.rmtree(out)
            shutil.rmtree(tmp / "local")
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
