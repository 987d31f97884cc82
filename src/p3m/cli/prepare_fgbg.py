"""``p3m prepare-fgbg ROOT``: the foreground/background colours the composition loss needs."""

from __future__ import annotations

import argparse

from p3m.cli import say
from p3m.cli.options import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare-fgbg",
        help="estimate train/fg and train/bg for the composition loss",
        description="Estimate foreground and background colours of every training image from "
        "its matte (pymatting multi-level by default; closed-form with --method cf) and write "
        "ROOT/train/fg and ROOT/train/bg. Resumable: existing outputs are skipped.",
    )
    parser.add_argument("root")
    parser.add_argument("--images", default="blurred", choices=["blurred", "original"])
    parser.add_argument("--method", default="ml", choices=["ml", "cf"])
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.training.fgbg import prepare_fgbg

    def report(name, error):
        say.problem(f"failed {name}: {error}") if error else say.note(f"done {name}")

    done, skipped, failures = prepare_fgbg(args.root, images=args.images, method=args.method,
                                           workers=args.workers, overwrite=args.overwrite, progress=report)
    say.note(f"{done} done, {skipped} skipped, {len(failures)} failed")
    return 1 if failures else 0
