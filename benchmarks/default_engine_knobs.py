"""The default engine's two settings, working size and band (issue 29): speed on real
portraits, and quality on synthetic portraits with a known alpha, in one run.

- speed: seconds per photo (best of ``--repeats``) on the sample photos
  (p3m.privacy.sample_photos: five portraits and a group of six, 112 to 2333 px);
- agreement on those photos: mean |alpha - alpha at the largest working size| (there is
  no ground truth for them; how far each setting is from the finest one);
- quality: SAD / MSE / MAD / GRAD against the true alpha of synthetic portraits
  (p3m.data.synthetic, ``--synthetic`` of them at 512 x 384), P3M's metric functions.

    python benchmarks/default_engine_knobs.py [--repeats 2] [--synthetic 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs

WORK_SIZES = (256, 400, 640, 1024)
BANDS = (0.01, 0.02, 0.04)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--synthetic", type=int, default=8)
    args = parser.parse_args()
    import p3m
    from p3m.data.synthetic import write_synthetic_dataset
    from p3m.evaluation.metrics import evaluate
    from p3m.io.images import read_image_file, read_matte
    from p3m.privacy.sample_photos import fetch_sample_photos
    from p3m.weights.store import p3m_home

    photos = [read_image_file(p) for _, p in sorted(fetch_sample_photos(p3m_home() / "sample_photos").items())]
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synthetic_dataset(Path(tmp) / "d", train=0, val=args.synthetic, size=(512, 384))
        images = sorted((root / "validation" / "P3M-500-NP" / "original_image").glob("*"))
        synthetic = [(read_image_file(i), read_matte(root / "validation" / "P3M-500-NP" / "mask" / f"{i.stem}.png"))
                     for i in images]
        trimaps = [read_matte(root / "validation" / "P3M-500-NP" / "trimap" / f"{i.stem}.png") for i in images]
    settings = [(w, 0.02) for w in WORK_SIZES] + [(400, b) for b in BANDS if b != 0.02]
    finest = {i: p3m.open_engine("default", work_size=max(WORK_SIZES)).predict([photo])[0]
              for i, photo in enumerate(photos)}
    print(f"{cpu_model()}; {len(photos)} real portraits (speed, agreement), {len(synthetic)} synthetic 512 x 384 "
          f"(quality against the true alpha); best of {args.repeats}\n")
    print("| work size | band | s per real photo (mean) | ratio to 400 px | mean abs difference to 1024 px | SAD | MSE "
          "| MAD | GRAD |")
    print("| --- " * 9 + "|")
    baseline = None
    for work_size, band in settings:
        engine = p3m.open_engine("default", work_size=work_size, band=band)
        seconds, agreement = [], []
        for i, photo in enumerate(photos):
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                alpha = engine.predict([photo])[0]
                best = min(best, time.perf_counter() - start)
            seconds.append(best)
            agreement.append(float(np.abs(alpha - finest[i]).mean()))
        scores = [evaluate(engine.predict([image])[0], truth, (trimap * 255).round().astype(np.uint8))
                  for (image, truth), trimap in zip(synthetic, trimaps)]
        mean = {key: float(np.mean([s[key] for s in scores])) for key in ("SAD", "MSE", "MAD", "GRAD")}
        speed = float(np.mean(seconds))
        baseline = speed if (work_size, band) == (400, 0.02) else baseline
        ratio = f"{speed / baseline:.2f}x" if baseline else "-"
        print(f"| {work_size} | {band} | {speed:.3f} | {ratio} | {np.mean(agreement):.4f} | {mean['SAD']:.2f} | "
              f"{mean['MSE']:.4f} | {mean['MAD']:.4f} | {mean['GRAD']:.2f} |")


if __name__ == "__main__":
    main()
