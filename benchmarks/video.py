"""Video: flicker with and without steadier edges, and frames per second at 720p.

Flicker is the mean absolute alpha change between consecutive frames, over the
frames' pixels. It is measured on two generated clips of scikit-image's astronaut:
- a still portrait with sensor noise (sigma 4), encoded as H.264. Nothing moves, so
  every change is flicker;
- a slow pan and zoom over the same photo. Here part of the change is real motion:
  the figure printed is the change left after removing the true motion, measured
  against the alpha of the noise-free frame sequence.
Each clip is matted with the edge smoother on and off (``--no-stabilise``), with the
ratio between the two. Speed is the whole ``p3m matte`` path (decode, engine,
composite, encode) at 1280 x 720 for the given engines, as frames per second.

    python benchmarks/video.py [--frames 24] [--engines default,p3m-resize,p3m-resize-bf16] [--speed-frames 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from p3m.inference import open_engine
from p3m.jobs.matte import MatteOptions, matte_files
from p3m.video import VideoReader, matte_frames
from p3m.video.synthetic import noisy_still, pan_zoom, write_clip


def astronaut(h: int, w: int) -> np.ndarray:
    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


def decoded(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [rgb for _, rgb in reader.frames()]


def flicker(alphas: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(alphas, alphas[1:])]))


def flicker_report(engine, frames: int, tmp: Path) -> None:
    size = (360, 480)
    still = tmp / "still.mp4"
    write_clip(still, noisy_still(astronaut(*size), frames))
    clean_pan = pan_zoom(astronaut(720, 960), frames, size)
    pan = tmp / "pan.mp4"
    write_clip(pan, _noisy_each(clean_pan))
    print(f"flicker, {engine.summary().split(',')[0]}: mean |alpha(t) - alpha(t-1)| over {frames} frames of "
          f"{size[1]} x {size[0]}")
    truth = list(matte_frames(engine, clean_pan, stabilise=False))  # the pan's motion, without noise
    true_motion = [b - a for a, b in zip(truth, truth[1:])]
    for name, path in (("still, noisy", still), ("pan/zoom, noisy", pan)):
        frames_in = decoded(path)
        rows, errors = {}, {}
        for stabilise in (False, True):
            alphas = list(matte_frames(engine, frames_in, stabilise=stabilise))
            if name.startswith("still"):
                rows[stabilise] = flicker(alphas)
            else:  # change beyond the true motion, and distance from the noise-free alphas (lag shows here)
                rows[stabilise] = float(np.mean([np.abs((b - a) - m).mean()
                                                 for a, b, m in zip(alphas, alphas[1:], true_motion)]))
                errors[stabilise] = float(np.mean([np.abs(a - t).mean() for a, t in zip(alphas, truth)]))
        extra = (f"; mean |alpha - noise-free alpha| off {errors[False]:.5f}, on {errors[True]:.5f}"
                 if errors else "")
        print(f"  {name:16s} off {rows[False]:.5f}  on {rows[True]:.5f}  ({rows[False] / rows[True]:.2f}x less "
              f"with the smoother){extra}")


def _noisy_each(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [noisy_still(f, 1, seed=i)[0] for i, f in enumerate(frames)]


def speed_report(specs: list[str], count: int, tmp: Path) -> None:
    clip = tmp / "hd.mp4"
    write_clip(clip, noisy_still(astronaut(720, 1280), count), audio=True)
    print(f"speed: p3m matte on {count} frames of 1280 x 720 (decode, engine, outputs, encode), "
          f"{platform.machine()}, {os.cpu_count()} cores")
    for spec in specs:
        if spec.startswith("p3m-resize"):
            from p3m.reference import load_reference_model

            precision = "bf16" if spec.endswith("bf16") else "fp32"
            engine = open_engine(load_reference_model("p3mnet-r34"), method="resize", precision=precision)
            label = f"P3M-Net (ResNet-34) RESIZE {precision}, fixture weights (speed only)"
        else:
            engine = open_engine(spec)
            label = engine.summary().split(",")[0]
        base = None
        for save in (("alpha",), ("alpha", "composite")):
            out = tmp / f"out-{spec}-{len(save)}"
            start = time.perf_counter()
            result = matte_files(engine, [clip], out, MatteOptions(save=save))
            seconds = time.perf_counter() - start
            assert result.ok, result.records
            base = base or seconds
            print(f"  {label}: --save {','.join(save)}: {count / seconds:.2f} frames/s "
                  f"({seconds / count:.2f} s per frame; {base / seconds:.2f}x the alpha-only run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--engine", default="default", help="engine for the flicker figures")
    parser.add_argument("--engines", default="default,p3m-resize,p3m-resize-bf16",
                        help="engines for the speed figures")
    parser.add_argument("--speed-frames", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        flicker_report(open_engine(args.engine), args.frames, Path(tmp))
        speed_report(args.engines.split(","), args.speed_frames, Path(tmp))


if __name__ == "__main__":
    main()
