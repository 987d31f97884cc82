"""``p3m synth``: a small synthetic P3M-10k, for tests, demos and first steps."""

from __future__ import annotations

import argparse
from pathlib import Path

from p3m.cli import say
from p3m.cli.options import number_in


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 256x192; got {text!r}") from None
    if h < 64 or w < 64:
        raise argparse.ArgumentTypeError("size must be at least 64x64")
    return h, w


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic dataset in the P3M-10k layout",
        description="Procedural portraits (head, shoulders, hair strands with soft edges, a face "
        "with features, textured backgrounds) with exact alpha mattes, in the P3M-10k layout: "
        "train/{blurred_image,mask,fg,bg}, validation/P3M-500-P and P3M-500-NP.",
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=number_in(0, whole=True), default=16, help="training portraits (default 16)")
    parser.add_argument("--val", type=number_in(0, whole=True), default=8, help="portraits per test split (default 8)")
    parser.add_argument("--size", type=_size, default=(256, 192), help="HxW (default 256x192)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.data.synthetic import write_synthetic_dataset
    from p3m.jobs.progress import TerminalProgress
    from p3m.jobs.results import ItemRecord, Status

    progress = TerminalProgress()
    progress.start(args.train + 2 * args.val, desc="synth")
    write_synthetic_dataset(args.out, train=args.train, val=args.val, size=args.size, seed=args.seed,
                            progress=lambda: progress.record(ItemRecord("portrait", Status.DONE)))
    progress.close()
    say.note(f"wrote {args.train} training and 2 x {args.val} test portraits to {args.out}")
    return 0
