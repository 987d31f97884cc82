"""P3M-Net on the CPU through each backend: forward time at 512 x 512 and what bf16 costs.

Speed: one forward of the whole network (RESIZE's pass for a 1024-px image) at
``--side`` x ``--side``, best of ``--repeat``, per backend, with the ratio against the
published way (PyTorch fp32, NCHW), measured in the same run:

- torch fp32 (NCHW): what the authors' code does, and p3m's exact default;
- torch fp32 channels-last;
- torch bf16 autocast (NCHW): p3m's bf16 before the CPU path existed;
- p3m bf16 on the CPU (autocast, channels-last, convolution weights stored in bf16):
  ``--precision bf16``;
- ONNX Runtime fp32 (a p3m export, written to a temporary folder unless ``--onnx``);
- OpenVINO fp32 / bf16 on the ONNX export, when the openvino package is installed.

Accuracy (``--weights FILE``, trained weights, for example those ``benchmarks/learning.py``
leaves in its output folder): SAD against the ground truth of ``--images`` synthetic
portraits, fp32 and bf16, RESIZE and HYBRID, and the mean absolute SAD difference.

    python benchmarks/cpu_backends.py [--side 512] [--repeat 5] [--weights FILE] [--onnx r34.onnx]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from p3m.inference import NetworkEngine
from p3m.inference.strategies import cpu_bf16_model
from p3m.reference import load_reference_model


def best_of(run, repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_forward(model, x: torch.Tensor, *, channels_last: bool, bf16: bool):
    if channels_last:
        model = cpu_bf16_model(model) if bf16 else copy.deepcopy(model).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def run():
        with torch.inference_mode(), autocast:
            return model(x)[2]
    return run


def onnx_forward(path: Path, x: np.ndarray):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda: session.run(["fusion_alpha"], {"image": x})[0]


def openvino_forwards(path: Path, x: np.ndarray) -> dict:
    try:
        import openvino
    except ImportError:
        return {}
    core = openvino.Core()
    runs = {}
    for label, hint in (("OpenVINO fp32", "f32"), ("OpenVINO bf16", "bf16")):
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint})
        runs[label] = (lambda c: lambda: c(x))(compiled)
    return runs


def speed_report(args) -> None:
    model = load_reference_model("p3mnet-r34")  # fixture weights: speed does not depend on the values
    x = torch.randn(1, 3, args.side, args.side, generator=torch.Generator().manual_seed(0))
    runs = {
        "torch fp32 (published way)": torch_forward(model, x, channels_last=False, bf16=False),
        "torch fp32 channels-last": torch_forward(model, x, channels_last=True, bf16=False),
        "torch bf16 autocast": torch_forward(model, x, channels_last=False, bf16=True),
        "p3m bf16 (--precision bf16)": torch_forward(model, x, channels_last=True, bf16=True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.onnx) if args.onnx else Path(tmp) / "r34.onnx"
        if not args.onnx:
            from p3m.export import export_onnx

            export_onnx(model, path, graphs=("full",), check=False)
        runs["ONNX Runtime fp32"] = onnx_forward(path, x.numpy())
        runs.update(openvino_forwards(path, x.numpy()))
        print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
              f"{torch.__version__}; P3M-Net (ResNet-34) forward at {args.side} x {args.side}, best of {args.repeat}")
        base = None
        for label, run in runs.items():
            seconds = best_of(run, args.repeat)
            base = base or seconds
            print(f"  {label:36s} {seconds:6.3f} s   {base / seconds:5.2f}x the published way")


def accuracy_report(args) -> None:
    from p3m.data.synthetic import make_portrait
    from p3m.weights import load_model

    model = load_model(args.weights, device="cpu")
    rng = np.random.default_rng(7)
    portraits = [make_portrait(rng, args.height, args.width) for _ in range(args.images)]
    print(f"\nbf16 accuracy on {args.images} synthetic portraits of {args.height} x {args.width}, weights {args.weights}")
    for method in ("resize", "hybrid"):
        sad = {}
        for precision in ("fp32", "bf16"):
            engine = NetworkEngine(model, method=method, precision=precision)
            alphas = [engine.predict([p.image])[0] for p in portraits]
            sad[precision] = np.array([np.abs(a - p.alpha).sum() / 1000 for a, p in zip(alphas, portraits)])
            if precision == "fp32":
                reference = alphas
        worst = max(float(np.abs(a - r).max()) for a, r in zip(alphas, reference))
        mean_alpha = np.mean([np.abs(a - r).mean() for a, r in zip(alphas, reference)])
        print(f"  {method:7s} SAD fp32 {sad['fp32'].mean():7.3f}  bf16 {sad['bf16'].mean():7.3f}  "
              f"mean |SAD difference| {np.abs(sad['bf16'] - sad['fp32']).mean():.3f} "
              f"({np.abs(sad['bf16'] - sad['fp32']).mean() / sad['fp32'].mean():.1%} of the SAD); "
              f"alpha vs fp32: mean |difference| {mean_alpha:.1e}, max {worst:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--onnx", help="a p3m export of the fixture network (default: export to a temporary folder)")
    parser.add_argument("--weights", help="trained weights for the bf16 accuracy figures")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not args.skip_speed:
        speed_report(args)
    if args.weights:
        accuracy_report(args)


if __name__ == "__main__":
    main()
