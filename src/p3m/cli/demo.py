"""``p3m demo OUT``: run the whole system and write OUT/index.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from p3m.cli.options import number_in


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="matte and anonymize a real portrait, train and benchmark on synthetic data; write index.html",
        description="The whole system in one command: default-engine matting of a real portrait, face "
        "anonymization with a privacy audit, a short CPU training run on a synthetic P3M-10k and a "
        "B:B / B:N benchmark; results in OUT/index.html and OUT/report.md. Needs the default engine's "
        "model (p3m weights fetch default) and the demo extras (pip install 'p3m[demo]').",
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=number_in(0, open_low=True), default=4.0, help="training time on the CPU (default 4)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds), for tests")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.demo import run_demo

    run_demo(args.out, minutes=args.minutes, quick=args.quick)
    return 0
