"""Loading published checkpoints safely, safetensors round trips, clear errors."""

from __future__ import annotations

import pickle

import pytest
import torch

import p3m
from p3m.weights import read_state_dict


def _same_outputs(a, b):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return all(torch.equal(u, v) for u, v in zip(a(x), b(x)) if u is not None)


def test_published_checkpoint_loads_strictly_in_eval_mode(published_checkpoint, reference_model):
    model = p3m.load_model(published_checkpoint, device="cpu")
    assert not model.training
    assert model.arch_config["arch"] == "p3mnet-r34"
    assert _same_outputs(model, reference_model)


@pytest.mark.parametrize("suffix", [".pth.tar", ".ckpt"])
def test_module_prefixed_checkpoints_of_every_published_suffix_load(tmp_path, reference_model, suffix):
    state = {f"module.{k}": v for k, v in reference_model.state_dict().items()}
    path = tmp_path / f"model{suffix}"
    torch.save({"state_dict": state, "epoch": 150}, path)
    assert _same_outputs(p3m.load_model(path, device="cpu"), reference_model)


def test_bare_state_dict_in_a_file_and_in_memory(tmp_path, reference_model):
    path = tmp_path / "bare.pth"
    torch.save(reference_model.state_dict(), path)
    assert _same_outputs(p3m.load_model(path), reference_model)
    assert _same_outputs(p3m.load_model(dict(reference_model.state_dict())), reference_model)


def test_safetensors_round_trip_keeps_weights_and_architecture(tmp_path):
    model = p3m.build_model("p3mnet-r34", sbfi=False).eval()
    path = p3m.save_model(model, tmp_path / "nosbfi.safetensors")
    loaded = p3m.load_model(path)
    assert loaded.arch_config == model.arch_config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert _same_outputs(loaded, model)
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temp file"


def test_convert_writes_a_safetensors_that_loads_to_the_same_network(tmp_path, published_checkpoint, reference_model):
    dst, config = p3m.convert_checkpoint(published_checkpoint, tmp_path / "p3m.safetensors")
    assert config["arch"] == "p3mnet-r34"
    state, recorded, _ = read_state_dict(dst)
    assert recorded == config
    assert "resnet.conv1.weight" in state and "encoder0.0.weight" not in state  # aliases stored once
    assert _same_outputs(p3m.load_model(dst), reference_model)


def test_save_refuses_other_suffixes(tmp_path):
    with pytest.raises(p3m.CheckpointError, match=r"\.safetensors"):
        p3m.save_model(p3m.build_model("basic"), tmp_path / "model.pth")


class _Payload:
    """Unpickling this would create a marker file: proof of code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_file_needing_arbitrary_unpickling_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": _Payload(marker)}, evil)
    raw = tmp_path / "raw_pickle.pth"
    with open(raw, "wb") as f:
        pickle.dump({"hook": _Payload(marker)}, f)
    marker.unlink(missing_ok=True)  # saving does not run __reduce__'s call, but be sure

    with pytest.raises(p3m.CheckpointError) as err:
        p3m.load_model(evil)
    message = str(err.value)
    assert str(evil) in message and "carries code (io.open)" in message
    assert "False" not in message, "never a hint to turn weights_only off"
    with pytest.raises(p3m.CheckpointError, match="raw_pickle.pth: not a PyTorch checkpoint"):
        p3m.load_model(raw)
    assert not marker.exists(), "code from the checkpoint was executed"


def test_a_data_object_besides_tensors_gets_a_safe_conversion_that_works(tmp_path, reference_model):
    import argparse
    import subprocess
    import sys

    path = tmp_path / "with_args.pth"
    torch.save({"state_dict": reference_model.state_dict(), "args": argparse.Namespace(lr=1e-5)}, path)
    with pytest.raises(p3m.CheckpointError) as err:
        p3m.load_model(path)
    message = str(err.value)
    assert "argparse.Namespace" in message and "False" not in message
    command = message.split('python -c "')[1].split('" then:')[0]
    subprocess.run([sys.executable, "-c", command], cwd=tmp_path, check=True)  # the hint, followed
    assert p3m.load_model(tmp_path / "plain.pth").arch_config["arch"] == "p3mnet-r34"


def test_missing_path_directory_empty_and_truncated_files(tmp_path, published_checkpoint):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(published_checkpoint.read_bytes()[:100_000])
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 64)
    cases = {
        tmp_path / "nope.pth": "no such file",
        tmp_path: "is a directory",
        empty: "empty",
        truncated: "not a PyTorch checkpoint",
        text: "not a PyTorch checkpoint",
        bad_st: "not a valid safetensors file",
    }
    for path, problem in cases.items():
        with pytest.raises(p3m.CheckpointError) as err:
            p3m.load_model(path)
        assert str(path) in str(err.value) and problem in str(err.value), str(err.value)


def test_partial_checkpoint_reports_missing_keys(tmp_path, reference_model):
    state = {k: v for k, v in reference_model.state_dict().items() if not k.startswith("decoder0_l")}
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(p3m.CheckpointError) as err:
        p3m.load_model(path)
    message = str(err.value)
    assert "p3mnet-r34" in message and "14 missing key(s): decoder0_l.0.weight" in message
    assert "(+9)" in message  # only the first few are listed


def test_shape_mismatch_and_unexpected_keys_are_reported(tmp_path, reference_model):
    state = dict(reference_model.state_dict())
    state["decoder_final_l.weight"] = torch.zeros(2, 64, 3, 3)
    state["extra.head.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(p3m.CheckpointError) as err:
        p3m.load_model(path)
    message = str(err.value)
    assert "1 unexpected key(s): extra.head.weight" in message
    assert "decoder_final_l.weight: file (2, 64, 3, 3) vs network (1, 64, 3, 3)" in message


def test_checkpoint_of_another_network_is_recognised_as_such(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}}, path)
    with pytest.raises(p3m.CheckpointError, match="not a checkpoint of a known P3M network"):
        p3m.load_model(path)
    with pytest.raises(p3m.CheckpointError, match="missing key"):
        p3m.load_model(path, arch="p3mnet-r34")


def test_explicit_arch_that_does_not_fit_is_reported(published_checkpoint):
    with pytest.raises(p3m.CheckpointError, match="does not fit architecture 'basic'"):
        p3m.load_model(published_checkpoint, arch="basic")


def test_cuda_request_without_cuda_is_a_clear_error(published_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(p3m.P3MError, match="CUDA is not available"):
        p3m.load_model(published_checkpoint, device="cuda")
