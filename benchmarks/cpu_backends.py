"""P3M-Net on the CPU through each backend: forward time at 512 x 512 and what bf16 costs.

Speed: one forward of the whole network (RESIZE's pass for a 1024-px image) at
``--side`` x ``--side``, best of ``--repeat``, per backend, with the ratio against the
published way (PyTorch fp32, NCHW), measured in the same run:

- torch fp32 (NCHW): what the authors' code does, and p3m's exact default;
- torch fp32 channels-last;
- torch bf16 autocast (NCHW): p3m's bf16 before the CPU path existed;
- p3m bf16 on the CPU (autocast, channels-last, convolution weights stored in bf16):
  ``--precision bf16``;
- ONNX Runtime fp32 (a p3m export, written to a temporary folder unless ``--onnx``),
  and int8 (``p3m export onnx --int8`` of it);
- OpenVINO f32 / bf16 hints on the fp32 and int8 exports, when the openvino package is
  installed, with the layer kinds its time went to.

Accuracy (``--weights FILE``, trained weights, for example those ``benchmarks/learning.py``
leaves in its output folder): SAD against the ground truth of ``--images`` synthetic
portraits, fp32 and bf16, RESIZE and HYBRID, and the mean absolute SAD difference.

    python benchmarks/cpu_backends.py [--side 512] [--repeat 5] [--weights FILE] [--onnx r34.onnx]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs
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


def openvino_forwards(path: Path, x: np.ndarray, label: str = "OpenVINO") -> dict:
    """OpenVINO on an export, set up for this machine: the input reshaped to the static
    size timed, one stream, latency hint, as many threads as PyTorch uses; f32 and its
    bf16 hint. Each run prints where the time went by layer kind (OpenVINO's counters)."""
    try:
        import openvino
    except ImportError:
        return {}
    core = openvino.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0].any_name: list(x.shape)})
    runs = {}
    for hint in ("f32", "bf16"):
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  "INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERF_COUNT": True}
        request = core.compile_model(model, "CPU", config).create_infer_request()
        runs[f"{label} {hint}"] = (lambda r: lambda: r.infer({0: x}))(request)
        runs[f"{label} {hint}"].profile = request
    return runs


def openvino_profile(request) -> str:
    """The three layer kinds that took longest in the request's last run."""
    import collections

    spent = collections.Counter()
    for layer in request.profiling_info:
        spent[f"{layer.node_type} ({layer.exec_type})"] += layer.real_time.total_seconds()
    total = sum(spent.values())
    return "; ".join(f"{kind} {seconds / total:.0%}" for kind, seconds in spent.most_common(3))


def onnx_int8(path: Path, target: Path) -> Path:
    """``p3m export onnx --int8`` of the export at ``path`` (its whole-network graph)."""
    from p3m.export.quantize import quantize_export

    return quantize_export(path, target, ("full",))["full"]


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
        int8 = onnx_int8(path, Path(tmp) / "r34-int8.onnx")
        runs["ONNX Runtime int8 (p3m export --int8)"] = onnx_forward(int8, x.numpy())
        runs.update(openvino_forwards(path, x.numpy()))
        runs.update(openvino_forwards(int8, x.numpy(), "OpenVINO int8 export,"))
        print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads, torch "
              f"{torch.__version__}; P3M-Net (ResNet-34) forward at {args.side} x {args.side}, best of {args.repeat}")
        base = None
        for label, run in runs.items():
            seconds = best_of(run, args.repeat)
            base = base or seconds
            profile = f"  ({openvino_profile(run.profile)})" if hasattr(run, "profile") else ""
            print(f"  {label:40s} {seconds:6.3f} s   {base / seconds:5.2f}x the published way{profile}")


def accuracy_report(args) -> None:
    """SAD of bf16 (PyTorch) and int8 (``p3m export onnx --int8``, ONNX Runtime) against
    fp32 on trained weights, RESIZE and HYBRID."""
    from p3m.data.synthetic import make_portrait
    from p3m.export import export_onnx
    from p3m.inference.onnx_engine import OnnxEngine
    from p3m.weights import load_model

    model = load_model(args.weights, device="cpu")
    rng = np.random.default_rng(7)
    portraits = [make_portrait(rng, args.height, args.width) for _ in range(args.images)]
    print(f"\nbf16 and int8 accuracy on {args.images} synthetic portraits of {args.height} x {args.width} "
          f"(not the calibration ones), weights {args.weights}")
    with tempfile.TemporaryDirectory() as tmp:
        int8 = Path(tmp) / "int8.onnx"
        export_onnx(model, int8, check=False, int8=True)
        for method in ("resize", "hybrid"):
            engines = {"fp32": NetworkEngine(model, method=method), "bf16": NetworkEngine(model, method=method, precision="bf16"),
                       "int8": OnnxEngine(int8, method=method)}
            alphas = {name: [e.predict([p.image])[0] for p in portraits] for name, e in engines.items()}
            sad = {name: np.array([np.abs(a - p.alpha).sum() / 1000 for a, p in zip(al, portraits)])
                   for name, al in alphas.items()}
            for name in ("bf16", "int8"):
                moved = np.abs(sad[name] - sad["fp32"]).mean()
                mean_alpha = np.mean([np.abs(a - r).mean() for a, r in zip(alphas[name], alphas["fp32"])])
                print(f"  {method:7s} {name}: SAD fp32 {sad['fp32'].mean():7.3f}, {name} {sad[name].mean():7.3f}; "
                      f"mean |SAD difference| {moved:.3f} ({moved / sad['fp32'].mean():.1%} of the SAD); "
                      f"alpha vs fp32: mean |difference| {mean_alpha:.1e}")


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
