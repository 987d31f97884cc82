"""Evidence that training learns: validation SAD before and after a short CPU run.

Writes a synthetic P3M-10k, measures the untrained network's validation SAD (RESIZE,
the same validation the training loop runs), trains for ``--minutes`` at a small size,
and prints both figures and the training curve's end points.

    python benchmarks/learning.py [--minutes 10] [--size 128] [--lr 1e-4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from p3m.data.synthetic import write_synthetic_dataset
from p3m.models import build_model
from p3m.training.config import TrainConfig
from p3m.training.loop import train, validate
from p3m.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--val", type=int, default=8)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="p3m-learning-"))
    data = write_synthetic_dataset(work / "data", train=args.train, val=args.val, size=(192, 144), seed=1)
    config = TrainConfig(data=str(data), out=str(work / "run"), size=args.size, batch_size=8, lr=args.lr,
                         epochs=1000, workers=1, device="cpu", val_every=0, val_limit=args.val, log_every=25)

    torch.manual_seed(config.seed)
    untrained = validate(build_model().eval(), config, torch.device("cpu"))

    # Time one epoch to size the run to --minutes.
    probe = train(TrainConfig(**{**config.__dict__, "out": str(work / "probe"), "epochs": 1}))
    seconds_per_step = probe.seconds / max(1, probe.state.step)
    steps = max(1, int(args.minutes * 60 / seconds_per_step))
    start = time.perf_counter()
    result = train(TrainConfig(**{**config.__dict__, "max_steps": steps}))
    minutes = (time.perf_counter() - start) / 60
    model = load_model(result.final_weights, device="cpu")
    trained = validate(model, config, torch.device("cpu"))
    lines = (work / "run" / "train_log.csv").read_text().strip().splitlines()
    print(f"CPU run: {result.state.step} steps ({result.state.epoch} epochs) of batch 8 at {args.size} px, "
          f"lr {args.lr}, {minutes:.1f} min; data in {work}")
    print(f"first step losses: {lines[1]}")
    print(f"last step losses:  {lines[-1]}")
    for split in untrained:
        print(f"{split}: validation SAD untrained {untrained[split]['SAD']:.2f} -> trained {trained[split]['SAD']:.2f}; "
              f"MAD {untrained[split]['MAD']:.4f} -> {trained[split]['MAD']:.4f}")


if __name__ == "__main__":
    main()
