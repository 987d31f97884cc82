"""Adding a backbone is its own module plus one registration: a small extra
architecture, registered here and nowhere else, is found by the command line, model
loading, the weights store, the engine factory, the doctor, inference and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import p3m
from p3m.architectures import ArchitectureSpec, register_architecture, unregister_architecture
from p3m.cli.main import main
from p3m.models.outputs import P3MOutput, fuse_global_local


class TinyMatting(nn.Module):
    """A two-layer network following P3M-Net's output convention."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.tiny_encoder = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
        self.tiny_global = nn.Conv2d(width, 3, 1)
        self.tiny_local = nn.Conv2d(width, 1, 1)
        self.tiny_classifier = nn.Linear(width, 10)  # in the checkpoint, not in the forward
        self.seen = None

    def forward(self, x: torch.Tensor) -> P3MOutput:
        self.seen = x.detach()
        f = F.interpolate(self.tiny_encoder(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        logits, local = self.tiny_global(f), torch.sigmoid(self.tiny_local(f))
        return P3MOutput(logits, local, fuse_global_local(logits, local), None, None, None)


def _recognise(keys):
    return {"arch": "tiny", "width": 8} if "tiny_local.weight" in keys else None


@pytest.fixture()
def tiny():
    spec = register_architecture(ArchitectureSpec(
        name="tiny", title="Tiny test network", builder=TinyMatting, options={"width": 8}, aliases=("tiny-net",),
        recognise=_recognise, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), frozen=("tiny_classifier.*",),
        backbone="tiny_encoder", preference=-1))
    yield spec
    unregister_architecture("tiny")


def test_the_command_line_offers_it(tiny, capsys):
    for command in ("matte", "train", "benchmark"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "tiny-net" in capsys.readouterr().out, command
    assert p3m.build_model("tiny-net").arch_config == {"arch": "tiny", "width": 8}


def test_loading_the_store_and_the_factory_find_it(tiny, tmp_path, monkeypatch, reference_model):
    monkeypatch.setenv("P3M_HOME", str(tmp_path / "home"))
    from p3m.weights.store import install, installed

    torch.save({"state_dict": p3m.build_model("tiny").state_dict()}, tmp_path / "tiny.pth")
    assert isinstance(p3m.load_model(tmp_path / "tiny.pth"), TinyMatting)  # recognised from its keys
    install(tmp_path / "tiny.pth")
    install(p3m.save_model(reference_model, tmp_path / "r34.safetensors"))
    assert {w.name: w.arch for w in installed()} == {"tiny": "tiny", "p3mnet-r34": "p3mnet-r34"}
    assert p3m.open_engine("auto").weights.name == "tiny.safetensors"  # its preference ranks first
    assert p3m.open_engine("auto", arch="resnet34").weights.name == "p3mnet-r34.safetensors"  # an alias too


def test_inference_uses_its_normalisation(tiny):
    model = p3m.build_model("tiny").eval()
    alpha = p3m.predict_alpha(model, np.full((64, 64, 3), 255, np.uint8), method="resize")
    assert alpha.shape == (64, 64)
    assert torch.allclose(model.seen, torch.ones_like(model.seen))  # (1 - 0.5) / 0.5, not ImageNet's


def test_the_doctor_checks_it(tiny):
    from p3m.doctor import network_checks

    results = [check() for check in network_checks()]
    mine = [r for r in results if r.name.startswith("Tiny test network")]
    assert len(mine) == 1 and mine[0].ok, mine


@pytest.mark.slow
def test_training_freezes_what_it_declares_and_loads_its_backbone(tiny, tmp_path):
    from p3m.data.synthetic import write_synthetic_dataset
    from p3m.training.config import TrainConfig
    from p3m.training.data import MattingTrainDataset, find_training_samples
    from p3m.training.loop import train

    root = write_synthetic_dataset(tmp_path / "data", train=2, val=1, size=(96, 64))
    encoder = p3m.build_model("tiny").tiny_encoder.state_dict()
    torch.save({f"tiny_encoder.{k}": v + 1 for k, v in encoder.items()}, tmp_path / "backbone.pth")
    result = train(TrainConfig(data=str(root), out=str(tmp_path / "run"), arch="tiny", size=32, batch_size=2,
                               crop_sizes=[64], workers=0, device="cpu", val_every=1, epochs=1,
                               backbone_weights=str(tmp_path / "backbone.pth")))
    trained = p3m.load_model(result.final_weights)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    optimised = sum(len(group["params"]) for group in state["optimiser"]["param_groups"])
    names = [n for n, _ in trained.named_parameters()]
    assert optimised == len([n for n in names if not n.startswith("tiny_classifier.")]) < len(names)
    # the backbone file set the encoder before the one step (Adam moves a weight by about lr)
    assert torch.allclose(trained.tiny_encoder[0].bias, encoder["0.bias"] + 1, atol=1e-3)
    assert result.state.history, "validation ran through the engine factory"
    sample = MattingTrainDataset(find_training_samples(root, composition=False)[0], size=32, crop_sizes=[64],
                                 composition=False, arch="tiny")[0]
    assert -1.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0  # its own normalisation
