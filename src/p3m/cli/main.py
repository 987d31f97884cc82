"""The ``p3m`` command: argument parsing and error reporting for all subcommands.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func``. Errors the library raises for bad input
(:class:`p3m.errors.P3MError`) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from p3m.cli import (
    anonymize,
    benchmark,
    convert,
    demo,
    doctor,
    evaluate,
    export,
    matte,
    prepare_fgbg,
    privacy_audit,
    say,
    serve,
    synth,
    train,
    weights,
)
from p3m.errors import OptionError, P3MError

#: Packages that some commands import at module level: import name -> (package, extra, what for).
#: (Imports inside functions go through p3m.utils.optional.require, which names the extra itself.)
OPTIONAL_PACKAGES = {
    "torch": ("PyTorch", "torch", "P3M-Net weights, training and export"),
}

SUBCOMMANDS = (demo, doctor, matte, anonymize, privacy_audit, evaluate, benchmark, synth, train, prepare_fgbg,
               weights, convert, export, serve)


class _Version(argparse.Action):
    """--version, looking the version up only when asked (it costs an import)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import p3m

        print(f"p3m {p3m.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p3m",
        description="Privacy-preserving portrait matting (P3M-Net) toolkit.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    for command in _commands(parser):  # one --quiet for every command, nested ones included
        command.add_argument("-q", "--quiet", action="store_true",
                             help="print only errors and what was held back or failed (no progress, engine or totals)")
    return parser


def _commands(parser: argparse.ArgumentParser):
    """The parsers that run something: every subcommand without subcommands of its own."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):  # aliases share a parser
                nested = list(_commands(command))
                yield from nested or [command]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="p3m: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    say.quiet = bool(getattr(args, "quiet", False))
    from p3m.inference import kernels

    kernels.announce = not say.quiet
    try:
        return int(args.func(args) or 0)
    except OptionError as exc:  # a usage error, as argparse's own: exit status 2
        print(f"p3m: error: {exc}", file=sys.stderr)
        return 2
    except P3MError as exc:
        print(f"p3m: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("p3m: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        if exc.name not in OPTIONAL_PACKAGES:
            raise
        package, extra, what = OPTIONAL_PACKAGES[exc.name]
        print(f"p3m: error: {args.command} needs {package} for {what}, and this install has none: "
              f'pip install "p3m[{extra}]"', file=sys.stderr)
        return 1


def entry_point() -> None:
    try:
        sys.exit(main())
    except BrokenPipeError:  # `p3m weights list | head`: the reader has gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
