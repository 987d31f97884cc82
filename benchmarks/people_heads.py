"""What the search for people without a found face costs and covers, on the labelled set.

For every probe of ``privacy_gallery.py``'s set (see ``gallery_set.py``), the faces are
found as ``p3m anonymize`` finds them, then :func:`p3m.privacy.people.heads_without_faces`
is timed and each head it returns is sorted by what lies under it:

- **a missed face**: it covers (80% of the central half, as ``privacy_gallery.py``
  counts it) a labelled face that no detection found: a leak it closes;
- **part of a missed face**: it overlaps one, covering less;
- **a found face** only: it overlaps a labelled face a detection found (blurred anyway);
- **no labelled face**: a back view, a head turned away, or a part that is no head
  (hair, a bag, an arm): blurred for nothing, or for a person the labels leave out.

With ``--against FILE`` (another ``people.py``, e.g. from a git worktree of an earlier
commit) the same is measured with that file's rules in the same run, for a ratio of
the times and the same counts.

    python benchmarks/people_heads.py /tmp/gallery [--against /tmp/p3m-old/src/p3m/privacy/people.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from p3m.privacy import people  # noqa: E402
from p3m.privacy.audit import boxes_overlap  # noqa: E402
from p3m.privacy.faces import detect_faces, same_face  # noqa: E402
from privacy_gallery import build_probe, covered  # noqa: E402


def load_other(path: Path):
    """Another people.py, loaded as its own module (same models, other rules)."""
    spec = importlib.util.spec_from_file_location("people_other", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def sort_heads(image: np.ndarray, labels: list[dict], found: list[tuple], heads) -> dict[str, int]:
    """How many heads cover a missed face, only found faces, or no labelled face."""
    counts = {"missed face": 0, "part of a missed face": 0, "found face": 0, "no labelled face": 0}
    missed = [f["box"] for f in labels if not any(same_face(f["box"], box) for box in found)]
    for head in heads:
        if any(covered(head.mask, box) >= 0.8 for box in missed):
            counts["missed face"] += 1
        elif any(boxes_overlap(head.box, box) for box in missed):
            counts["part of a missed face"] += 1
        elif any(boxes_overlap(head.box, f["box"]) for f in labels):
            counts["found face"] += 1
        else:
            counts["no labelled face"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--against", type=Path, help="another people.py to measure in the same run")
    args = parser.parse_args()
    manifest = json.loads((args.folder / "manifest.json").read_text())
    rules = {"now": people}
    if args.against:
        rules["against"] = load_other(args.against)
    totals = {name: {"seconds": 0.0, "heads": 0, "missed face": 0, "part of a missed face": 0, "found face": 0,
                     "no labelled face": 0, "photos with a head": 0} for name in rules}
    for probe in manifest["probes"]:
        image, labels, _ = build_probe(args.folder, manifest, probe)
        found = [f.box for f in detect_faces(image)]
        line = []
        for name, module in rules.items():
            module.heads_without_faces(image, found)  # warm: the model loaded, the map's buffers made
            start = time.perf_counter()
            heads = module.heads_without_faces(image, found)
            totals[name]["seconds"] += time.perf_counter() - start
            counts = sort_heads(image, labels, found, heads)
            for key, value in counts.items():
                totals[name][key] += value
            totals[name]["heads"] += len(heads)
            totals[name]["photos with a head"] += bool(heads)
            line.append(f"{name}: {len(heads)} head(s) {counts}")
        print(f"{probe['name']}: " + "; ".join(line), file=sys.stderr)
    print(f"{len(manifest['probes'])} probes")
    print("| rule | heads | on a missed face | on part of one | on a found face | on no labelled face | "
          "photos with a head | seconds (people search only) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, t in totals.items():
        print(f"| {name} | {t['heads']} | {t['missed face']} | {t['part of a missed face']} | {t['found face']} | "
              f"{t['no labelled face']} | {t['photos with a head']} | {t['seconds']:.2f} |")
    if args.against:
        print(f"time ratio now / against: {totals['now']['seconds'] / totals['against']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
