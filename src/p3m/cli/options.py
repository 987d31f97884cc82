"""Options shared by the commands that run an engine (matte, benchmark), and the one
mapping from those options to :func:`p3m.inference.factory.open_engine`.

The seed article's names work as aliases: ``--model resnet34|vitae-s`` for ``--arch``,
``--cuda`` for ``--device cuda``, and ``--method HYBRID|RESIZE`` in any case. Network
options default to None ("P3M-Net's default"), so the factory can tell an option the
user gave from one they did not. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import math

from p3m.architectures import architecture_names
from p3m.errors import EngineError
from p3m.inference.engine import METHODS, PRECISIONS


def number_in(low: float, high: float = math.inf, *, whole: bool = False, open_low: bool = False):
    """An argparse type: a finite number in [low, high] ((low, high] with ``open_low``)."""
    def parse(text: str):
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if whole else ''}number, got {text!r}") from None
        below = value <= low if open_low else value < low
        if not math.isfinite(value) or below or value > high:
            bounds = f"{'above' if open_low else 'at least'} {low:g}" + (f" and at most {high:g}" if high < math.inf else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value
    return parse


positive_int = number_in(1, whole=True)


def add_network_options(parser: argparse.ArgumentParser, *, method: str) -> None:
    parser.add_argument("--arch", "--model", dest="arch", metavar="ARCH", type=str.lower,
                        choices=architecture_names(),
                        help=f"network architecture: {', '.join(architecture_names())} "
                        "(default: recognised from the weights)")
    parser.add_argument("--method", default=None, type=str.lower, choices=METHODS,
                        help=f"P3M-Net test strategy (default {method})")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, ... (default auto)")
    parser.add_argument("--cuda", dest="device", action="store_const", const="cuda", help="same as --device cuda")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="autocast precision of P3M-Net (default fp32)")


def add_engine_options(parser: argparse.ArgumentParser, *, method: str) -> None:
    parser.add_argument("--engine", default="auto", metavar="ENGINE",
                        help="what runs: auto (default: installed P3M-Net weights, else the default engine), "
                        "default (segmentation + closed-form matting, no P3M-Net needed), p3m (installed "
                        "P3M-Net weights), an installed weights name (p3m weights list) or a checkpoint file")
    parser.add_argument("--checkpoint", metavar="PATH", help="P3M-Net weights file (.pth/.pth.tar/.ckpt/"
                        ".safetensors) or installed name; the same as --engine PATH")
    add_network_options(parser, method=method)


def engine_spec(args: argparse.Namespace) -> str:
    """What --engine and --checkpoint ask for together."""
    if args.checkpoint is None:
        return args.engine
    if args.engine not in ("auto", "p3m"):
        raise EngineError(f"--checkpoint {args.checkpoint} and --engine {args.engine} name two engines; give one")
    return args.checkpoint


def engine_options_from(args: argparse.Namespace, **options) -> dict:
    """The network options of ``args`` (plus ``options``), as open_engine takes them."""
    return dict(arch=args.arch, method=args.method, device=args.device, precision=args.precision, **options)


def open_engine_from(args: argparse.Namespace, spec: str, **options):
    """Open ``spec`` with the network options of ``args`` (plus ``options``)."""
    from p3m.inference.factory import open_engine

    return open_engine(spec, **engine_options_from(args, **options))


#: p3m.privacy.faces.DETECTORS, written out so that every command starts without
#: importing numpy and OpenCV for it (tests/test_face_detection.py keeps them equal).
DETECTOR_CHOICES = ("auto", "hog", "cnn", "blazeface", "hog+blazeface", "cnn+blazeface")


def add_detector_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", default="auto", choices=DETECTOR_CHOICES,
                        help="face detector families: auto (default) = hog+blazeface with the face models "
                        "(p3m weights fetch faces), else hog alone with reduced recall; cnn is dlib's CNN "
                        "(about 45 s per photo)")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster (Ray; pip install \"p3m[cluster]\")")
    group.add_argument("--cluster", metavar="ADDRESS",
                       help="spread the items over Ray actors: 'auto' (this machine's cluster or $RAY_ADDRESS), "
                       "HOST:PORT of a head node, or ray://HOST:PORT; inputs and -o must be on paths every node reads")
    group.add_argument("--actors", type=positive_int, default=None, help="actors (default: one per CPU, or per GPU)")
    group.add_argument("--actor-cpus", type=number_in(0.01, 1024), default=1.0, help="CPUs per actor (default 1)")
    group.add_argument("--actor-gpus", type=number_in(0, 64), default=0.0, help="GPUs per actor (default 0)")


def cluster_from(args: argparse.Namespace, **engine_options):
    """ClusterOptions from the --cluster flags, or None when --cluster is not given."""
    if not getattr(args, "cluster", None):
        return None
    from p3m.cluster.ray_pool import ClusterOptions

    return ClusterOptions(args.cluster, args.actors or 0, args.actor_cpus, args.actor_gpus, engine_options)
