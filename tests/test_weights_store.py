"""Installed weights: install, list, and p3m matte picking them up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import p3m
from p3m.cli.main import main
from p3m.inference.factory import open_engine
from p3m.weights.store import installed, p3m_home


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("P3M_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_home_follows_p3m_home_and_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("P3M_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert p3m_home() == tmp_path / "cache" / "p3m"
    monkeypatch.setenv("P3M_HOME", str(tmp_path / "mine"))
    assert p3m_home() == tmp_path / "mine"


def test_install_validates_converts_and_lists(home, published_checkpoint, capsys):
    assert main(["weights", "list"]) == 0
    assert "no P3M-Net weights installed" in capsys.readouterr().out
    assert main(["weights", "install", str(published_checkpoint)]) == 0
    assert "installed p3mnet-r34 (p3mnet-r34" in capsys.readouterr().out
    (only,) = installed()
    assert only.path == home / "weights" / "p3mnet-r34.safetensors"
    assert p3m.load_model(only.path).arch_config["arch"] == "p3mnet-r34"
    assert main(["weights", "list"]) == 0
    assert "p3mnet-r34" in capsys.readouterr().out


def test_install_of_a_vitae_checkpoint_under_a_name(home, tmp_path):
    from p3m.reference import load_reference_model

    path = tmp_path / "vitae.pth"
    torch.save({"state_dict": load_reference_model("p3mnet-vitae-s").state_dict()}, path)
    assert main(["weights", "install", str(path), "--name", "vitae-best"]) == 0
    assert {w.name: w.arch for w in installed()} == {"vitae-best": "p3mnet-vitae-s"}
    assert open_engine("auto").weights == home / "weights" / "vitae-best.safetensors"
    assert open_engine("vitae-best").weights == open_engine("p3m").weights


def test_bad_checkpoints_are_not_installed(home, tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    assert main(["weights", "install", str(bad)]) == 1
    assert "bad.pth: not a PyTorch checkpoint" in capsys.readouterr().err
    assert installed() == []


def test_matte_uses_installed_weights_and_says_so(home, published_checkpoint, tmp_path, capsys):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o")]) == 1
    assert "run: p3m weights fetch default" in capsys.readouterr().err  # nothing installed at all
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--engine", "p3m"]) == 1
    assert "no P3M-Net weights" in capsys.readouterr().err
    main(["weights", "install", str(published_checkpoint)])
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--method", "resize"]) == 0
    assert "(auto: installed P3M-Net weights 'p3mnet-r34')" in capsys.readouterr().err
    assert main(["-v", "matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"), "--method", "resize"]) == 0
    assert f"weights {home / 'weights' / 'p3mnet-r34.safetensors'}" in capsys.readouterr().err  # the file, with -v
