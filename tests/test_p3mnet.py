"""P3M-Net (ResNet-34-mp) is the published network: keys, shapes, outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import p3m
from p3m.reference import OUTPUT_NAMES, compare_outputs, load_manifest, load_reference_outputs
from p3m.weights.io import alias_map

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def test_reference_outputs_match_published_network(reference_model):
    reference = load_reference_outputs("p3mnet-r34")
    with torch.no_grad():
        outputs = reference_model(torch.from_numpy(reference["input"]))
    checks = compare_outputs(outputs, reference)
    assert [c.name for c in checks] == list(OUTPUT_NAMES)
    failed = [(c.name, c.max_abs_diff) for c in checks if not c.ok]
    assert not failed, f"outputs differ from the reference: {failed}"


def test_reference_comparison_detects_a_wrong_weight(reference_model):
    """The fixture check is not vacuous: perturbing one weight makes it fail."""
    reference = load_reference_outputs("p3mnet-r34")
    model = p3m.build_model("p3mnet-r34")
    model.load_state_dict(reference_model.state_dict())
    with torch.no_grad():
        model.decoder2_l[0].weight.mul_(1.05)
        outputs = model.eval()(torch.from_numpy(reference["input"]))
    checks = {c.name: c for c in compare_outputs(outputs, reference)}
    assert checks["global"].ok and not checks["local"].ok


def test_state_dict_has_published_keys_shapes_and_order():
    manifest = load_manifest("p3mnet-r34")
    state = p3m.build_model("p3mnet-r34").state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(n, s) for n, s, _ in manifest["keys"]]
    dtypes = {n: d for n, _, d in manifest["keys"]}
    assert all(str(v.dtype).removeprefix("torch.") == dtypes[k] for k, v in state.items())


def test_aliases_are_the_same_tensors_as_published():
    manifest = load_manifest("p3mnet-r34")
    assert alias_map(p3m.build_model("p3mnet-r34")) == manifest["aliases"]


@pytest.mark.skipif(not SHARED_REFERENCE.exists(), reason="../shared not beside the checkout")
def test_shipped_fixture_is_the_shared_one():
    from importlib import resources

    for name in ("p3mnet_r34_reference_outputs.npz", "p3mnet_r34_state_dict_manifest.json"):
        shipped = (resources.files("p3m.reference") / "data" / name).read_bytes()
        shared = (SHARED_REFERENCE / name).read_bytes()
        assert hashlib.sha256(shipped).digest() == hashlib.sha256(shared).digest(), name


def test_forward_returns_six_named_outputs(reference_model):
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = reference_model(x)
    global_logits, local, fusion, side2, side1, side0 = out  # unpacks as a 6-tuple
    assert out.global_logits is global_logits and out.fusion_alpha is fusion
    assert global_logits.shape == (2, 3, 64, 96)
    assert local.shape == fusion.shape == (2, 1, 64, 96)
    assert all(s.shape == (2, 3, 64, 96) for s in (side2, side1, side0))
    assert 0 <= float(local.min()) and float(local.max()) <= 1


def test_fusion_follows_the_global_classes(reference_model):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = reference_model(x)
    classes = out.global_logits.argmax(1, keepdim=True)
    assert torch.equal(out.fusion_alpha[classes == 2], torch.ones_like(out.fusion_alpha[classes == 2]))
    assert torch.equal(out.fusion_alpha[classes == 0], torch.zeros_like(out.fusion_alpha[classes == 0]))
    assert torch.equal(out.fusion_alpha[classes == 1], out.local_alpha[classes == 1])


def test_forward_global_skips_matting_but_equals_full_forward(reference_model):
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        assert torch.equal(reference_model.forward_global(x), reference_model(x).global_logits)


@pytest.mark.parametrize(
    "options, absent",
    [
        ({"tfi": False}, ("tfi_",)),
        ({"sbfi": False}, ("sbfi_",)),
        ({"dbfi": False}, ("dbfi_",)),
    ],
)
def test_each_module_switches_off_for_the_ablation(options, absent):
    model = p3m.build_model("p3mnet-r34", **options).eval()
    keys = model.state_dict().keys()
    assert not any(k.startswith(absent) for k in keys)
    full = p3m.build_model("p3mnet-r34").state_dict().keys()
    assert {k for k in full if not k.startswith(absent)} == set(keys)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.local_alpha.shape == (1, 1, 64, 64)
    assert (out.side0 is None) == (options.get("dbfi") is False)
    assert model.arch_config == {"arch": "p3mnet-r34", "tfi": True, "sbfi": True, "dbfi": True, **options}


def test_basic_baseline_has_no_interaction_modules():
    model = p3m.build_model("basic").eval()
    assert not any(k.startswith(("tfi_", "sbfi_", "dbfi_")) for k in model.state_dict())
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.side2 is None and out.fusion_alpha.shape == (1, 1, 64, 64)


def test_odd_sizes_that_are_multiples_of_32_work(reference_model):
    with torch.no_grad():
        out = reference_model(torch.randn(1, 3, 32, 160))
    assert out.local_alpha.shape == (1, 1, 32, 160)


def test_unknown_architecture_or_option_is_a_clear_error():
    with pytest.raises(p3m.ArchitectureError, match="unknown architecture 'resnet50'"):
        p3m.build_model("resnet50")
    with pytest.raises(p3m.ArchitectureError, match="unknown option"):
        p3m.build_model("p3mnet-r34", attention=True)


def test_training_mode_backpropagates_through_all_outputs():
    model = p3m.build_model("p3mnet-r34").train()
    out = model(torch.randn(2, 3, 64, 64))
    loss = sum(t.float().mean() for t in out)
    loss.backward()
    assert model.resnet.conv1.weight.grad is not None
    assert model.tfi_0.conv1.weight.grad is not None and model.dbfi_2.conv2.weight.grad is not None
    assert np.isfinite(loss.item())
