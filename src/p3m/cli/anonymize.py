"""``p3m anonymize``: blur faces the P3M-10k way, fail-closed, with a privacy audit."""

from __future__ import annotations

import argparse
from pathlib import Path

from p3m.cli import say
from p3m.cli.options import add_cluster_options, add_options, cluster_from, given
from p3m.options import AnonymizeOptions


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "anonymize",
        help="blur faces (landmark-based, matting-aware) and audit the privacy outcome",
        description="Blur every face: the jaw/cheek contour and brows (lifted to the forehead), "
        "minus the matte's transition pixels, with a Gaussian of a strength relative to the face. "
        "Images without a detected face are NOT written (fail closed) unless --facemask or "
        "--allow-no-face. The input is never modified.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="images, videos (the video extra), folders or globs; a video is blurred in every "
                        "frame and written as blurred_image/NAME.mp4, or held back (docs/video.md)")
    parser.add_argument("-o", "--out", required=True, type=Path,
                        help="output folder (blurred_image/, facemask/, mask/, report.csv, report.json)")
    add_options(parser, AnonymizeOptions)
    parser.add_argument("--no-audit", action="store_true",
                        help="accepted for old scripts and ignored: the privacy check always runs (fail closed)")
    add_cluster_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.jobs.anonymize import anonymize_files
    from p3m.jobs.progress import TerminalProgress
    from p3m.privacy.faces import detector_note
    from p3m.privacy.people import people_note

    if args.no_audit:
        say.note("--no-audit is ignored: every image is audited before it is written (fail closed)")
    options = AnonymizeOptions.from_values(given(args, AnonymizeOptions), "cli")
    report = anonymize_files(args.inputs, args.out, options, progress=TerminalProgress(quiet=say.quiet),
                             cluster=cluster_from(args))
    say.note(f"face detection: {report.detector}")
    for warning in (detector_note(report.detector), people_note()):
        if warning:  # reduced recall: a privacy matter, shown even with --quiet
            say.problem(warning)
    say.note(f"privacy audit: {report.audit_line()}")
    say.note(f"{report.line()}; report in {args.out}/report.csv")
    return 0 if report.ok else 1
