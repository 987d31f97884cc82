"""``p3m train``: P3M-Net under the PPT setting (also under torchrun for several GPUs)."""

from __future__ import annotations

import argparse

from p3m.architectures import architecture_names
from p3m.cli import say
from p3m.cli.options import number_in, positive_int
from p3m.options import PRECISIONS
from p3m.training.recipe import RECIPES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train P3M-Net (published recipe; resumable; torchrun for several GPUs)",
        description="Train on P3M-10k (or any images + mattes with matching stems). Defaults are "
        "the published recipe (Adam 1e-5, batch 8, 150 epochs, 512 px). Settings come from "
        "--config FILE (TOML, keys as in the saved config.toml), then the options below. "
        "Multi-GPU: torchrun --nproc_per_node N -m p3m train ...",
    )
    parser.add_argument("--config", help="TOML file with training settings")
    parser.add_argument("--data", help="P3M-10k root (train/, validation/)")
    parser.add_argument("--images", help="blurred (PPT), original, or a folder of images")
    parser.add_argument("--masks", help="folder of mattes (default ROOT/train/mask)")
    parser.add_argument("--out", help="run folder (default runs/p3m)")
    parser.add_argument("--arch", "--model", dest="arch", type=str.lower, choices=architecture_names(), metavar="ARCH",
                        help=f"network: {', '.join(architecture_names())} (default p3mnet-r34)")
    parser.add_argument("--backbone-weights", help="ImageNet encoder weights (.pth or .safetensors)")
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--lr", type=number_in(0, 1, open_low=True))
    parser.add_argument("--size", "--input-size", dest="size", type=number_in(32, 4096, whole=True),
                        help="training input size (default 512)")
    parser.add_argument("--accumulate", type=positive_int, help="gradient accumulation steps")
    parser.add_argument("--precision", choices=PRECISIONS)
    parser.add_argument("--device")
    parser.add_argument("--cuda", dest="device", action="store_const", const="cuda", help="same as --device cuda")
    parser.add_argument("--workers", type=number_in(0, 64, whole=True), help="data-loader processes")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--recipe", choices=list(RECIPES),
                        help="published (default: the authors' code, rule for rule) or p3m (docs/training.md); "
                        "single rules with --set laplacian_kernel=gaussian etc.")
    parser.add_argument("--copy-paste-faces", metavar="DIR",
                        help="P3M-CP at image level: paste faces from these normal portraits over the blurred faces "
                        "(needs train/facemask and the privacy extra); --set copy_paste_probability=0.5")
    parser.add_argument("--no-composition-loss", dest="composition_loss", action="store_const", const=False)
    parser.add_argument("--val-every", type=number_in(0, whole=True), help="epochs between validations (0: never)")
    parser.add_argument("--val-limit", type=number_in(0, whole=True), help="images per test split")
    parser.add_argument("--checkpoint-every", type=number_in(0, whole=True), help="optimiser steps between extra checkpoints")
    parser.add_argument("--max-steps", type=number_in(0, whole=True), help="stop after N optimiser steps")
    parser.add_argument("--max-minutes", type=number_in(0), help="stop after this much training time")
    parser.add_argument("--limit", type=number_in(0, whole=True), help="use the first N training samples")
    parser.add_argument("--max-bad-samples", type=number_in(0, whole=True))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from p3m.errors import P3MError
    from p3m.training.config import TrainConfig, load_config
    from p3m.training.loop import train

    overrides = {name: getattr(args, name, None) for name in TrainConfig.field_names() if hasattr(args, name)}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise P3MError(f"--set {item!r}: use KEY=VALUE")
        overrides[key.strip()] = value
    config = load_config(args.config, overrides)
    result = train(config, resume=args.resume)
    if result.final_weights:
        state = result.state
        best = f", best {result.best_weights} (mean SAD {state.best_sad:.2f})" if result.best_weights else ""
        say.note(f"{state.step} steps, {state.epoch} epochs, {state.bad_samples} bad samples in "
                 f"{result.seconds:.0f} s; final weights {result.final_weights}{best}")
    return 0
