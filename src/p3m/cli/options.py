"""Options shared by the commands that run a network (matte, benchmark).

The seed article's names work as aliases: ``--model resnet34|vitae-s`` for ``--arch``,
``--cuda`` for ``--device cuda``, and ``--method HYBRID|RESIZE`` in any case.
"""

from __future__ import annotations

import argparse


def add_network_options(parser: argparse.ArgumentParser, *, method: str, device: bool = True) -> None:
    parser.add_argument("--arch", "--model", dest="arch", metavar="ARCH",
                        help="p3mnet-r34 (resnet34), p3mnet-vitae-s (vitae-s) or basic "
                        "(default: recognised from the checkpoint)")
    parser.add_argument("--method", default=method, type=str.lower, choices=["hybrid", "resize"],
                        help=f"test strategy (default {method})")
    if device:
        parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default auto)")
        parser.add_argument("--cuda", dest="device", action="store_const", const="cuda",
                            help="same as --device cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="autocast precision on GPU (default fp32)")
