"""Every registered architecture, tested alike (one test base, as smp's BaseModelTester),
then what is particular to each published network.

The base runs over ``available_architectures()``: a new backbone registered with its
spec is tested here without a new test file.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

import p3m
from p3m.architectures import available_architectures, get_spec, infer_architecture
from p3m.cli.main import main
from p3m.inference.strategies import FullNetworkOnly, StrategyRunner
from p3m.reference import OUTPUT_NAMES, compare_outputs, load_manifest, load_reference_model, load_reference_outputs
from p3m.utils.device import torch_threads
from p3m.weights.io import alias_map, nonpersistent_buffers

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@lru_cache(maxsize=None)
def network(arch: str):
    """The fixture network where there is a fixture, else a seeded build; eval mode."""
    if get_spec(arch).fixture:
        return load_reference_model(arch)
    torch.manual_seed(0)
    return p3m.build_model(arch).eval()


@pytest.fixture(params=available_architectures())
def arch(request):
    return request.param


class TestEveryArchitecture:
    def test_builds_with_its_config_and_is_recognised_from_its_keys(self, arch):
        model = p3m.build_model(arch)
        assert model.arch_config["arch"] == arch
        assert infer_architecture(model.state_dict()) == model.arch_config

    def test_published_keys_shapes_and_order(self, arch):
        if not get_spec(arch).fixture:
            pytest.skip(f"{arch} has no published manifest")
        manifest = load_manifest(arch)
        state = p3m.build_model(arch).state_dict()
        assert [(k, list(v.shape)) for k, v in state.items()] == [(n, s) for n, s, _ in manifest["keys"]]
        dtypes = {n: d for n, _, d in manifest["keys"]}
        assert all(str(v.dtype).removeprefix("torch.") == dtypes[k] for k, v in state.items())

    def test_reference_outputs_match_the_published_network(self, arch):
        if not get_spec(arch).fixture:
            pytest.skip(f"{arch} has no reference fixture")
        reference = load_reference_outputs(arch)
        with torch.no_grad():
            outputs = network(arch)(torch.from_numpy(reference["input"]))
        checks = compare_outputs(outputs, reference)
        assert [c.name for c in checks] == list(OUTPUT_NAMES)
        assert not [(c.name, c.max_abs_diff) for c in checks if not c.ok]

    def test_forward_returns_six_named_outputs(self, arch):
        model = network(arch)
        with torch.no_grad():
            out = model(torch.randn(2, 3, 64, 96))
        global_logits, local, fusion, side2, side1, side0 = out  # unpacks as a 6-tuple
        assert out.global_logits is global_logits and out.fusion_alpha is fusion
        assert global_logits.shape == (2, 3, 64, 96) and local.shape == fusion.shape == (2, 1, 64, 96)
        sides = (side2, side1, side0)
        if model.arch_config.get("dbfi", False):
            assert all(s.shape == (2, 3, 64, 96) for s in sides)
        else:
            assert all(s is None for s in sides)
        assert 0 <= float(local.min()) and float(local.max()) <= 1

    def test_fusion_follows_the_global_classes(self, arch):
        with torch.no_grad():
            out = network(arch)(torch.randn(1, 3, 64, 64))
        classes = out.global_logits.argmax(1, keepdim=True)
        assert bool((out.fusion_alpha[classes == 2] == 1).all()) and bool((out.fusion_alpha[classes == 0] == 0).all())
        assert torch.equal(out.fusion_alpha[classes == 1], out.local_alpha[classes == 1])

    def test_shortcut_passes_equal_the_full_forward(self, arch):
        model, x = network(arch), torch.randn(1, 3, 96, 64)
        with torch.no_grad(), torch_threads(1):
            out = model(x)
            assert torch.equal(model.forward_global(x), out.global_logits)
            assert torch.equal(model.forward_local(x), out.local_alpha)

    def test_hybrid_with_shortcuts_equals_the_full_network(self, arch):
        image = np.random.default_rng(0).integers(0, 256, (1, 100, 70, 3), dtype=np.uint8)
        with torch_threads(1):
            fast = StrategyRunner(network(arch)).run(image)
            full = StrategyRunner(FullNetworkOnly(network(arch))).run(image)
        np.testing.assert_array_equal(fast, full)

    def test_odd_sizes_that_are_multiples_of_32_work(self, arch):
        with torch.no_grad():
            out = network(arch)(torch.randn(1, 3, 32, 160))
        assert out.local_alpha.shape == (1, 1, 32, 160)

    def test_safetensors_round_trip_gives_the_same_alpha(self, arch, tmp_path):
        model = network(arch)
        loaded = p3m.load_model(p3m.save_model(model, tmp_path / "m.safetensors"), device="cpu")
        assert loaded.arch_config == model.arch_config
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(loaded(x).local_alpha, model(x).local_alpha)

    def test_every_trained_parameter_gets_a_gradient_and_frozen_ones_are_outside_the_forward(self, arch):
        spec = get_spec(arch)
        model = p3m.build_model(arch).train()
        out = model(torch.randn(2, 3, 64, 64))
        sum(t.float().mean() for t in out if t is not None).backward()
        for name, param in model.named_parameters():
            assert (param.grad is None) == spec.is_frozen(name), name


# -- P3M-Net (ResNet-34-mp) and BASIC -----------------------------------------------------
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


def test_r34_aliases_are_the_same_tensors_as_published():
    assert alias_map(p3m.build_model("p3mnet-r34")) == load_manifest("p3mnet-r34")["aliases"]


@pytest.mark.skipif(not SHARED_REFERENCE.exists(), reason="../shared not beside the checkout")
@pytest.mark.parametrize("names", [("p3mnet_r34_reference_outputs.npz", "p3mnet_r34_state_dict_manifest.json"),
                                   ("p3mnet_vitae_s_reference_outputs.npz", "p3mnet_vitae_s_state_dict_manifest.json"),
                                   ("p3m_training_loss_reference.npz",)])
def test_shipped_fixtures_are_the_shared_ones(names):
    from importlib import resources

    for name in names:
        shipped = (resources.files("p3m.reference") / "data" / name).read_bytes()
        shared = (SHARED_REFERENCE / name).read_bytes()
        assert hashlib.sha256(shipped).digest() == hashlib.sha256(shared).digest(), name


@pytest.mark.parametrize("arch, prefix", [("p3mnet-r34", ""), ("p3mnet-vitae-s", "decoder.")])
@pytest.mark.parametrize("option", ["tfi", "sbfi", "dbfi"])
def test_each_module_switches_off_for_the_ablation(arch, prefix, option):
    model = p3m.build_model(arch, **{option: False}).eval()
    absent = f"{prefix}{option}_"
    keys = model.state_dict().keys()
    full = p3m.build_model(arch).state_dict().keys()
    assert {k for k in full if not k.startswith(absent)} == set(keys)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.local_alpha.shape == (1, 1, 64, 64) and (out.side0 is None) == (option == "dbfi")
    assert model.arch_config == {"arch": arch, "tfi": True, "sbfi": True, "dbfi": True, option: False}


def test_basic_baseline_has_no_interaction_modules():
    model = p3m.build_model("basic")
    assert not any(k.startswith(("tfi_", "sbfi_", "dbfi_")) for k in model.state_dict())


def test_unknown_architecture_or_option_is_a_clear_error():
    with pytest.raises(p3m.ArchitectureError, match="unknown architecture 'resnet50'"):
        p3m.build_model("resnet50")
    with pytest.raises(p3m.ArchitectureError, match="unknown option"):
        p3m.build_model("p3mnet-r34", attention=True)


# -- P3M-Net(ViTAE-S) ---------------------------------------------------------------------
PERFORMERS = ("encoder.layers.0.NC.0.attn.w", "encoder.layers.0.NC.1.attn.w")


def test_vitae_w_is_outside_the_state_dict_and_the_size_is_published():
    manifest = load_manifest("p3mnet-vitae-s")
    model = p3m.build_model("vitae-s")
    assert set(nonpersistent_buffers(model)) == set(manifest["nonstate_tensors"]) == set(PERFORMERS)
    assert 27.0e6 < sum(p.numel() for p in model.parameters()) < 28.0e6  # "about 27.5 M parameters"


def test_performer_projections_come_from_a_fixed_seed():
    a, b = p3m.build_model("p3mnet-vitae-s"), p3m.build_model("p3mnet-vitae-s")
    for name in PERFORMERS:
        wa, wb = nonpersistent_buffers(a)[name], nonpersistent_buffers(b)[name]
        assert torch.equal(wa, wb)
        rows = wa[0] / np.sqrt(32)  # orthogonal rows times sqrt(m)
        torch.testing.assert_close(rows @ rows.T, torch.eye(32), atol=1e-5, rtol=0)


def test_published_vitae_checkpoint_without_w_loads_and_is_recognised(tmp_path, vitae_reference):
    path = tmp_path / "p3mnet_vitae_s.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in vitae_reference.state_dict().items()}}, path)
    model = p3m.load_model(path)
    assert model.arch_config["arch"] == "p3mnet-vitae-s"
    fresh = p3m.build_model("vitae-s")
    for name in PERFORMERS:  # not in the file: the fixed-seed projection
        assert torch.equal(nonpersistent_buffers(model)[name], nonpersistent_buffers(fresh)[name])


def test_safetensors_keeps_the_performer_projections(tmp_path, vitae_reference):
    loaded = p3m.load_model(p3m.save_model(vitae_reference, tmp_path / "vitae.safetensors"))
    for name in PERFORMERS:
        assert torch.equal(nonpersistent_buffers(loaded)[name], nonpersistent_buffers(vitae_reference)[name])


@pytest.mark.parametrize("method", ["hybrid", "resize"])
def test_predict_alpha_with_vitae(vitae_reference, method):
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    alpha = p3m.predict_alpha(vitae_reference, image, method=method)
    assert alpha.shape == (90, 70) and 0 <= alpha.min() and alpha.max() <= 1


def test_matte_cli_with_vitae_and_seed_article_options(tmp_path, vitae_reference, capsys):
    from PIL import Image

    weights = p3m.save_model(vitae_reference, tmp_path / "vitae.safetensors")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    code = main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--checkpoint", str(weights),
                 "--model", "vitae-s", "--method", "RESIZE"])
    assert code == 0
    assert "engine p3mnet-vitae-s (RESIZE" in capsys.readouterr().err
    assert (tmp_path / "out" / "alpha" / "a.png").is_file()


def test_cuda_flag_is_a_synonym_of_device_cuda():
    from p3m.cli.main import build_parser

    args = build_parser().parse_args(["matte", "x.png", "-o", "o", "--checkpoint", "c.pth", "--cuda"])
    assert args.device == "cuda"
