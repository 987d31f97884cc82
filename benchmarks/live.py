"""Live: the live engine's frame rate and its quality cost, and the page end to end.

1. Engines at 640 x 360 (a camera frame), frames in memory, one at a time: the live
   engine alone and with the flow step; the photo path (the default engine) and
   P3M-Net RESIZE (fixture weights: speed only) for comparison.
2. Quality of the live engine against the photo path's alpha on real portraits
   (scikit-image's astronaut and the sample portraits, at 640 px): MAD, SAD / 1000,
   Grad; and against ground truth on the moving clips of ``benchmarks/video.py``
   (MAD, dtSSD), with and without the flow step, beside the photo path.
3. The page end to end on loopback: ``p3m serve`` in this process, headless Chromium's
   fake camera playing a moving portrait into the Live tab; frames/s and the median
   latency (frame sent -> its matte back) as the page reports them, after a warm-up.

    python benchmarks/live.py [--seconds 15] [--skip-page]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from p3m.evaluation.metrics import grad
from p3m.inference import open_engine
from p3m.video.synthetic import moving_portrait, write_y4m
from p3m.video.temporal import FlowSmoother

SIZE = (360, 640)


def per_frame_ms(step, frames: list[np.ndarray], repeats: int = 2) -> float:
    step(frames[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for frame in frames:
            step(frame)
    return (time.perf_counter() - start) / (repeats * len(frames)) * 1000


def speed(frames: list[np.ndarray]) -> None:
    from p3m.reference import load_reference_model

    print(f"\n1. engines at {SIZE[1]} x {SIZE[0]}, one frame at a time ({platform.machine()}, {os.cpu_count()} cores)")
    live, default = open_engine("live"), open_engine("default")
    network = load_reference_model("p3mnet-r34")
    fp32 = open_engine(network, method="resize")
    bf16 = open_engine(network, method="resize", precision="bf16")
    flow = FlowSmoother()
    rows = [("live engine", lambda f: live.predict([f])),
            ("live engine + flow step", lambda f: flow(f, live.predict([f])[0])),
            ("photo path (default engine)", lambda f: default.predict([f])),
            ("P3M-Net RESIZE fp32 (fixture weights)", lambda f: fp32.predict([f])),
            ("P3M-Net RESIZE bf16 (fixture weights)", lambda f: bf16.predict([f]))]
    print("| engine | ms a frame | frames/s | x the photo path's rate |")
    print("| --- | --- | --- | --- |")
    measured = [(name, per_frame_ms(step, frames[:8] if "P3M" in name else frames)) for name, step in rows]
    base = dict(measured)["photo path (default engine)"]
    for name, ms in measured:
        print(f"| {name} | {ms:.1f} | {1000 / ms:.1f} | {base / ms:.1f}x |")


def photos() -> dict[str, np.ndarray]:
    from p3m.io.images import read_image_file
    from p3m.privacy.sample_photos import fetch_sample_photos

    found = {"astronaut": data.astronaut()}
    try:
        for name, path in sorted(fetch_sample_photos(Path.home() / ".cache" / "p3m" / "sample_photos").items()):
            if name not in ("group", "hanks"):  # a group photo, and a 112 px face crop
                found[name] = read_image_file(path)
    except Exception as exc:
        print(f"(no sample portraits: {exc})")
    for name, image in found.items():
        scale = 640 / max(image.shape[:2])
        found[name] = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return found


def quality(clips: dict) -> None:
    live, default = open_engine("live"), open_engine("default")
    print("\n2a. the live engine against the photo path's alpha, portraits at 640 px")
    print("| photo | MAD | SAD / 1000 | Grad |")
    print("| --- | --- | --- | --- |")
    rows = []
    for name, image in photos().items():
        ours, reference = live.predict([image])[0], default.predict([image])[0]
        row = (float(np.abs(ours - reference).mean()), float(np.abs(ours - reference).sum()) / 1000,
               grad(ours, reference))
        rows.append(row)
        print(f"| {name} {image.shape[1]} x {image.shape[0]} | {row[0]:.4f} | {row[1]:.2f} | {row[2]:.2f} |")
    print(f"| mean | {np.mean([r[0] for r in rows]):.4f} | {np.mean([r[1] for r in rows]):.2f} | "
          f"{np.mean([r[2] for r in rows]):.2f} |")

    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from p3m.video import matte_frames
    from video import scores

    print(f"\n2b. against ground truth, the moving clips of benchmarks/video.py ({SIZE[1]} x {SIZE[0]}, 48 frames)")
    print("| clip | engine | temporal | MAD | dtSSD | flicker |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clip, (frames, truth) in clips.items():
        for label, engine, mode in (("photo path", default, "flow"), ("live", live, "off"), ("live", live, "flow")):
            got = scores(list(matte_frames(engine, frames, temporal=mode)), truth)
            print(f"| {clip} | {label} | {mode} | {got['MAD']:.4f} | {got['dtSSD']:.2f} | {got['flicker']:.4f} |")


def page(frames: list[np.ndarray], seconds: float, tmp: Path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from p3m.serve.app import create_app
    from p3m.serve.server import config

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("\n3. (no chromium: the page was not measured)")
        return
    camera = tmp / "camera.y4m"
    write_y4m(camera, frames, rate=30)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(config(create_app(open_engine("default")), "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    print(f"\n3. the page's Live tab on loopback, Chromium's fake camera at 30 frames/s ({SIZE[1]} x {SIZE[0]}), "
          f"server and browser on the same {os.cpu_count()} cores, {seconds:g} s after a 5 s warm-up")
    print("| engine | frames/s | median latency | server time a frame |")
    print("| --- | --- | --- | --- |")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}"])
            for engine in ("live",):
                tab = browser.new_page()
                tab.goto(f"http://127.0.0.1:{port}/")
                tab.click("#tab-live")
                tab.select_option("#live-engine", engine)
                tab.click("#live-start")
                tab.wait_for_timeout(5000)
                start = int(tab.get_attribute("#live-stats", "data-frames") or 0)
                tab.wait_for_timeout(seconds * 1000)
                stats = tab.eval_on_selector("#live-stats", "e => ({...e.dataset, text: e.textContent})")
                done = int(stats["frames"]) - start
                server_ms = stats["text"].split("(server ")[1].split(" ms")[0]
                print(f"| {engine} | {done / seconds:.1f} | {float(stats['latency']):.0f} ms | {server_ms} ms (last frame) |")
                tab.close()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from video import layers

    found = layers(open_engine("default"), Path.home() / ".cache" / "p3m" / "sample_photos")
    clips = {name: moving_portrait(*layer, SIZE, frames_per_part=12) for name, layer in found.items()}
    frames = clips["astronaut"][0]
    speed(frames[:24])
    if not args.skip_quality:
        quality(clips)
    if not args.skip_page:
        with tempfile.TemporaryDirectory() as tmp:
            page(frames, args.seconds, Path(tmp))


if __name__ == "__main__":
    main()
