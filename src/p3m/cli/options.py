"""The command line's flags, derived from the options model (:mod:`p3m.options`).

Each option set's fields become flags (``--max-size``, ``--temporal``, ...) whose
values go through the field's own check, so a bad value gets the model's message. A
flag the user did not give is absent from the parsed arguments (argparse's
``SUPPRESS``), so the model's defaults apply and the factory can tell an option given
from one left out. A few spellings belong to the command line alone: ``--checkpoint``
(the same as ``--engine FILE``), ``--cuda`` (``--device cuda``) and
``--published-sizing`` (``--sizing published``). Nothing here imports torch or numpy.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from p3m.errors import EngineError, OptionError
from p3m.options import ClusterOptions, EngineOptions, FaceBlurOptions, Option, OptionSet, face_options_for


def flag_of(name: str, spec: Option) -> str:
    return spec.flag or "--" + name.replace("_", "-")


def add_options(parser, options: type[OptionSet], *, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                title: str | None = None, defaults: dict[str, str] | None = None) -> None:
    """A flag for each field of ``options`` the command line offers (``only`` those, but not ``skip``).

    ``defaults`` changes only what the help says a left-out option means (the benchmark's
    published setting, say); the value itself is decided where the options are used.
    """
    target = parser.add_argument_group(title) if title else parser
    for f, spec in options.options():
        if not spec.cli or f.name in skip or (only is not None and f.name not in only):
            continue
        shown = (defaults or {}).get(f.name, spec.shown_default or _shown_default(options.default(f.name)))
        help_text = spec.help + (f" (default {shown})" if shown else "")
        if f.type in ("bool", bool) or spec.switch:
            flag = spec.negative or flag_of(f.name, spec)
            action = "store_false" if spec.negative else "store_true"
            target.add_argument(flag, *spec.aliases, dest=f.name, action=action, default=argparse.SUPPRESS,
                                help=help_text)
            continue
        allowed = spec.allowed()
        metavar = spec.metavar or ("{" + ",".join(allowed) + "}" if allowed and not spec.many else None)
        target.add_argument(flag_of(f.name, spec), *spec.aliases, dest=f.name, type=_parser(f.name, spec),
                            default=argparse.SUPPRESS, metavar=metavar or f.name.upper(), help=help_text)


def _shown_default(value: Any) -> str:
    if value is None or value is False or value is True or value == 0 and not isinstance(value, float):
        return ""
    return ",".join(value) if isinstance(value, tuple) else str(value)


def _parser(name: str, spec: Option):
    def parse(text: str):
        try:
            return spec.parse(name, text, "cli")
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def given(args: argparse.Namespace, options: type[OptionSet]) -> dict[str, Any]:
    """The fields of ``options`` the user gave on the command line."""
    return {name: getattr(args, name) for name in options.names() if hasattr(args, name)}


def add_engine_options(parser, *, skip: tuple[str, ...] = (), defaults: dict[str, str] | None = None) -> None:
    add_options(parser, EngineOptions, skip=skip, defaults=defaults)
    if "engine" not in skip:
        parser.add_argument("--checkpoint", metavar="PATH", help="P3M-Net weights file (.pth/.pth.tar/.ckpt/"
                            ".safetensors) or installed name; the same as --engine PATH")
    parser.add_argument("--cuda", dest="device", action="store_const", const="cuda", default=argparse.SUPPRESS,
                        help="same as --device cuda")
    parser.add_argument("--published-sizing", dest="sizing", action="store_const", const="published",
                        default=argparse.SUPPRESS, help="same as --sizing published")


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The engine the flags ask for: --engine or --checkpoint, and the network options."""
    values = given(args, EngineOptions)
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is not None:
        if values.get("engine", "auto") not in ("auto", "p3m"):
            raise EngineError(f"--checkpoint {checkpoint} and --engine {values['engine']} name two engines; give one")
        values["engine"] = checkpoint
    return EngineOptions.from_values(values, "cli")


def open_engine_from(args: argparse.Namespace):
    from p3m.inference.factory import open_engine

    return open_engine(engine_options(args))


def add_face_options(parser, *, title: str | None = None) -> None:
    add_options(parser, FaceBlurOptions, title=title)


def face_options(args: argparse.Namespace, anonymize: bool):
    """FaceBlurOptions for a private cut-out, or None; face flags without --anonymize are an error."""
    return face_options_for(anonymize, given(args, FaceBlurOptions), "cli")


def add_cluster_options(parser) -> None:
    add_options(parser, ClusterOptions, title="cluster (Ray; pip install \"p3m[cluster]\")")


def cluster_from(args: argparse.Namespace, engine: EngineOptions | None = None) -> ClusterOptions | None:
    """ClusterOptions from the --cluster flags, or None when --cluster is not given."""
    values = given(args, ClusterOptions)
    if "address" not in values:
        if values:
            raise OptionError(f"{', '.join(values)} appl{'ies' if len(values) == 1 else 'y'} to cluster runs: "
                              "add --cluster ADDRESS, or leave them out")
        return None
    return ClusterOptions.from_values(values, "cli", engine_options=engine)


def number_in(low: float, high: float = math.inf, *, whole: bool = False, open_low: bool = False):
    """An argparse type for commands whose options are not in the model (training, synth, ...):
    a finite number in [low, high] ((low, high] with ``open_low``), with the model's wording."""
    spec = Option("", number=int if whole else float, low=low, high=None if high == math.inf else high,
                  open_low=open_low)
    return _parser("value", spec)


positive_int = number_in(1, whole=True)
