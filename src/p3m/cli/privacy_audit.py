"""``p3m privacy-audit ORIGINALS ANONYMISED``: measure how well faces were hidden."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "privacy-audit",
        help="re-detection, identity distance and matting integrity of anonymised images",
        description="For each pair (matched by stem): does the detector still find the face, how far "
        "dlib's identity descriptor of the blurred face is from the original (and from reference "
        "photos of the people, --reference DIR with one folder per person), and, with --alpha, how "
        "many transition pixels changed (must be 0). A match is a distance below 0.6.",
    )
    parser.add_argument("originals", type=Path)
    parser.add_argument("anonymised", type=Path)
    parser.add_argument("--reference", type=Path,
                        help="reference photos of the people: a folder with one subfolder per person, "
                        "or a CSV of image paths (first column; a person column may follow)")
    parser.add_argument("--alpha", type=Path, help="folder of mattes")
    parser.add_argument("--detector", default="hog", choices=["hog", "cnn"])
    parser.add_argument("--json", type=Path, help="write per-image results here")
    parser.set_defaults(func=run)


def _reference_files(reference: Path) -> list[Path]:
    """Photos of the people: every image in the subfolders, or the paths a CSV lists."""
    import csv

    from p3m.data.layout import images_by_stem
    from p3m.errors import P3MError

    if reference.is_dir():
        return [f for person in sorted(p for p in reference.iterdir() if p.is_dir())
                for f in images_by_stem(person).values()]
    if reference.is_file() and reference.suffix.lower() == ".csv":
        with open(reference, newline="") as f:
            rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
        if rows and rows[0][0].strip().lower() in ("image", "path", "file"):
            rows = rows[1:]
        return [(reference.parent / row[0].strip()).resolve() for row in rows]
    raise P3MError(f"--reference {reference}: not a folder of person folders or a .csv file")


def run(args: argparse.Namespace) -> int:
    from p3m.data.layout import images_by_stem
    from p3m.errors import P3MError
    from p3m.io.images import read_image_file, read_matte
    from p3m.privacy.audit import audit_pair, reference_descriptors

    for folder in (args.originals, args.anonymised, args.alpha):
        if folder is not None and not folder.is_dir():
            raise P3MError(f"{folder}: no such folder")
    references = []
    if args.reference:
        references = reference_descriptors([read_image_file(f) for f in _reference_files(args.reference)],
                                           args.detector)
        print(f"p3m: {len(references)} reference face(s) from {args.reference}", file=sys.stderr)
    originals, anonymised = images_by_stem(args.originals), images_by_stem(args.anonymised)
    mattes = images_by_stem(args.alpha) if args.alpha else {}
    results, totals = {}, {"images": 0, "faces": 0, "redetected": 0, "identity_matches": 0, "changed_transition_pixels": 0}
    for stem in sorted(set(originals) & set(anonymised)):
        alpha = read_matte(mattes[stem]) if stem in mattes else None
        audit = audit_pair(read_image_file(originals[stem]), read_image_file(anonymised[stem]), alpha=alpha,
                           references=references or None, detector=args.detector)
        row = {"faces": audit.faces, "low_confidence": audit.low_confidence, "redetected": audit.redetected,
               "distances": [round(d, 4) for d in audit.distances],
               "reference_distances": [round(d, 4) for d in audit.reference_distances],
               "identity_matches": audit.identity_matches,
               "changed_transition_pixels": audit.changed_transition_pixels}
        results[stem] = row
        totals["images"] += 1
        for key in ("faces", "redetected", "identity_matches"):
            totals[key] += row[key]
        totals["changed_transition_pixels"] += row["changed_transition_pixels"] or 0
        print(f"{stem}: {json.dumps(row)}")
    print(f"p3m: {json.dumps(totals)}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"total": totals, "images": results}, indent=2))
    return 1 if totals["identity_matches"] or totals["changed_transition_pixels"] else 0
