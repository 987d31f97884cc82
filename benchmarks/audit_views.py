"""What auditing each face at the attacker's boxes costs (issue 28): ``anonymize`` with
``p3m.privacy.faces.ATTACKER_BOXES`` as shipped against none (the face's own landmarks
only), on real photos, in one run. Per photo: seconds each way (best of ``--repeats``),
the ratio, and the outcome each way (the extra views can make the blur stronger or
hold a photo back).

The photos are the labelled sample photos (p3m.privacy.sample_photos: a group of six
and five portraits, two cut by the frame) plus scikit-image's astronaut.

    python benchmarks/audit_views.py [--repeats 3] [--photos FOLDER]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage import data

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs


def timed(image, repeats: int):
    from p3m.privacy.anonymize import anonymize

    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = anonymize(image)
        best = min(best, time.perf_counter() - start)
    return best, result


def outcome(result) -> str:
    """The status, and the blur it ended at."""
    if result.sigma_scale is None:
        return result.status.value
    return f"{result.status.value}, sigma {result.sigma_scale:.3g}{', heads' if result.whole_heads else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photos", type=Path, default=Path.home() / ".cache" / "p3m" / "sample_photos",
                        help="where the sample photos are (downloaded there once if missing)")
    args = parser.parse_args()
    import p3m.privacy.faces as faces
    from p3m.io.images import read_image_file
    from p3m.privacy.sample_photos import fetch_sample_photos

    photos = {name: read_image_file(path) for name, path in sorted(fetch_sample_photos(args.photos).items())}
    photos["astronaut"] = data.astronaut()
    shipped = faces.ATTACKER_BOXES
    print(f"{cpu_model()}; best of {args.repeats}; attacker boxes as shipped: {shipped}\n")
    print("| photo | size | faces | own landmarks only (s) | with the attacker's boxes (s) | ratio | outcome, own only "
          "| outcome, with boxes |")
    print("| --- " * 8 + "|")
    totals = np.zeros(2)
    for name, image in photos.items():
        faces.ATTACKER_BOXES = ()
        alone, before = timed(image, args.repeats)
        faces.ATTACKER_BOXES = shipped
        both, after = timed(image, args.repeats)
        totals += (alone, both)
        print(f"| {name} | {image.shape[1]} x {image.shape[0]} | {len(after.detected)} | {alone:.2f} | {both:.2f} | "
              f"{both / alone:.2f}x | {outcome(before)} | {outcome(after)} |")
    print(f"| all | | | {totals[0]:.2f} | {totals[1]:.2f} | {totals[1] / totals[0]:.2f}x | | |")


if __name__ == "__main__":
    main()
