"""Video against ground truth: error, temporal coherence and frames per second, with
and without the temporal consistency step (``--temporal flow|edges|off``).

Clips with a known alpha in every frame (``p3m.video.synthetic.moving_portrait``): a
person layer moved over a real background in four parts of 12 frames (still; camera
pan and zoom with parallax; the person swaying and turning; the light dimming), with
sensor noise, encoded as H.264 (crf 20) and decoded, as a camera's file would be.
Layers: real people with their hair and clothes, scikit-image's astronaut and the
sample portraits ``obama`` and ``biden`` (``p3m.privacy.sample_photos``); a layer's
alpha is the photo path's matte of the whole photo, which then *is* the truth of the
clip made from it. (The synthetic portraits are not used: the default engine does not
take them for people.) Backgrounds: scikit-image's rocket, motorcycle, coffee.

Per clip and temporal mode, over all frames (alpha in 0-1):
- MAD, MSE: mean absolute and squared error against the true alpha;
- Grad: the published gradient error (``p3m.evaluation.metrics.grad``) of each frame;
- dtSSD x 100: per frame, sqrt(mean(((a_t - a_t-1) - (g_t - g_t-1))^2)), the temporal
  coherence error of the video-matting literature (Erofeev et al. 2015), averaged;
- flicker: mean |(a_t - a_t-1) - (g_t - g_t-1)| over the edge band (true alpha in (0, 1)
  at t or t-1, widened by 7 px); on a still part it is the frame-to-frame alpha change there.
Then the same per part, with (for per-frame matting) the dtSSD its errors would give if
consecutive frames' errors never overlapped, sqrt(mean e_t^2 + mean e_t-1^2) x 100: when
the measured dtSSD is near it, the error is the engine's own, moving with the person,
and no temporal step that keeps each frame's accuracy can lower it. Then frames per second at 1280 x 720: the engine with each
temporal mode (frames in memory) and the whole ``p3m matte`` path (decode, engine, step,
encode) for each engine.

    python benchmarks/video.py [--engines default,p3m-resize,p3m-resize-bf16] [--speed-frames 12]
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

from p3m.evaluation.metrics import grad
from p3m.inference import open_engine
from p3m.inference.compose import estimate_foreground
from p3m.jobs.matte import MatteOptions, matte_files
from p3m.options import TEMPORAL_MODES
from p3m.video import VideoReader, matte_frames
from p3m.video.synthetic import PARTS, moving_portrait, write_clip

SIZE = (360, 640)
FRAMES_PER_PART = 12


def layer_from_photo(engine, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground uint8, alpha): a real person cut from a photo by the photo path."""
    alpha = engine.predict([rgb])[0]
    return np.round(estimate_foreground(rgb, alpha) * 255).astype(np.uint8), alpha


def layers(engine, photos: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (foreground, alpha, background)."""
    out = {"astronaut": (*layer_from_photo(engine, data.astronaut()), data.rocket())}
    try:
        from p3m.io.images import read_image_file
        from p3m.privacy.sample_photos import fetch_sample_photos

        found = fetch_sample_photos(photos)
        for name, background in (("obama", data.stereo_motorcycle()[0]), ("biden", data.coffee())):
            out[name] = (*layer_from_photo(engine, read_image_file(found[name])), background)
    except Exception as exc:  # the sample photos are fetched once; without them, one clip
        print(f"(no sample portraits: {exc})")
    return out


def decoded(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [rgb for _, rgb in reader.frames()]


def scores(pred: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    dt, flick, apart = [], [], []
    for t in range(1, len(pred)):
        error = (pred[t] - pred[t - 1]) - (truth[t] - truth[t - 1])
        dt.append(np.sqrt(np.mean(error ** 2)) * 100)
        # the dtSSD if this frame's and the last one's errors did not overlap (a moving error)
        apart.append(np.sqrt(np.mean((pred[t] - truth[t]) ** 2) + np.mean((pred[t - 1] - truth[t - 1]) ** 2)) * 100)
        band = ((truth[t] > 0) & (truth[t] < 1)) | ((truth[t - 1] > 0) & (truth[t - 1] < 1))
        band = cv2.dilate(band.astype(np.uint8), ring) > 0
        flick.append(float(np.abs(error[band]).mean()) if band.any() else 0.0)
    return {"MAD": float(np.mean([np.abs(p - g).mean() for p, g in zip(pred, truth)])),
            "MSE": float(np.mean([np.square(p - g).mean() for p, g in zip(pred, truth)])),
            "Grad": float(np.mean([grad(p, g) for p, g in zip(pred, truth)])),
            "dtSSD": float(np.mean(dt)), "flicker": float(np.mean(flick)), "apart": float(np.mean(apart))}


def quality_report(engine, name: str, clips: dict, tmp: Path) -> None:
    print(f"\nquality, {name}: {len(PARTS)} parts x {FRAMES_PER_PART} frames of {SIZE[1]} x {SIZE[0]}, H.264 crf 20")
    print("| clip | temporal | MAD | MSE | Grad | dtSSD | flicker | dtSSD / flicker by part: "
          + ", ".join(PARTS) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for clip, (frames, truth) in clips.items():
        path = tmp / f"{clip}.mp4"
        write_clip(path, frames, crf=20)
        frames_in = decoded(path)
        base = None
        for mode in TEMPORAL_MODES[::-1]:  # off first: the ratios are against per-frame matting
            pred = list(matte_frames(engine, frames_in, temporal=mode))
            whole = scores(pred, truth)
            by_part = []
            for i in range(len(PARTS)):
                span = slice(i * FRAMES_PER_PART, (i + 1) * FRAMES_PER_PART)
                by_part.append(scores(pred[span], truth[span]))
            if base is None:
                base, base_parts = whole, by_part
            ratio = (f" ({whole['MAD'] / base['MAD']:.3f}x) | {whole['MSE']:.5f} | {whole['Grad']:.1f} | "
                     f"{whole['dtSSD']:.2f} ({base['dtSSD'] / whole['dtSSD']:.2f}x less) | "
                     f"{whole['flicker']:.4f} ({base['flicker'] / whole['flicker']:.2f}x less)")
            parts = ", ".join(f"{_less(b['dtSSD'], p['dtSSD'])} / {_less(b['flicker'], p['flicker'])}"
                              for p, b in zip(by_part, base_parts))
            print(f"| {clip} | {mode} | {whole['MAD']:.5f}{ratio} | {parts} |")
        print(f"| {clip} | per frame, its error apart | dtSSD if consecutive errors never overlapped, by part: "
              + ", ".join(f"{p['apart']:.2f} (dtSSD {p['dtSSD']:.2f})" for p in base_parts) + " |")


def _less(base: float, value: float) -> str:
    return f"{base / value:.2f}x" if value > 0 else "-"


def engine_for(spec: str):
    if spec.startswith("p3m-resize"):
        from p3m.reference import load_reference_model

        precision = "bf16" if spec.endswith("bf16") else "fp32"
        return (open_engine(load_reference_model("p3mnet-r34"), method="resize", precision=precision),
                f"P3M-Net (ResNet-34) RESIZE {precision}, fixture weights (speed only)")
    engine = open_engine(spec)
    return engine, engine.summary().split(",")[0]


def speed_report(specs: list[str], count: int, layer, tmp: Path) -> None:
    frames, _ = moving_portrait(*layer, (720, 1280), frames_per_part=max(1, count // len(PARTS)))
    clip = tmp / "hd.mp4"
    write_clip(clip, frames, audio=True)
    frames = decoded(clip)
    print(f"\nspeed at 1280 x 720, {len(frames)} frames, {platform.machine()}, {os.cpu_count()} cores")
    print("| engine | temporal | engine + step, frames in memory | p3m matte --save alpha (decode to encode) |")
    print("| --- | --- | --- | --- |")
    for spec in specs:
        engine, label = engine_for(spec)
        list(matte_frames(engine, frames[:1], temporal="off"))  # warm-up
        for mode in ("off", "flow"):
            start = time.perf_counter()
            list(matte_frames(engine, frames, temporal=mode))
            in_memory = len(frames) / (time.perf_counter() - start)
            out = tmp / f"out-{spec}-{mode}"
            start = time.perf_counter()
            result = matte_files(engine, [clip], out, MatteOptions(save=("alpha",), temporal=mode))
            whole = len(frames) / (time.perf_counter() - start)
            assert result.ok, result.records
            print(f"| {label} | {mode} | {in_memory:.2f} frames/s | {whole:.2f} frames/s |")


def step_cost(layer) -> None:
    from p3m.video.temporal import FlowSmoother

    frames, alphas = moving_portrait(*layer, (720, 1280), frames_per_part=4)
    step = FlowSmoother()
    step(frames[0], alphas[0])
    start = time.perf_counter()
    for rgb, alpha in zip(frames[1:], alphas[1:]):
        step(rgb, alpha)
    print(f"\nthe flow step alone at 1280 x 720: {(time.perf_counter() - start) / (len(frames) - 1) * 1000:.1f} ms a frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="default", help="engine for the quality figures")
    parser.add_argument("--engines", default="default,p3m-resize,p3m-resize-bf16", help="engines for the speed figures")
    parser.add_argument("--speed-frames", type=int, default=12)
    parser.add_argument("--photos", type=Path, default=Path.home() / ".cache" / "p3m" / "sample_photos")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    engine, name = engine_for(args.engine)
    found = layers(engine, args.photos)
    clips = {clip: moving_portrait(*layer, SIZE, frames_per_part=FRAMES_PER_PART) for clip, layer in found.items()}
    with tempfile.TemporaryDirectory() as tmp:
        quality_report(engine, name, clips, Path(tmp))
        if not args.skip_speed:
            step_cost(found["astronaut"])
            speed_report(args.engines.split(","), args.speed_frames, found["astronaut"], Path(tmp))


if __name__ == "__main__":
    main()
