"""``p3m convert SRC DST.safetensors``: a published checkpoint to safetensors."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a published checkpoint (.pth/.pth.tar/.ckpt) to safetensors",
        description="Load a checkpoint safely (no code from the file runs), check it fits "
        "the network, and write it as safetensors with the architecture in its metadata.",
    )
    parser.add_argument("src", help="published checkpoint or state dict")
    parser.add_argument("dst", help="output file, ending in .safetensors")
    parser.add_argument("--arch", help="architecture (default: recognised from the keys)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.weights import convert_checkpoint

    path, config = convert_checkpoint(args.src, args.dst, arch=args.arch)
    print(f"wrote {path} ({config['arch']})")
    return 0
