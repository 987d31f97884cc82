"""The shipped reference fixtures, and the comparison against them.

The fixture outputs were made by the authors' own model code with the deterministic
weights of :mod:`p3m.reference.weights`; matching them shows this implementation is
the published network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from p3m.architectures import build_model, get_spec
from p3m.errors import ArchitectureError
from p3m.reference.weights import reference_state_dict

OUTPUT_NAMES = ("global", "local", "fusion", "side2", "side1", "side0")
#: Absolute tolerances on a CPU in float32 (fixture README).
TOLERANCES = {"global": 1e-3, "local": 1e-5, "side2": 1e-3, "side1": 1e-3, "side0": 1e-3}


def _data_file(name: str):
    return resources.files("p3m.reference") / "data" / name


def _fixture(arch: str) -> str:
    spec = get_spec(arch)
    if spec.fixture is None:
        raise ArchitectureError(f"{spec.name} has no reference fixture")
    return spec.fixture


def load_reference_outputs(arch: str = "p3mnet-r34") -> dict[str, np.ndarray]:
    with _data_file(f"{_fixture(arch)}_reference_outputs.npz").open("rb") as f:
        with np.load(f) as data:
            return {k: data[k] for k in data.files}


def load_loss_reference() -> dict[str, np.ndarray]:
    """The published training loss on one batch: inputs, every term, the total and two
    gradients, computed with the authors' code (``p3m_training_loss_reference.npz``)."""
    with _data_file("p3m_training_loss_reference.npz").open("rb") as f:
        with np.load(f) as data:
            return {k: data[k] for k in data.files}


def load_manifest(arch: str = "p3mnet-r34") -> dict:
    with _data_file(f"{_fixture(arch)}_state_dict_manifest.json").open("r") as f:
        return json.load(f)


@dataclass
class OutputCheck:
    name: str
    max_abs_diff: float
    tolerance: float
    ok: bool


def compare_outputs(outputs, reference: dict[str, np.ndarray]) -> list[OutputCheck]:
    """Compare the six network outputs with the fixture, each within its tolerance.

    ``fusion`` is a hard selection by ``argmax(global)``; it is only compared where the
    two largest global logits are further apart than the global tolerance.
    """
    got = {name: t.detach().cpu().numpy() for name, t in zip(OUTPUT_NAMES, outputs)}
    checks = []
    for name in OUTPUT_NAMES:
        diff = np.abs(got[name].astype(np.float64) - reference[name])
        if name == "fusion":
            top2 = np.sort(reference["global"], axis=1)[:, -2:]
            decided = (top2[:, 1] - top2[:, 0] > TOLERANCES["global"])[:, None]
            diff = np.where(decided, diff, 0.0)
            tol = TOLERANCES["local"]
        else:
            tol = TOLERANCES[name]
        worst = float(diff.max())
        checks.append(OutputCheck(name, worst, tol, worst <= tol))
    return checks


def load_reference_model(arch: str = "p3mnet-r34"):
    """``arch`` with the fixture weights in eval mode: the recipe, then the fixture's
    ``override.<key>`` entries and ``nonstate.<module>.w`` projections (ViTAE-S)."""
    reference = load_reference_outputs(arch)
    model = build_model(arch)
    state = reference_state_dict(model)
    for key, value in reference.items():
        if key.startswith("override."):
            state[key.removeprefix("override.")] = torch.from_numpy(value)
    model.load_state_dict(state)
    with torch.no_grad():
        for key, value in reference.items():
            if key.startswith("nonstate."):
                module_path, _, buffer = key.removeprefix("nonstate.").rpartition(".")
                getattr(model.get_submodule(module_path), buffer).copy_(torch.from_numpy(value))
    return model.eval()


def run_reference_check(arch: str = "p3mnet-r34") -> list[OutputCheck]:
    """Build ``arch`` with the fixture weights, run the fixture input, compare."""
    reference = load_reference_outputs(arch)
    model = load_reference_model(arch)
    with torch.no_grad():
        outputs = model(torch.from_numpy(reference["input"]))
    return compare_outputs(outputs, reference)
