"""What privacy costs per image and per video frame, in one run.

- Photo: one 1080 x 1620 portrait through the per-image pipeline (p3m.pipeline.matte_image)
  as a plain cut-out and with anonymize, and the two steps done apart (a cut-out, then
  p3m.privacy.anonymize on the photo), best of N.
- Video: a 720 x 720 clip of the portrait with sensor noise, anonymized (p3m anonymize's
  video path: every frame through the fail-closed rule, faces carried), and matted as a
  cut-out with and without anonymize; frames per second.

The photo is scikit-image's astronaut scaled to cover 1080 x 1620 (one real face); the engine is the default
engine (p3m weights fetch default), or --checkpoint FILE.

    python benchmarks/private_cutout.py [--repeat 3] [--frames 12] [--checkpoint FILE] [--detector auto]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from skimage import data

import p3m
from p3m.inference.compose import cover
from p3m.jobs.matte import matte_files
from p3m.options import DETECTORS, FaceBlurOptions, MatteOptions
from p3m.pipeline import matte_image
from p3m.privacy.anonymize import anonymize
from p3m.privacy.faces import resolve_detector


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--frames", type=int, default=12, help="frames of the video clip (0: no video figures)")
    parser.add_argument("--detector", default="auto", choices=DETECTORS, help="face detector families")
    parser.add_argument("--photo", action=argparse.BooleanOptionalAction, default=True, help="the photo figures")
    args = parser.parse_args()
    engine = p3m.open_engine(args.checkpoint)
    image = cover(data.astronaut(), 1620, 1080)  # height, width: a portrait
    faces = FaceBlurOptions(detector=args.detector)
    if not args.photo:
        print(f"detector: {resolve_detector(faces.detector)}")
        return video(engine, args.frames, faces)
    plain, private = MatteOptions(save=("cutout",)), MatteOptions(save=("cutout",), anonymize=faces)
    matte_image(engine, image, private)  # warm-up: kernels compiled, models loaded
    result = matte_image(engine, image, private)
    print(f"machine: {platform.processor() or platform.machine()}, engine: {engine.description}, "
          f"detector: {resolve_detector(faces.detector)}")
    print(f"privacy: {result.privacy.line()}; changed transition pixels "
          f"{result.privacy.audit.changed_transition_pixels}")
    cut = best(lambda: matte_image(engine, image, plain), args.repeat)
    both = best(lambda: matte_image(engine, image, private), args.repeat)
    alpha = engine.predict([image])[0]
    apart = best(lambda: (matte_image(engine, image, plain), anonymize(image, alpha, faces)), args.repeat)
    print(f"cut-out alone:              {cut:.2f} s")
    print(f"private cut-out (one step): {both:.2f} s  ({both / cut:.2f}x the cut-out)")
    print(f"cut-out, then anonymize:    {apart:.2f} s  ({apart / both:.2f}x the one step)")
    if args.frames:
        video(engine, args.frames, faces)


def video(engine, frames: int, faces: FaceBlurOptions) -> None:
    from p3m.video.anonymize import anonymize_video
    from p3m.video.synthetic import noisy_still, write_clip

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        clip = tmp / "clip.mp4"
        write_clip(clip, noisy_still(cover(data.astronaut(), 720, 720), frames, sigma=4.0, seed=0))
        start = time.perf_counter()
        outcome, audit = anonymize_video(clip, tmp / "anon.mp4", faces)
        seconds = time.perf_counter() - start
        print(f"video 720 x 720, {frames} frames: p3m anonymize {frames / seconds:.2f} frames/s ({outcome.value}: "
              f"{audit.line()})")
        rates = {}
        for name, options in (("cut-out", MatteOptions(save=("cutout",))),
                              ("private cut-out", MatteOptions(save=("cutout",), anonymize=faces))):
            start = time.perf_counter()
            result = matte_files(engine, [clip], tmp / name.replace(" ", "-"), options)
            rates[name] = frames / (time.perf_counter() - start)
            print(f"video 720 x 720, {frames} frames: {name} {rates[name]:.2f} frames/s ({result.line()})")
        print(f"private cut-out video: {rates['cut-out'] / rates['private cut-out']:.2f}x the time of the cut-out")


if __name__ == "__main__":
    main()
