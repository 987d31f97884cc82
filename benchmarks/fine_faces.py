"""What the fine search for small faces costs and finds (issue 28): ``anonymize`` with
``p3m.privacy.faces.SMALL_FACE_HINT`` as shipped against 0 (no fine 192-px tiles), on
real photos, in one run. Per photo: seconds each way (best of ``--repeats``), the ratio,
faces found each way and the outcome each way. Photos without a face under the hint
are not searched again, so they should cost the same.

The photos are the labelled sample photos (p3m.privacy.sample_photos), scikit-image's
astronaut, and every image of ``--extra`` folders (a crowd, a group far off).

    python benchmarks/fine_faces.py [--repeats 2] [--photos FOLDER] [--extra FOLDER ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from audit_views import outcome, timed  # benchmarks/ is on the path when a script in it runs
from machine import cpu_model

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--photos", type=Path, default=Path.home() / ".cache" / "p3m" / "sample_photos",
                        help="where the sample photos are (downloaded there once if missing)")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="folders of more photos")
    args = parser.parse_args()
    import p3m.privacy.faces as faces
    from p3m.io.images import read_image_file
    from p3m.privacy.sample_photos import fetch_sample_photos

    photos = {name: read_image_file(path) for name, path in sorted(fetch_sample_photos(args.photos).items())}
    photos["astronaut"] = data.astronaut()
    for folder in args.extra:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in SUFFIXES:
                photos[path.name] = read_image_file(path)
    shipped = faces.SMALL_FACE_HINT
    print(f"{cpu_model()}; best of {args.repeats}; fine tiles of {faces.FINE_TILE} px where a face under "
          f"{shipped} px is found\n")
    print("| photo | size | smallest face (px) | without (s) | with (s) | ratio | faces without | faces with "
          "| outcome without | outcome with |")
    print("| --- " * 10 + "|")
    totals = np.zeros(2)
    for name, image in photos.items():
        faces.SMALL_FACE_HINT = 0
        alone, before = timed(image, args.repeats)
        faces.SMALL_FACE_HINT = shipped
        both, after = timed(image, args.repeats)
        totals += (alone, both)
        smallest = min((f.width for f in after.detected), default=None)
        print(f"| {name} | {image.shape[1]} x {image.shape[0]} | {smallest} | {alone:.2f} | {both:.2f} | "
              f"{both / alone:.2f}x | {len(before.detected)} | {len(after.detected)} | {outcome(before)} | "
              f"{outcome(after)} |", flush=True)
    print(f"| all | | | {totals[0]:.2f} | {totals[1]:.2f} | {totals[1] / totals[0]:.2f}x | | | | |")


if __name__ == "__main__":
    main()
