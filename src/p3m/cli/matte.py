"""``p3m matte``: alpha mattes, cut-outs and new backgrounds for images and folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p3m.cli.options import add_network_options
from p3m.inference.batch import OUTPUT_KINDS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "matte",
        help="alpha mattes, cut-outs and composites for images, folders or globs",
        description="Predict alpha mattes with P3M-Net. Outputs go to OUT/alpha, OUT/cutout "
        "and OUT/composite, keeping each input's relative path and stem. Existing outputs "
        "are skipped (an interrupted run resumes) unless --overwrite.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or globs")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUTDIR")
    parser.add_argument("--checkpoint", help="P3M-Net weights (.pth/.pth.tar/.ckpt/.safetensors) or an installed "
                        "name (p3m weights list); default: the installed network")
    parser.add_argument("--engine", default="auto", choices=["auto", "p3m", "default"],
                        help="p3m: P3M-Net weights (--checkpoint or installed); default: segmentation + "
                        "closed-form matting, no P3M-Net weights needed; auto (default): p3m when weights exist")
    add_network_options(parser, method="hybrid")
    parser.add_argument("--save", default="alpha", type=_kinds, help="comma list of alpha,cutout,composite (default alpha)")
    parser.add_argument("--background", default=None,
                        help="composite background: colour name, #rrggbb, r,g,b, an image file, or 'blur' (default white)")
    parser.add_argument("--premultiplied", action="store_true",
                        help="cut-out colours = image x alpha (the published variant) instead of estimated foreground")
    parser.add_argument("--alpha-16bit", action="store_true", help="write 16-bit alpha PNGs")
    parser.add_argument("--max-size", type=int, default=1600, help="longest network input side (default 1600)")
    parser.add_argument("--published-sizing", action="store_true",
                        help="clip height and width to --max-size separately, as the published code (squashes large images)")
    parser.add_argument("--max-pixels", type=float, default=50e6, help="refuse larger images (default 50e6)")
    parser.add_argument("--batch-size", type=int, default=1, help="same-size images per forward pass (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="threads for decoding and writing (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing outputs")
    parser.set_defaults(func=run)


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in OUTPUT_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {','.join(OUTPUT_KINDS)}; got {text!r}")
    return kinds


def make_engine(args: argparse.Namespace):
    """The engine the options ask for, and the weights file it uses."""
    from p3m.errors import P3MError
    from p3m.inference.engine import NetworkEngine
    from p3m.weights import load_model
    from p3m.weights.default_model import default_model_path
    from p3m.weights.store import resolve_weights, weights_dir

    checkpoint = resolve_weights(args.checkpoint) if args.engine != "default" else None
    if checkpoint is None and args.engine == "p3m":
        raise P3MError(f"no P3M-Net weights: pass --checkpoint PATH, or install them once with "
                       f"p3m weights install PATH (into {weights_dir()})")
    if checkpoint is None:
        from p3m.inference.default_engine import SegmentationMattingEngine

        return SegmentationMattingEngine(), default_model_path()
    model = load_model(checkpoint, arch=args.arch, device=args.device)
    engine = NetworkEngine(model, method=args.method, max_size=args.max_size,
                           sizing="published" if args.published_sizing else "aspect",
                           precision=args.precision, batch_size=args.batch_size)
    return engine, checkpoint


def run(args: argparse.Namespace) -> int:
    from p3m.inference.batch import MatteOptions, run_matting
    from p3m.inference.compose import Background
    from p3m.io.discovery import collect_images
    from p3m.utils.progress import BatchProgress

    background = Background(args.background) if args.background else None
    engine, weights = make_engine(args)
    items, problems = collect_images(args.inputs)
    print(f"p3m: engine {engine.description}, weights {weights}", file=sys.stderr)
    progress = BatchProgress(len(items), desc="matte")
    for spec, reason in problems:
        progress.failed(spec, reason, counted=False)
    options = MatteOptions(save=args.save, background=background, premultiplied=args.premultiplied,
                           alpha_16bit=args.alpha_16bit, overwrite=args.overwrite, workers=args.workers,
                           batch_size=args.batch_size, max_pixels=int(args.max_pixels))
    summary = run_matting(engine, items, args.out, options, progress)
    print(f"p3m: {summary.line()}", file=sys.stderr)
    return 1 if summary.failed else 0
