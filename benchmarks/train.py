"""Training throughput (images per second) at 512 px, batch 8: the published setting.

On the CPU in fp32; on CUDA, when available, in fp32, bf16 and fp16 mixed precision,
each with its ratio to fp32 (the published recipe's precision) from the same run.
Synthetic batches (speed does not depend on the pixels), full loss with composition.

    python benchmarks/train.py [--steps 3] [--size 512] [--batch-size 8] [--arch p3mnet-r34]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from p3m.models import build_model
from p3m.training.losses import p3m_loss


def batch(size: int, n: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(n, 1, size, size, generator=g)
    return {k: v.to(device) for k, v in {
        "image": torch.randn(n, 3, size, size, generator=g), "fg": torch.randn(n, 3, size, size, generator=g),
        "bg": torch.randn(n, 3, size, size, generator=g), "alpha": alpha,
        "trimap": torch.randint(0, 3, (n, 1, size, size), generator=g)}.items()}


def measure(arch: str, device: torch.device, precision: str, size: int, n: int, steps: int) -> float:
    model = build_model(arch).to(device).train()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-5)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    data = batch(size, n, device)
    times = []
    for i in range(steps + 1):  # the first step warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = p3m_loss(model(data["image"]), data)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        optimiser.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return n / (sum(times) / len(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="p3mnet-r34")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.arch}, {args.size} px, batch {args.batch_size}, mean of {args.steps} steps after a warm-up")
    cpu = measure(args.arch, torch.device("cpu"), "fp32", args.size, args.batch_size, args.steps)
    print(f"CPU ({platform.machine()}, {torch.get_num_threads()} threads) fp32: {cpu:.2f} images/s")
    if torch.cuda.is_available():
        base = None
        for precision in ("fp32", "bf16", "fp16"):
            rate = measure(args.arch, torch.device("cuda"), precision, args.size, args.batch_size, args.steps)
            base = base or rate  # fp32: the published recipe's precision
            print(f"GPU ({torch.cuda.get_device_name()}) {precision}: {rate:.1f} images/s "
                  f"({rate / base:.2f}x fp32, {rate / cpu:.0f}x this CPU)")
    else:
        print("GPU: none available on this machine")


if __name__ == "__main__":
    main()
