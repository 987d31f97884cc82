"""``p3m evaluate``: score a folder of predicted mattes against ground truth."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from p3m.cli.options import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compute SAD/MSE/MAD(/-T)/GRAD/CONN of predicted mattes against ground truth",
        description="Match prediction and ground-truth files by stem, compute the published "
        "metrics per image, and print the mean table.",
    )
    parser.add_argument("--pred", required=True, type=Path, help="folder of predicted alpha PNGs")
    parser.add_argument("--gt", required=True, type=Path, help="folder of ground-truth alpha PNGs")
    parser.add_argument("--trimap", type=Path, help="folder of trimaps (adds SAD-T, MSE-T, MAD-T, SAD-FG, SAD-BG)")
    parser.add_argument("--json", type=Path, help="write {mean, per_image, count} here")
    parser.add_argument("--csv", type=Path, help="write one row per image here")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="images evaluated at once, in threads (default: the CPU cores, at most 8)")
    parser.add_argument("--fast", action="store_true", help="skip GRAD and CONN")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.io.outputs import output_file
    from p3m.jobs.evaluate import evaluate_folders
    from p3m.jobs.progress import TerminalProgress

    for path, what in ((args.json, "--json file"), (args.csv, "--csv file")):
        if path is not None:
            output_file(path, what)  # before any work, not after it
    workers = args.workers or min(8, os.cpu_count() or 1)
    result = evaluate_folders(args.pred, args.gt, args.trimap, workers=workers, fast=args.fast,
                              progress=TerminalProgress())
    for name, reason in result.problems:
        print(f"p3m: {name}: {reason}", file=sys.stderr)
    if result.per_image:
        print(result.table().to_text())
    else:
        print("p3m: no image could be evaluated", file=sys.stderr)
    if args.json:
        result.write_json(args.json)
    if args.csv:
        result.write_csv(args.csv)
    return 1 if result.problems or not result.per_image else 0
