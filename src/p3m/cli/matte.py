"""``p3m matte``: alpha mattes, cut-outs and new backgrounds for images and folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p3m.cli.options import (
    add_cluster_options,
    add_engine_options,
    cluster_from,
    engine_options_from,
    engine_spec,
    number_in,
    open_engine_from,
    positive_int,
)

OUTPUT_KINDS = ("alpha", "cutout", "composite", "frames")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "matte",
        help="alpha mattes, cut-outs and composites for images, folders or globs",
        description="Alpha mattes from P3M-Net (installed or --checkpoint weights) or, without P3M-Net "
        "weights, from the default engine. With a folder for -o, outputs go to OUT/alpha, OUT/cutout and "
        "OUT/composite, keeping each input's relative path and stem; existing outputs are skipped (an "
        "interrupted run resumes) unless --overwrite. With one input and -o FILE.png/.jpg/.webp (or -o - for "
        "stdout; input - reads stdin), that one file is written: a cut-out for .png/.webp, a composite for .jpg, "
        "or the --save kind.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image or video files, folders (recursive) or globs; videos (.mp4 .mov .mkv .webm .avi) "
                        "need the video extra")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUT",
                        help="output folder (alpha/, cutout/, composite/ inside), or one file for one input "
                        "(.png/.webp cut-out, .jpg composite), or - for stdout")
    add_engine_options(parser, method="hybrid")
    parser.add_argument("--save", default=None, type=_kinds,
                        help="comma list of alpha,cutout,composite,frames (default: alpha for a folder; for one "
                        "file, by its extension). For a video: alpha and composite are MP4 (H.264), cutout a "
                        "transparent WebM (VP9), frames a folder of RGBA PNGs")
    parser.add_argument("--background", default=None,
                        help="composite background: a CSS colour (navy, #0f0, rgb(0,255,0)), r,g,b, chroma-green, "
                        "chroma-blue, an image file, or 'blur' (default white)")
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
    parser.add_argument("--no-stabilise", dest="stabilise", action="store_false",
                        help="videos: do not smooth the edge band between frames (on by default; docs/video.md)")
    add_cluster_options(parser)
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
    from p3m.jobs.progress import TerminalProgress

    single = _single_output(args)
    background = Background(args.background) if args.background else None
    network = dict(max_size=args.max_size, batch_size=args.batch_size,
                   sizing="published" if args.published_sizing else None)
    cluster = cluster_from(args, **engine_options_from(args, **network))
    if cluster is not None and single is not None:
        from p3m.errors import OptionError

        raise OptionError("--cluster is for folders of outputs (-o FOLDER), not one output file")
    if cluster is None:
        engine = open_engine_from(args, engine_spec(args), **network)
        print(f"p3m: engine {engine.summary()}", file=sys.stderr)
    else:
        engine = engine_spec(args)  # each actor opens it
        print(f"p3m: engine {engine} in Ray actors at {cluster.address}", file=sys.stderr)
    options = MatteOptions(save=args.save or ("alpha",), background=background, premultiplied=args.premultiplied,
                           alpha_16bit=args.alpha_16bit, overwrite=args.overwrite, workers=args.workers,
                           batch_size=args.batch_size, max_pixels=int(args.max_pixels), stabilise=args.stabilise)
    if single is not None:
        return _matte_one(engine, args, options, *single)
    result = matte_files(engine, args.inputs, args.out, options, progress=TerminalProgress(), cluster=cluster)
    print(f"p3m: {result.line()}", file=sys.stderr)
    return 0 if result.ok else 1


OUTPUT_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg")


def _single_output(args: argparse.Namespace) -> tuple[str, str] | None:
    """(kind, suffix) when one input goes to one file or stdout; None for a folder of outputs."""
    from p3m.errors import OptionError

    out, stdin = str(args.out), args.inputs == ["-"]
    suffix = Path(out).suffix.lower()
    if out != "-" and (suffix not in OUTPUT_SUFFIXES or Path(out).is_dir()):
        if stdin:
            raise OptionError("input - (stdin) needs -o FILE.png/.jpg/.webp or -o - (stdout)")
        return None
    if not stdin and not (len(args.inputs) == 1 and Path(args.inputs[0]).is_file()):
        raise OptionError(f"-o {out} is one file: give one input image (or an output folder for many)")
    kinds = args.save or (("composite",) if suffix in (".jpg", ".jpeg") else ("cutout",))
    if len(kinds) != 1:
        raise OptionError(f"-o {out} holds one image: choose one --save kind (alpha, cutout or composite)")
    if suffix in (".jpg", ".jpeg") and (kinds[0] == "cutout" or args.alpha_16bit):
        raise OptionError(f"-o {out}: a JPEG has no transparency or 16 bits; use .png (or --save composite)")
    return kinds[0], suffix or ".png"


def _matte_one(engine, args: argparse.Namespace, options, kind: str, suffix: str) -> int:
    """One image in (a file or stdin), one image out (a file or stdout)."""
    from p3m.errors import OutputError
    from p3m.io.images import read_image_bytes, read_image_file
    from p3m.io.outputs import OutputPlan, output_file
    from p3m.io.writers import encode_image
    from p3m.jobs.matte import render_outputs
    from p3m.utils.files import atomic_path

    source = args.inputs[0]
    if source == "-":
        image = read_image_bytes(sys.stdin.buffer.read(), max_pixels=options.max_pixels)
    else:
        image = read_image_file(source, max_pixels=options.max_pixels)
    data = encode_image(render_outputs(image, engine.predict([image])[0], (kind,), options)[kind], suffix)
    if str(args.out) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    target = output_file(args.out)
    OutputPlan(target.parent, [] if source == "-" else [source]).path(target.name)  # never onto the input
    if target.exists() and not args.overwrite:
        raise OutputError(f"{target}: exists; pass --overwrite to replace it")
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    print(f"p3m: wrote {kind} {target}", file=sys.stderr)
    return 0
