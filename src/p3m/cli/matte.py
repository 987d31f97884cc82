"""``p3m matte``: alpha mattes, cut-outs and new backgrounds for images and folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p3m.cli import say
from p3m.cli.options import (
    add_cluster_options,
    add_engine_options,
    add_face_options,
    add_options,
    cluster_from,
    engine_options,
    face_options,
    given,
)
from p3m.options import MatteOptions


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "matte",
        help="alpha mattes, cut-outs and composites for images, folders or globs",
        description="Alpha mattes from P3M-Net (installed or --checkpoint weights) or, without P3M-Net "
        "weights, from the default engine. With a folder for -o, outputs go to OUT/alpha, OUT/cutout and "
        "OUT/composite, keeping each input's relative path and stem; existing outputs are skipped (an "
        "interrupted run resumes) unless --overwrite. With one input and -o FILE.png/.jpg/.webp (or -o - for "
        "stdout; input - reads stdin), that one file is written: a cut-out for .png/.webp, a composite for .jpg "
        "or with --background (on it, as PNG, JPEG or WebP), or the --save kind. With --anonymize every face in the "
        "outputs is blurred by the fail-closed, audited blur of p3m anonymize; an image that cannot be anonymized "
        "is held back (exit status 1).",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image or video files, folders (recursive) or globs; videos (.mp4 .mov .mkv .webm .avi) "
                        "need the video extra")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUT",
                        help="output folder (alpha/, cutout/, composite/ inside), or one file for one input "
                        "(.png/.webp cut-out, .jpg composite), or - for stdout")
    add_engine_options(parser)
    add_options(parser, MatteOptions)
    add_face_options(parser, title="private cut-outs (with --anonymize: faces blurred as p3m anonymize does)")
    add_cluster_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.errors import OptionError
    from p3m.jobs.matte import matte_files, privacy_line
    from p3m.jobs.progress import TerminalProgress

    engine = engine_options(args)
    values = given(args, MatteOptions)
    values["anonymize"] = face_options(args, values.get("anonymize", False))
    single = _single_output(args, values)
    if single is not None:
        values["save"] = (single[0],)
    options = MatteOptions.from_values(values, "cli")
    cluster = cluster_from(args, engine)
    if cluster is not None and single is not None:
        raise OptionError("--cluster is for folders of outputs (-o FOLDER), not one output file")
    if cluster is None:
        from p3m.inference.factory import open_engine

        runner = open_engine(engine)
        say.note(f"engine {runner.summary(verbose=args.verbose)}")
    else:
        runner = engine.engine  # each actor opens it
        say.note(f"engine {runner} in Ray actors at {cluster.address}")
    if single is not None:
        return _matte_one(runner, args, options, single[1])
    result = matte_files(runner, args.inputs, args.out, options, progress=TerminalProgress(quiet=say.quiet),
                         cluster=cluster)
    if options.anonymize is not None:
        say.note(f"privacy: {privacy_line(result.records)}")
    say.note(result.line())
    return 0 if result.ok else 1


OUTPUT_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg")


def _single_output(args: argparse.Namespace, values: dict) -> tuple[str, str] | None:
    """(kind, suffix) when one input goes to one file or stdout; None for a folder of outputs.

    Without --save the kind follows the file: a composite for a JPEG or when a
    --background is given (on it, in any format), else a cut-out.
    """
    from p3m.errors import OptionError
    from p3m.io.discovery import IMAGE_SUFFIXES

    out, stdin = str(args.out), args.inputs == ["-"]
    suffix = Path(out).suffix.lower()
    if suffix in IMAGE_SUFFIXES - set(OUTPUT_SUFFIXES) and not Path(out).is_dir():
        raise OptionError(f"-o {out}: p3m writes .png, .webp or .jpg images; use one of those (or a folder)")
    if out != "-" and (suffix not in OUTPUT_SUFFIXES or Path(out).is_dir()):
        if stdin:
            raise OptionError("input - (stdin) needs -o FILE.png/.jpg/.webp or -o - (stdout)")
        return None
    if not stdin and not (len(args.inputs) == 1 and Path(args.inputs[0]).is_file()):
        raise OptionError(f"-o {out} is one file: give one input image (or an output folder for many)")
    kinds = values.get("save") or \
        (("composite",) if suffix in (".jpg", ".jpeg") or values.get("background") is not None else ("cutout",))
    if len(kinds) != 1 or kinds[0] == "frames":
        raise OptionError(f"-o {out} holds one image: choose one --save kind (alpha, cutout or composite)")
    if suffix in (".jpg", ".jpeg") and (kinds[0] == "cutout" or values.get("alpha_16bit")):
        raise OptionError(f"-o {out}: a JPEG has no transparency or 16 bits; use .png (or --save composite)")
    return kinds[0], suffix if suffix in OUTPUT_SUFFIXES else ".png"


def _matte_one(engine, args: argparse.Namespace, options: MatteOptions, suffix: str) -> int:
    """One image in (a file or stdin), one image out (a file or stdout)."""
    from p3m.errors import OutputError
    from p3m.io.images import read_image_bytes, read_image_file
    from p3m.io.outputs import OutputPlan, output_file, withdraw
    from p3m.io.writers import encode_image
    from p3m.jobs.matte import held_back_line
    from p3m.pipeline import matte_image
    from p3m.utils.files import atomic_path

    source, (kind,) = args.inputs[0], options.save
    target = None
    if str(args.out) != "-":
        target = output_file(args.out)
        OutputPlan(target.parent, [] if source == "-" else [source]).path(target.name)  # never onto the input
        if target.exists() and not options.overwrite:
            raise OutputError(f"{target}: exists; pass --overwrite to replace it")
    if source == "-":
        image = read_image_bytes(sys.stdin.buffer.read(), max_pixels=options.max_pixels)
    else:
        image = read_image_file(source, max_pixels=options.max_pixels)
    result = matte_image(engine, image, options)
    if result.held_back:
        if target is not None:  # --overwrite asked to replace it: nothing unblurred stays
            withdraw({kind: target})
        say.problem(f"held back: {source}: {held_back_line(result.cause, result.reason)}")
        return 1
    if result.privacy is not None:
        say.note(f"privacy: {result.privacy.line()}")
    data = encode_image(result.outputs[kind], suffix)
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        if result.warning:
            say.problem(f"warning: {source}: {result.warning}")
        return 0
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    say.note(f"wrote {kind} {target}")
    if result.warning:
        say.problem(f"warning: {source}: {result.warning}")
    return 0
