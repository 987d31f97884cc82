"""What a private cut-out costs: one 1620 x 1080 portrait through the per-image pipeline
(p3m.pipeline.matte_image) as a plain cut-out and with anonymize, and the two steps
done apart (a cut-out, then p3m.privacy.anonymize on the photo), best of N, in one run.

The photo is scikit-image's astronaut scaled to cover 1080 x 1620 (one real face); the
engine is the default engine (p3m weights fetch default), or --checkpoint FILE.

    python benchmarks/private_cutout.py [--repeat 3] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse
import platform
import time

from skimage import data

import p3m
from p3m.inference.compose import cover
from p3m.options import FaceBlurOptions, MatteOptions
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
    args = parser.parse_args()
    engine = p3m.open_engine(args.checkpoint)
    image = cover(data.astronaut(), 1080, 1620)
    faces = FaceBlurOptions()
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


if __name__ == "__main__":
    main()
