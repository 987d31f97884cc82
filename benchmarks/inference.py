"""Inference speed and memory of P3M-Net on a 1080 x 1620 portrait.

Prints, per strategy, seconds per image and peak resident memory (each measured in a
fresh child process, so one run's peak does not hide another's), and HYBRID next to
the naive way (the full network for both passes) with the ratio and the largest
output difference. On CUDA, also ms per image in fp32 and under autocast (bf16, fp16)
with the largest alpha difference autocast causes.

With ``--authors``: HYBRID the authors' way (the full network for both passes, fp32,
the system allocator) against p3m's HYBRID in fp32 and bf16, with and without the
inference fusion and the allocator setting, each in fresh processes.

    python benchmarks/inference.py [--arch p3mnet-vitae-s] [--sweep] [--repeat 5] [--height 1620 --width 1080]
    python benchmarks/inference.py --authors [--rounds 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs
from p3m.inference import NetworkEngine
from p3m.inference.strategies import FullNetworkOnly
from p3m.reference import load_reference_model
from p3m.reference.given_trimap import GivenTrimap
from p3m.utils.device import torch_threads

#: The paper's inference time per image on a V100 (P3M, ACM MM 2021).
PAPER_V100_SECONDS = 0.132


def portrait(height: int, width: int) -> np.ndarray:
    """scikit-image's astronaut, resized to the benchmark size (a real photo)."""
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_LINEAR)


def build(arch: str, device: str) -> nn.Module:
    return load_reference_model(arch).to(device)  # fixture weights: speed does not depend on the values


def time_engine(engine: NetworkEngine, image: np.ndarray, repeat: int, device: str) -> tuple[float, np.ndarray]:
    alpha = engine.predict([image])[0]  # warm-up
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        alpha = engine.predict([image])[0]
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), alpha


def portrait_with_trimap(height: int, width: int, band: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic portrait and its trimap at the half size of HYBRID's global pass,
    with an unknown band of ``band`` pixels either side (the P3M-10k training rule)."""
    import cv2

    from p3m.data.synthetic import make_portrait
    from p3m.data.trimap import trimap_from_alpha

    p = make_portrait(np.random.default_rng(0), height, width)
    half = cv2.resize(p.alpha, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return p.image, trimap_from_alpha(half, band)


def benchmark_input(args) -> tuple[nn.Module, np.ndarray, float]:
    """The model, image and unknown share for ``--trimap``.

    ``fixture``: the fixture network as it is, on the astronaut (its global output is
    noise, so HYBRID computes the whole map). ``portrait``: its global classes replaced
    by a synthetic portrait's trimap, as a trained network would leave them (every
    layer still runs; see GivenTrimap).
    """
    model = build(args.arch, "cpu")
    if args.trimap == "portrait":
        image, trimap = portrait_with_trimap(args.height, args.width, args.band)
        return GivenTrimap(model, trimap).eval(), image, float((trimap == 128).mean())
    return model, portrait(args.height, args.width), float("nan")


def compare_child(args) -> None:
    """HYBRID and the naive way (full network for both passes) interleaved in one process,
    so both meet the same allocator and cache state; prints JSON."""
    model, image, unknown = benchmark_input(args)
    engines = {"hybrid": NetworkEngine(model), "naive": NetworkEngine(FullNetworkOnly(model))}
    best = {name: float("inf") for name in engines}
    for _ in range(args.repeat):
        for name, engine in engines.items():
            seconds, _ = time_engine(engine, image, 1, "cpu")
            best[name] = min(best[name], seconds)
    # Exact identity is checked on one thread (see p3m.utils.device.torch_threads). The
    # fixture's own trimap makes HYBRID compute the whole map, so a 1/4-size image shows it.
    check = image if args.trimap == "portrait" else image[::4, ::4].copy()
    with torch_threads(1):
        diff = float(np.abs(engines["hybrid"].predict([check])[0] - engines["naive"].predict([check])[0]).max())
    print(json.dumps({**best, "max_diff": diff, "unknown_share": unknown, "check_size": list(check.shape[:2])}))


def child(args) -> None:
    """Seconds per image and peak RSS of one strategy, in a fresh process; prints JSON.

    ``--method naive``: the full network for both of HYBRID's passes, the authors' way."""
    model, image, _ = benchmark_input(args)
    if args.no_fusion:
        import p3m.inference.strategies as strategies

        strategies.fuse_for_inference = lambda m: copy.deepcopy(m).eval()
    if args.method == "naive":
        engine = NetworkEngine(FullNetworkOnly(model), method="hybrid", precision=args.precision)
    else:
        engine = NetworkEngine(model, method=args.method, precision=args.precision)
    seconds, _ = time_engine(engine, image, args.repeat, "cpu")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib}))


def run_child(args, method: str, trimap: str = "fixture", *, precision: str = "fp32", fusion: bool = True,
              keep_memory: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", "--arch", args.arch, "--method", method, "--trimap", trimap,
           "--band", str(args.band), "--repeat", str(args.repeat), "--height", str(args.height),
           "--width", str(args.width), "--precision", precision] + ([] if fusion else ["--no-fusion"])
    env = {**os.environ, "P3M_KEEP_FREED_MEMORY": "1" if keep_memory else "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


#: HYBRID as the authors run it against p3m's ways, each in fresh processes (see authors_report).
AUTHORS_WAYS = (
    ("the authors' way: full network for both passes, fp32, system allocator",
     dict(method="naive", precision="fp32", keep_memory=False)),
    ("p3m HYBRID fp32 (exact)", dict(method="hybrid", precision="fp32")),
    ("p3m HYBRID bf16, no fusion, system allocator (p3m before)",
     dict(method="hybrid", precision="bf16", fusion=False, keep_memory=False)),
    ("p3m HYBRID bf16, no fusion", dict(method="hybrid", precision="bf16", fusion=False)),
    ("p3m HYBRID bf16 (--precision bf16)", dict(method="hybrid", precision="bf16")),
)


def authors_report(args) -> None:
    """HYBRID on the portrait-like global output, each way in a fresh process, the list
    run ``--rounds`` times interleaved; best per way, ratios to the authors' way."""
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for label, way in AUTHORS_WAYS:
            row = run_child(args, trimap="portrait", **way)
            if label not in best or row["seconds"] < best[label]["seconds"]:
                best[label] = row
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}; {args.arch} HYBRID, "
          f"{args.height} x {args.width} portrait-like global output; best of {args.repeat} in each of "
          f"{args.rounds} fresh processes")
    base = best[AUTHORS_WAYS[0][0]]["seconds"]
    for label, _ in AUTHORS_WAYS:
        row = best[label]
        print(f"  {label:70s} {row['seconds']:6.2f} s  {base / row['seconds']:5.2f}x  peak RSS {row['peak_mib']:5.0f} MiB")


def sweep_child(args) -> None:
    """One forward_local (HYBRID's heaviest pass) at a long side of ``--side``: time, peak RSS."""
    side = args.side
    h, w = side, (side * 2 // 3) // 32 * 32  # a 3:2 portrait
    model = build(args.arch, "cpu")
    x = torch.randn(1, 3, h, w)
    with torch.inference_mode():
        start = time.perf_counter()
        model.forward_local(x)
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"h": h, "w": w, "seconds": seconds, "peak_mib": peak_mib}))


def memory_sweep(args) -> None:
    print(f"{args.arch}: full-size pass (forward_local) by image size, one run each, fresh process")
    for side in (512, 1024, 1600):
        cmd = [sys.executable, __file__, "--sweep-child", "--arch", args.arch, "--side", str(side)]
        row = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        print(f"  {row['h']:5d} x {row['w']:4d}: {row['seconds']:6.2f} s, peak RSS {row['peak_mib']:6.0f} MiB")


def default_engine_report(args) -> None:
    from p3m.inference.default_engine import SegmentationMattingEngine

    engine = SegmentationMattingEngine()
    image = portrait(args.height, args.width)
    engine.predict([image])  # warm-up (pymatting compiles with numba once)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        engine.predict([image])
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{engine.description}\nimage {args.height} x {args.width}: {min(times):.2f} s per image (best of "
          f"{args.repeat}), peak RSS {peak_mib:.0f} MiB")


def cpu_report(args) -> None:
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; image {args.height} x {args.width}; best of {args.repeat}")
    print(f"{'arch':12s} {'strategy':9s} {'s/image':>8s} {'peak RSS MiB':>13s}")
    for method, trimap in (("resize", "fixture"), ("hybrid", "fixture"), ("hybrid", "portrait")):
        row = run_child(args, method, trimap)
        print(f"{args.arch:12s} {method:9s} {row['seconds']:8.2f} {row['peak_mib']:13.0f}"
              + ("   (portrait-like global output)" if trimap == "portrait" else ""))
    for trimap in ("fixture", "portrait"):
        cmp = run_child(args, "compare", trimap)
        if trimap == "fixture":
            label = "fixture weights as they are (global output is noise, whole map computed)"
        else:
            label = (f"portrait-like global output (synthetic portrait's trimap, {args.band}-px band at half "
                     f"size, {cmp['unknown_share']:.0%} unknown)")
        h, w = cmp["check_size"]
        print(f"HYBRID vs naive (full network for both passes), {label}: {cmp['hybrid']:.2f} s vs "
              f"{cmp['naive']:.2f} s, same process, interleaved: {cmp['naive'] / cmp['hybrid']:.2f}x faster; "
              f"max |alpha difference| (single-threaded, {h} x {w}) = {cmp['max_diff']:.1e}")


def gpu_report(args) -> None:
    image = portrait(args.height, args.width)
    model = build(args.arch, "cuda")
    print(f"GPU: {torch.cuda.get_device_name()}; image {args.height} x {args.width}; best of {args.repeat}")
    for method in ("resize", "hybrid"):
        base, base_seconds = None, None
        for precision in ("fp32", "bf16", "fp16"):
            engine = NetworkEngine(model, method=method, precision=precision)
            seconds, alpha = time_engine(engine, image, args.repeat, "cuda")
            base = alpha if base is None else base
            base_seconds = base_seconds or seconds
            diff = float(np.abs(alpha - base).max())
            peak = torch.cuda.max_memory_allocated() / 2**20
            print(f"{args.arch:12s} {method:7s} {precision:5s} {seconds * 1000:8.1f} ms/image  "
                  f"{base_seconds / seconds:4.2f}x fp32, {PAPER_V100_SECONDS / seconds:4.2f}x the paper's V100 figure  "
                  f"max |alpha - fp32| {diff:.1e}  peak GPU memory {peak:.0f} MiB")
            torch.cuda.reset_peak_memory_stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="p3mnet-r34")
    parser.add_argument("--height", type=int, default=1620)
    parser.add_argument("--width", type=int, default=1080)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gpu-only", action="store_true")
    parser.add_argument("--default-engine", action="store_true",
                        help="time the default engine (segmentation + closed-form matting) instead")
    parser.add_argument("--sweep", action="store_true", help="memory and time of the full-size pass at 512/1024/1600 px")
    parser.add_argument("--sweep-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", type=int, default=1600, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="hybrid", help=argparse.SUPPRESS)
    parser.add_argument("--trimap", default="fixture", help=argparse.SUPPRESS)
    parser.add_argument("--authors", action="store_true",
                        help="HYBRID the authors' way against p3m's fp32 and bf16 ways, fresh processes")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per way for --authors")
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--no-fusion", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--band", type=int, default=11,
                        help="unknown band (px either side, at half size) of the portrait-like trimap")
    args = parser.parse_args()
    if args.child:
        return compare_child(args) if args.method == "compare" else child(args)
    if args.default_engine:
        return default_engine_report(args)
    if args.authors:
        return authors_report(args)
    if args.sweep_child:
        return sweep_child(args)
    if args.sweep:
        memory_sweep(args)
    if not args.gpu_only:
        cpu_report(args)
    if torch.cuda.is_available():
        gpu_report(args)
    else:
        print("GPU: none available on this machine")


if __name__ == "__main__":
    main()
