"""P3M-Net(ViTAE-S): published keys, reference outputs, Performer projections, and
everything the ResNet-34 model does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import p3m
from p3m.cli.main import main
from p3m.reference import compare_outputs, load_manifest, load_reference_outputs
from p3m.weights.io import nonpersistent_buffers

PERFORMERS = ("encoder.layers.0.NC.0.attn.w", "encoder.layers.0.NC.1.attn.w")


def test_reference_outputs_match_within_tolerance(vitae_reference):
    reference = load_reference_outputs("p3mnet-vitae-s")
    with torch.no_grad():
        outputs = vitae_reference(torch.from_numpy(reference["input"]))
    failed = [(c.name, c.max_abs_diff) for c in compare_outputs(outputs, reference) if not c.ok]
    assert not failed


def test_state_dict_is_the_published_one_and_w_is_outside_it():
    manifest = load_manifest("p3mnet-vitae-s")
    model = p3m.build_model("vitae-s")
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == [(n, s) for n, s, _ in manifest["keys"]]
    assert set(nonpersistent_buffers(model)) == set(manifest["nonstate_tensors"]) == set(PERFORMERS)
    n_params = sum(p.numel() for p in model.parameters())
    assert 27.0e6 < n_params < 28.0e6  # "about 27.5 M parameters"


def test_performer_projections_come_from_a_fixed_seed():
    a, b = p3m.build_model("p3mnet-vitae-s"), p3m.build_model("p3mnet-vitae-s")
    for name in PERFORMERS:
        wa, wb = nonpersistent_buffers(a)[name], nonpersistent_buffers(b)[name]
        assert torch.equal(wa, wb)
        rows = wa[0] / np.sqrt(32)  # orthogonal rows times sqrt(m)
        torch.testing.assert_close(rows @ rows.T, torch.eye(32), atol=1e-5, rtol=0)


def test_published_checkpoint_without_w_loads_and_is_recognised(tmp_path, vitae_reference):
    path = tmp_path / "p3mnet_vitae_s.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in vitae_reference.state_dict().items()}}, path)
    model = p3m.load_model(path)
    assert model.arch_config["arch"] == "p3mnet-vitae-s"
    fresh = p3m.build_model("vitae-s")
    for name in PERFORMERS:  # not in the file: the fixed-seed projection
        assert torch.equal(nonpersistent_buffers(model)[name], nonpersistent_buffers(fresh)[name])


def test_safetensors_keeps_the_performer_projections(tmp_path, vitae_reference):
    path = p3m.save_model(vitae_reference, tmp_path / "vitae.safetensors")
    loaded = p3m.load_model(path)
    for name in PERFORMERS:
        assert torch.equal(nonpersistent_buffers(loaded)[name], nonpersistent_buffers(vitae_reference)[name])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x).local_alpha, vitae_reference(x).local_alpha)


def test_shortcuts_equal_the_full_forward(vitae_reference):
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        out = vitae_reference(x)
        assert torch.equal(vitae_reference.forward_global(x), out.global_logits)
        assert torch.equal(vitae_reference.forward_local(x), out.local_alpha)


def test_ablation_switches_work_for_vitae():
    model = p3m.build_model("p3mnet-vitae-s", sbfi=False, dbfi=False).eval()
    assert not any(k.startswith(("decoder.sbfi_", "decoder.dbfi_")) for k in model.state_dict())
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.side0 is None and out.local_alpha.shape == (1, 1, 64, 64)


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
