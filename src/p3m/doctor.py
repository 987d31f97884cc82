"""``p3m doctor``: what this environment is, and whether p3m computes correctly here.

Each check is a function returning :class:`CheckResult`; :func:`all_checks` lists them,
one set per registered architecture. The environment report never fails; the numerical
checks do. Without PyTorch (the base install) the report says what it would bring, the
network checks are skipped (they need it), and the rest still runs.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from p3m.architectures import all_specs, get_spec


@dataclass
class CheckResult:
    name: str
    ok: bool
    lines: list[str] = field(default_factory=list)


def has_module(name: str) -> bool:
    """``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ValueError, ImportError):  # blocked (None in sys.modules), or a parent package missing
        return False


def environment_report() -> list[str]:
    from p3m import __version__

    lines = [f"p3m {__version__}, Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
             f"numpy {np.__version__}, {os.cpu_count()} logical cores"]
    if not has_module("torch"):
        return lines + ["PyTorch: not installed (the default engine, ONNX exports, metrics and anonymizing run "
                        "without it; P3M-Net weights, training and export need it: pip install 'p3m[torch]')"]
    import torch

    lines += [f"torch {torch.__version__}; CPU threads: torch uses {torch.get_num_threads()} of {os.cpu_count()}"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"CUDA device {i}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    else:
        lines.append("CUDA: not available (CPU only; a CUDA build of torch and an NVIDIA driver are needed for "
                     "--device cuda)")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        lines.append("Apple MPS: available")
    return lines


#: The extras (pyproject's optional dependencies): what each enables, the modules it brings, how to get it.
EXTRAS = (
    ("torch", "P3M-Net weights (p3m matte with installed weights, benchmark, evaluate --checkpoint), training",
     ("torch",)),
    ("privacy", "face anonymization (p3m anonymize, privacy-audit, --anonymize): dlib and its face models",
     ("dlib", "face_recognition_models")),
    ("video", "videos in p3m matte and p3m anonymize (PyAV, FFmpeg inside its wheel)", ("av",)),
    ("serve", "p3m serve: the HTTP service, its page and its live stream", ("fastapi", "uvicorn", "multipart",
                                                                              "websockets")),
    ("onnx", "running ONNX exports without PyTorch (ONNX Runtime)", ("onnxruntime",)),
    ("export", "p3m export: P3M-Net to ONNX", ("torch", "onnx", "onnxscript", "onnxruntime")),
    ("cluster", "--cluster: jobs on a Ray cluster", ("ray",)),
    ("demo", "p3m demo and its sample photos", ("skimage",)),
    ("tensorboard", "TensorBoard logs in training", ("tensorboard",)),
)


def extras_report() -> list[str]:
    """One line per extra: installed, or what is missing and the command that brings it."""
    lines = []
    for extra, enables, modules in EXTRAS:
        missing = [m for m in modules if not has_module(m)]
        state = "installed" if not missing else f"missing {', '.join(missing)}; run: pip install 'p3m[{extra}]'"
        lines.append(f"[{extra}] {enables}: {state}")
    return lines


def installation_report() -> list[str]:
    """What is installed (models, weights, extras), and the command for each missing piece."""
    from p3m.errors import P3MError
    from p3m.weights.default_model import check_default_model, default_model_path, face_models_installed
    from p3m.weights.store import scan_installed, weights_dir

    lines = []
    try:
        lines.append(f"default engine model: verified at {check_default_model()}")
    except P3MError:
        lines.append(f"default engine model: not fetched ({default_model_path()}); run: p3m weights fetch default")
    lines.append("face models (BlazeFace, face mesh, MTCNN): verified" if face_models_installed() else
                 "face models (BlazeFace, face mesh, MTCNN): not fetched; p3m anonymize runs HOG alone with reduced recall; "
                 "run: p3m weights fetch faces")
    try:
        found, problems = scan_installed()
    except P3MError as exc:
        found, problems = [], [(weights_dir(), str(exc))]
    if found:
        lines += [f"P3M-Net weights: {w.name} ({w.arch}, {w.size_mb:.0f} MB)" for w in found]
    else:
        lines.append("P3M-Net weights: none installed; run: p3m weights install p3mnet-vitae-s "
                     "(or p3mnet-r34, a URL or a file; README 'Getting P3M-Net')")
    lines += [f"P3M-Net weights: unusable file {path}: {reason}" for path, reason in problems]
    return lines + extras_report()


def check_state_dict_keys(arch: str) -> CheckResult:
    """The network's state-dict keys and shapes are those of the published checkpoint."""
    from p3m.architectures import build_model
    from p3m.reference import load_manifest

    manifest = load_manifest(arch)
    expected = [(name, tuple(shape)) for name, shape, _ in manifest["keys"]]
    got = [(k, tuple(v.shape)) for k, v in build_model(arch).state_dict().items()]
    ok = got == expected
    detail = f"{len(got)} entries, identical to the published checkpoint" if ok else (
        f"{len(got)} entries vs {len(expected)} published; first difference: "
        + str(next((a, b) for a, b in zip(got + [None], expected + [None]) if a != b))
    )
    return CheckResult(f"{get_spec(arch).title} state-dict keys", ok, [detail])


def check_reference_outputs(arch: str) -> CheckResult:
    """The network reproduces the published model's outputs on the shipped fixture."""
    from p3m.reference import run_reference_check

    start = time.perf_counter()
    checks = run_reference_check(arch)
    seconds = time.perf_counter() - start
    lines = [f"{c.name:7s} max |diff| {c.max_abs_diff:.2e} (tolerance {c.tolerance:.0e})" for c in checks]
    lines.append(f"({seconds:.1f} s)")
    return CheckResult(f"{get_spec(arch).title} reference outputs", all(c.ok for c in checks), lines)


def check_output_convention(arch: str) -> CheckResult:
    """A network without a reference fixture at least builds and follows the P3M-Net
    output convention (six outputs at the input's size) on a small input."""
    import torch

    from p3m.architectures import build_model

    model = build_model(arch).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 64, 96))
    channels = [None if o is None else tuple(o.shape) for o in outputs]
    expected = [(1, 3, 64, 96), (1, 1, 64, 96), (1, 1, 64, 96)]
    ok = len(channels) == 6 and channels[:3] == expected and all(c in (None, (1, 3, 64, 96)) for c in channels[3:])
    return CheckResult(f"{get_spec(arch).title} builds and follows the output convention", ok,
                       [f"output shapes {channels}", "no reference fixture: numbers not pinned"])


def check_hybrid_shortcuts() -> CheckResult:
    """HYBRID's fast passes give exactly what the full network gives.

    Twice: on the fixture network's own global output (noise: the whole map is
    computed), and on a compact trimap, where pass 2 runs its last layers on tiles.
    The tiles rely on this CPU's kernels summing a window as they sum the whole map.
    """
    from p3m.inference.strategies import FullNetworkOnly, StrategyRunner
    from p3m.reference import load_reference_model
    from p3m.reference.given_trimap import GivenTrimap, ellipse_trimap
    from p3m.utils.device import torch_threads

    model = load_reference_model("p3mnet-r34")
    rng = np.random.default_rng(0)
    cases = {"whole map": (model, rng.integers(0, 256, (1, 100, 70, 3), dtype=np.uint8)),
             "tiles": (GivenTrimap(model, ellipse_trimap(512, 384, band=6)).eval(),
                       rng.integers(0, 256, (1, 512, 384, 3), dtype=np.uint8))}
    lines, ok = [], True
    for name, (network, image) in cases.items():
        with torch_threads(1):  # see torch_threads: several threads unpool differently
            fast = StrategyRunner(network).run(image)
            full = StrategyRunner(FullNetworkOnly(network)).run(image)
        diff = float(np.abs(fast - full).max())
        ok = ok and diff == 0.0
        lines.append(f"{name}: max |difference| {diff:.1e}")
    return CheckResult("HYBRID fast passes equal the full network", ok, lines)


def check_metrics() -> CheckResult:
    """The metrics give the values worked out by hand for a 2 x 2 case."""
    from p3m.evaluation.metrics import evaluate

    got = evaluate(np.array([[0.2, 0.5], [0.6, 1.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]),
                   np.array([[0, 128], [255, 128]], dtype=np.uint8), fast=True)
    expected = {"SAD": 0.0021, "MSE": 0.3625, "MAD": 0.525, "SAD-T": 0.0015, "MSE-T": 0.625, "MAD-T": 0.75}
    ok = all(abs(got[k] - v) < 1e-12 for k, v in expected.items())
    return CheckResult("metrics on a hand-worked case", ok, [", ".join(f"{k} {got[k]:g}" for k in expected)])


def network_checks() -> list[Callable[[], CheckResult]]:
    """Per registered architecture: against its fixture if it has one, else a smoke check."""
    checks = []
    for spec in all_specs():
        if spec.fixture:
            checks += [partial(check_state_dict_keys, spec.name), partial(check_reference_outputs, spec.name)]
        else:
            checks.append(partial(check_output_convention, spec.name))
    return checks


def all_checks() -> list[Callable[[], CheckResult]]:
    """Every check this install can run: the network ones need PyTorch."""
    if not has_module("torch"):
        return [check_metrics]
    return [*network_checks(), check_hybrid_shortcuts, check_metrics]


def run_checks() -> list[CheckResult]:
    results = []
    for check in all_checks():
        try:
            results.append(check())
        except Exception as exc:  # a broken check is a failed check, not a crash
            name = getattr(check, "__name__", None) or check.func.__name__
            results.append(CheckResult(name, False, [f"error: {type(exc).__name__}: {exc}"]))
    return results
