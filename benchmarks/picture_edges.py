"""What the search of a picture inside plain borders costs and finds, on the labelled set.

For every probe of ``privacy_gallery.py``'s set (see ``gallery_set.py``),
:func:`p3m.privacy.borders.picture_box` is timed; where it finds a picture inside plain
borders (a letterbox, a photo on a canvas, LFW's black bands), the faces are found as
``p3m anonymize`` finds them (the default detector), with the picture's own edge search
and without it (the way before), in the same run, and the faces it adds are sorted by
what lies under them: a labelled face no other search found, a labelled face found
anyway, or no labelled face.

    python benchmarks/picture_edges.py /tmp/gallery
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from p3m.privacy import borders  # noqa: E402
from p3m.privacy.faces import detect_faces, same_face  # noqa: E402
from privacy_gallery import build_probe  # noqa: E402


def timed_faces(image, search_picture: bool) -> tuple[list, float]:
    """The faces of ``image`` and the seconds they took, with or without the picture's edge search."""
    real = borders.picture_box
    borders.picture_box = real if search_picture else (lambda image: None)
    try:
        start = time.perf_counter()
        faces = detect_faces(image)
        return faces, time.perf_counter() - start
    finally:
        borders.picture_box = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    manifest = json.loads((args.folder / "manifest.json").read_text())
    box_seconds, framed, added = 0.0, 0, {"missed face": 0, "found anyway": 0, "no labelled face": 0}
    with_seconds = without_seconds = 0.0
    for probe in manifest["probes"]:
        image, labels, _ = build_probe(args.folder, manifest, probe)
        start = time.perf_counter()
        picture = borders.picture_box(image)
        box_seconds += time.perf_counter() - start
        if picture is None:
            continue
        framed += 1
        if framed == 1:
            timed_faces(image, True)  # warm: the models loaded before anything is timed
        before, seconds_before = timed_faces(image, False)
        after, seconds_after = timed_faces(image, True)
        without_seconds, with_seconds = without_seconds + seconds_before, with_seconds + seconds_after
        new = [f for f in after if f.picture is not None]
        for face in new:
            under = [label["box"] for label in labels if same_face(face.box, label["box"])]
            if not under:
                added["no labelled face"] += 1
            elif any(any(same_face(box, f.box) for f in before) for box in under):
                added["found anyway"] += 1
            else:
                added["missed face"] += 1
        print(f"{probe['name']}: picture {picture[0]}, borders {picture[1]}; {len(new)} face(s) cut by its edge "
              f"{[f.box for f in new]}; {seconds_before:.2f} s without, {seconds_after:.2f} s with", file=sys.stderr)
    probes = len(manifest["probes"])
    print(f"{probes} probes; a picture inside plain borders in {framed}; picture_box {1000 * box_seconds / probes:.1f} "
          "ms per photo on average")
    print("| faces cut by a picture's edge | on a labelled face no other search found | on a labelled face found "
          "anyway | on no labelled face | face search with / without, those photos |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {sum(added.values())} | {added['missed face']} | {added['found anyway']} | {added['no labelled face']} | "
          f"{with_seconds:.1f} s / {without_seconds:.1f} s (x{with_seconds / max(without_seconds, 1e-9):.2f}) |")


if __name__ == "__main__":
    main()
