"""``p3m privacy-audit ORIGINALS ANONYMIZED``: measure how well faces were hidden."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from p3m.cli import say
from p3m.cli.options import add_options
from p3m.options import FaceBlurOptions


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "privacy-audit",
        help="re-detection, identity distance and matting integrity of anonymized images",
        description="For each pair (matched by stem): does the detector still find the face, how far "
        "dlib's identity descriptor of the blurred face is from the original (and from reference "
        "photos of the people, --reference DIR with one folder per person), and, with --alpha, how "
        "many transition pixels changed (must be 0). A match is a distance below 0.6.",
    )
    parser.add_argument("originals", type=Path)
    parser.add_argument("anonymized", type=Path)
    parser.add_argument("--reference", type=Path,
                        help="reference photos of the people: a folder with one subfolder per person, "
                        "or a CSV of image paths (first column; a person column may follow)")
    parser.add_argument("--alpha", type=Path, help="folder of mattes")
    add_options(parser, FaceBlurOptions, only=("detector",))
    parser.add_argument("--json", type=Path, help="write per-image results here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.jobs.audit import audit_folders
    from p3m.utils.files import atomic_path

    report = audit_folders(args.originals, args.anonymized, reference=args.reference, alpha=args.alpha,
                           detector=getattr(args, "detector", FaceBlurOptions.default("detector")))
    if args.reference:
        say.note(f"{report.references} reference face(s) from {args.reference}")
    data = report.to_dict()
    for stem, row in data["images"].items():
        print(f"{stem}: {json.dumps(row)}")
    say.note(json.dumps(data['total']))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(data, indent=2))
    return 1 if report.leaks else 0
