"""Evidence that training learns, per recipe: validation SAD before and after a short CPU run.

Writes a synthetic P3M-10k, measures the untrained network's validation SAD (RESIZE,
the same validation the training loop runs), then trains once per recipe (default:
the published one and the "p3m" variant) for ``--minutes`` each, from the same seed on
the same data, and prints each run's figures and the end points of its loss curve.

    python benchmarks/learning.py [--minutes 5] [--recipes published,p3m] [--size 128] [--lr 1e-4]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import torch

from p3m.architectures import build_model
from p3m.data.synthetic import write_synthetic_dataset
from p3m.training.config import TrainConfig
from p3m.training.loop import train, validate
from p3m.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5, help="training time per recipe")
    parser.add_argument("--recipes", default="published,p3m")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--val", type=int, default=8)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="p3m-learning-"))
    data = write_synthetic_dataset(work / "data", train=args.train, val=args.val, size=(192, 144), seed=1)
    base = TrainConfig(data=str(data), out=str(work / "probe"), size=args.size, batch_size=8, lr=args.lr,
                       epochs=1000, workers=1, device="cpu", val_every=0, val_limit=args.val, log_every=1000)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"synthetic data: {args.train} training portraits of 192 x 144, {args.val} per test split; data in {work}")

    torch.manual_seed(base.seed)
    untrained = validate(build_model().eval(), base, torch.device("cpu"))
    probe = train(dataclasses.replace(base, epochs=1))  # one epoch sizes every run to --minutes
    steps = max(1, int(args.minutes * 60 / (probe.seconds / max(1, probe.state.step))))
    for split, metrics in untrained.items():
        print(f"untrained: {split} SAD {metrics['SAD']:.2f}, MAD {metrics['MAD']:.4f}")
    for recipe in args.recipes.split(","):
        config = dataclasses.replace(base, recipe=recipe, out=str(work / recipe), max_steps=steps)
        start = time.perf_counter()
        result = train(config)
        minutes = (time.perf_counter() - start) / 60
        trained = validate(load_model(result.final_weights, device="cpu"), config, torch.device("cpu"))
        losses = result.losses
        print(f"recipe {recipe}: {result.state.step} steps ({result.state.epoch} epochs) of batch 8 at {args.size} px, "
              f"lr {args.lr}, {minutes:.1f} min; total loss {losses[0][1]:.3f} -> {losses[-1][1]:.3f} "
              f"(mean of the last 10 steps {sum(v for _, v in losses[-10:]) / len(losses[-10:]):.3f})")
        for split, metrics in trained.items():
            print(f"  {split}: SAD {untrained[split]['SAD']:.2f} -> {metrics['SAD']:.2f}, "
                  f"MAD {untrained[split]['MAD']:.4f} -> {metrics['MAD']:.4f}")


if __name__ == "__main__":
    main()
