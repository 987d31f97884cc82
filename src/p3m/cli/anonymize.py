"""``p3m anonymize``: blur faces the P3M-10k way, fail-closed, with a privacy audit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p3m.cli.options import add_cluster_options, add_detector_option, cluster_from, number_in, positive_int


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
    parser.add_argument("--alpha", type=Path, help="folder of mattes (same stems): transition pixels stay exact")
    parser.add_argument("--facemask", type=Path, help="folder of hand-drawn face masks, used where no face is found")
    parser.add_argument("--strength", default="medium", choices=["low", "medium", "high"],
                        help="blur sigma 0.05 / 0.12 / 0.20 x face width (default medium)")
    parser.add_argument("--sigma-scale", type=number_in(0, 2, open_low=True),
                        help="explicit sigma as a fraction of the face width (0 < s <= 2)")
    parser.add_argument("--forehead", type=number_in(0, 2), default=0.3,
                        help="lift of the mask above the brows, x face height (0..2, default 0.3)")
    parser.add_argument("--protect-dilation", type=number_in(0, 100, whole=True), default=0,
                        help="dilate the protected transition pixels by this many pixels (0..100)")
    add_detector_option(parser)
    parser.add_argument("--jpeg-quality", type=number_in(1, 100, whole=True),
                        help="JPEG quality 1..100 (default: keep the input's)")
    parser.add_argument("--allow-no-face", action="store_true", help="copy images without faces through unchanged")
    parser.add_argument("--no-audit", action="store_true",
                        help="accepted for old scripts and ignored: the privacy check always runs (fail closed)")
    parser.add_argument("--workers", type=positive_int, default=1, help="images anonymized in parallel (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="redo images whose outputs exist")
    add_cluster_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
    from p3m.jobs.progress import TerminalProgress
    from p3m.privacy.dlib_models import shape_predictor
    from p3m.privacy.faces import detector_note, resolve_detector

    shape_predictor()  # fail early, once, if dlib or its models are missing
    detector = resolve_detector(args.detector)
    if args.no_audit:
        print("p3m: --no-audit is ignored: every image is audited before it is written (fail closed)", file=sys.stderr)
    options = AnonymizeOptions(strength=args.strength, sigma_scale=args.sigma_scale, forehead=args.forehead,
                               detector=detector, protect_dilation=args.protect_dilation, alpha_dir=args.alpha,
                               facemask_dir=args.facemask, allow_no_face=args.allow_no_face,
                               overwrite=args.overwrite, workers=args.workers, jpeg_quality=args.jpeg_quality)
    report = anonymize_files(args.inputs, args.out, options, progress=TerminalProgress(), cluster=cluster_from(args))
    print(f"p3m: face detection: {detector}", file=sys.stderr)
    if note := detector_note(detector):
        print(f"p3m: {note}", file=sys.stderr)
    print(f"p3m: privacy audit: {report.audit_line()}", file=sys.stderr)
    print(f"p3m: {report.line()}; report in {args.out}/report.csv", file=sys.stderr)
    return 0 if report.ok else 1
