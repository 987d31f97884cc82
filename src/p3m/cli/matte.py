"""``p3m matte``: alpha mattes, cut-outs and new backgrounds for images and folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p3m.cli.options import add_engine_options, engine_spec, number_in, open_engine_from, positive_int

OUTPUT_KINDS = ("alpha", "cutout", "composite")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "matte",
        help="alpha mattes, cut-outs and composites for images, folders or globs",
        description="Alpha mattes from P3M-Net (installed or --checkpoint weights) or, without P3M-Net "
        "weights, from the default engine. Outputs go to OUT/alpha, OUT/cutout and OUT/composite, keeping "
        "each input's relative path and stem. Existing outputs are skipped (an interrupted run resumes) "
        "unless --overwrite.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or globs")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUTDIR",
                        help="output folder (alpha/, cutout/, composite/ inside)")
    add_engine_options(parser, method="hybrid")
    parser.add_argument("--save", default="alpha", type=_kinds, help="comma list of alpha,cutout,composite (default alpha)")
    parser.add_argument("--background", default=None,
                        help="composite background: colour name, #rrggbb, r,g,b, an image file, or 'blur' (default white)")
    parser.add_argument("--premultiplied", action="store_true",
                        help="cut-out colours = image x alpha (the published variant) instead of estimated foreground")
    parser.add_argument("--alpha-16bit", action="store_true", help="write 16-bit alpha PNGs")
    parser.add_argument("--max-size", type=number_in(32, 100_000, whole=True), default=None,
                        help="longest P3M-Net input side (default 1600)")
    parser.add_argument("--published-sizing", action="store_true",
                        help="clip height and width to --max-size separately, as the published code (squashes large images)")
    parser.add_argument("--max-pixels", type=number_in(1), default=50e6, help="refuse larger images (default 50e6)")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="same-size images per forward pass (default 1)")
    parser.add_argument("--workers", type=positive_int, default=2, help="threads for decoding and writing (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing outputs")
    parser.set_defaults(func=run)


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in OUTPUT_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {','.join(OUTPUT_KINDS)}; got {text!r}")
    return kinds


def run(args: argparse.Namespace) -> int:
    from p3m.inference.compose import Background
    from p3m.jobs.matte import MatteOptions, matte_files
    from p3m.utils.progress import TerminalProgress

    background = Background(args.background) if args.background else None
    engine = open_engine_from(args, engine_spec(args), max_size=args.max_size, batch_size=args.batch_size,
                              sizing="published" if args.published_sizing else None)
    print(f"p3m: engine {engine.summary()}", file=sys.stderr)
    options = MatteOptions(save=args.save, background=background, premultiplied=args.premultiplied,
                           alpha_16bit=args.alpha_16bit, overwrite=args.overwrite, workers=args.workers,
                           batch_size=args.batch_size, max_pixels=int(args.max_pixels))
    result = matte_files(engine, args.inputs, args.out, options, progress=TerminalProgress())
    print(f"p3m: {result.line()}", file=sys.stderr)
    return 0 if result.ok else 1
