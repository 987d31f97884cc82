"""``p3m benchmark``: P3M-500-P / P3M-500-NP in one command, with a paper-style report."""

from __future__ import annotations

import argparse
from pathlib import Path

from p3m.cli import say
from p3m.cli.options import add_engine_options, given, positive_int
from p3m.errors import OptionError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="run models on P3M-500-P/NP, save alphas, evaluate, write report.md",
        description="Run one or more models on the P3M-10k test splits and write report.md "
        "(paper layout, published P3M-Net beside), metrics.json, per_image.csv and a gallery "
        "of the worst images. Defaults reproduce the paper's test setting (RESIZE, published sizing).",
    )
    parser.add_argument("--data", required=True, type=Path, help="P3M-10k root (splits under validation/ or the root)")
    parser.add_argument("--split", default="all", choices=["P3M-500-P", "P3M-500-NP", "all"])
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]PATH",
                        help="weights to evaluate; repeat with NAME=PATH for a row per model")
    parser.add_argument("--engine", action="append", default=[], choices=["default"],
                        help="add the default engine (segmentation + closed-form matting) as a baseline row")
    parser.add_argument("--trained-on", action="append", default=[], metavar="[NAME=]B|N",
                        help="which faces a model was trained on (B blurred, N normal): labels the PPT protocol")
    add_engine_options(parser, skip=("engine",), defaults=PUBLISHED_SETTING)
    parser.add_argument("--out", type=Path, default=Path("benchmark_out"), help="output folder (default benchmark_out)")
    parser.add_argument("--limit", type=positive_int, help="first N images of each split")
    parser.add_argument("--fast", action="store_true", help="skip GRAD and CONN")
    parser.set_defaults(func=run)


#: The paper's test setting: what the benchmark runs when these options are left out.
PUBLISHED_SETTING = {"method": "resize", "sizing": "published"}


def parse_named(values: list[str], what: str) -> list[tuple[str | None, str]]:
    pairs = []
    for value in values:
        name, sep, rest = value.partition("=")
        pairs.append((name, rest) if sep else (None, value))
        if sep and not name:
            raise OptionError(f"{what} {value!r}: empty name before '='")
    return pairs


def _checkpoints(values: list[str]) -> dict[str, str]:
    pairs = [(name or Path(path).name.split(".")[0], path) for name, path in parse_named(values, "--checkpoint")]
    if len({name for name, _ in pairs}) != len(pairs):
        raise OptionError("two --checkpoint entries have the same name; use NAME=PATH")
    for name, _ in pairs:  # a name becomes a folder of the output: no '/', no '..'
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
            raise OptionError(f"--checkpoint name {name!r}: use letters, digits, '-', '_' and '.' (not first)")
    return dict(pairs)


def _trained_on(values: list[str], names: list[str]) -> dict[str, str]:
    labels = {}
    for name, letter in parse_named(values, "--trained-on"):
        letter = letter.upper()[:1]
        if letter not in ("B", "N"):
            raise OptionError(f"--trained-on {letter!r}: use B (blurred) or N (normal)")
        for target in ([name] if name else names):
            if target not in names:
                raise OptionError(f"--trained-on names {target!r}, which is not a --checkpoint name")
            labels[target] = letter
    return labels


def _network(args: argparse.Namespace):
    """The network options given (the benchmark's own --engine and --checkpoint name its rows)."""
    from p3m.options import EngineOptions

    return EngineOptions.from_values({k: v for k, v in given(args, EngineOptions).items() if k != "engine"}, "cli")


def run(args: argparse.Namespace) -> int:
    from p3m.data.layout import SPLITS, find_split
    from p3m.jobs.benchmark import open_models, run_benchmark
    from p3m.jobs.progress import TerminalProgress

    if not args.checkpoint and not args.engine:
        raise OptionError("nothing to benchmark: pass --checkpoint [NAME=]PATH and/or --engine default")
    checkpoints = _checkpoints(args.checkpoint)
    splits = list(SPLITS) if args.split == "all" else [args.split]
    for split in splits:  # a bad data folder is reported before any network is loaded
        find_split(args.data, split)
    models = open_models(checkpoints, _trained_on(args.trained_on, list(checkpoints)),
                         default_engine="default" in args.engine,
                         **{**PUBLISHED_SETTING, **_network(args).given()})
    for model in models:
        say.note(f"{model.name}: engine {model.engine.summary(verbose=args.verbose)}")
    result = run_benchmark(models, args.data, splits, args.out, limit=args.limit, fast=args.fast,
                           progress=TerminalProgress())
    print(result.markdown())
    say.note(f"wrote {args.out}/report.md, metrics.json, per_image.csv, gallery_*.png")
    return 1 if result.problems else 0
