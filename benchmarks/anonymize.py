"""Anonymization speed at 1080 x 1620 (a portrait): HOG alone, HOG + BlazeFace, the
default HOG + BlazeFace + MTCNN, and CNN, 1 and 2 workers; and where the time goes
(decoding, detection, landmarks, blur, encoding).

The photo is scikit-image's astronaut scaled to cover 1080 x 1620 (one real face).

    python benchmarks/anonymize.py [--images 4] [--cnn-images 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from p3m.inference.compose import cover
from p3m.io.images import read_image_file
from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
from p3m.privacy import dlib_models
from p3m.privacy.anonymize import STRENGTHS
from p3m.privacy.blur import blur_inside, face_region
from p3m.weights.default_model import face_models_installed


def shares(path: Path, detector: str) -> dict[str, float]:
    times = {}
    start = time.perf_counter()
    image = read_image_file(path)
    times["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    if detector == "hog":
        rects = dlib_models.detector("hog").run(image, 1, 0.0)[0]
    else:
        rects = [d.rect for d in dlib_models.detector("cnn")(image, 1)]
    times["detection"] = time.perf_counter() - start
    start = time.perf_counter()
    shapes = [dlib_models.shape_predictor()(image, r) for r in rects]
    times["landmarks"] = time.perf_counter() - start
    start = time.perf_counter()
    out = image
    for rect, shape in zip(rects, shapes):
        points = np.array([(p.x, p.y) for p in shape.parts()])
        out = blur_inside(out, face_region(points, image.shape[:2]), STRENGTHS["medium"] * rect.width())
    times["blur"] = time.perf_counter() - start
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(out).save(Path(tmp) / "x.jpg", quality=95)
    times["encode"] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--cnn-images", type=int, default=1)
    args = parser.parse_args()
    photo = cover(data.astronaut(), 1620, 1080)
    print(f"{platform.machine()}, {os.cpu_count()} cores; {photo.shape[0]} x {photo.shape[1]} portrait")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(max(args.images, args.cnn_images)):
            Image.fromarray(np.roll(photo, 7 * i, axis=1)).save(src / f"p{i}.jpg", quality=95)
        unions = [(families, args.images if face_models_installed() else 0)
                  for families in ("hog+blazeface", "hog+blazeface+mtcnn")]
        for detector, count in (("hog", args.images), *unions, ("cnn", args.cnn_images)):
            if count == 0:
                continue
            paths = sorted(src.iterdir())[:count]
            one_worker = None
            for workers in (1, 2):
                out = Path(tmp) / f"out-{detector}-{workers}"
                start = time.perf_counter()
                anonymize_files(paths, out, AnonymizeOptions(detector=detector, workers=workers))
                seconds = time.perf_counter() - start
                one_worker = one_worker or seconds  # the plain way: one image after another
                print(f"{detector} detector, {workers} worker(s): {count / seconds:.2f} images/s "
                      f"({seconds / count:.2f} s per image, audit included; {one_worker / seconds:.2f}x one worker)")
            if "+" in detector:
                continue  # the time shares below are of dlib's detectors
            parts = shares(paths[0], detector)
            total = sum(parts.values())
            print(f"  time shares ({detector}, one image, {total:.2f} s): " +
                  ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items()))


if __name__ == "__main__":
    main()
