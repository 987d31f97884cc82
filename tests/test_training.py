"""Training: data recipe, config, resume equality, bad samples, fg/bg, DDP on CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import p3m
from p3m.cli.main import main
from p3m.data.layout import DatasetError
from p3m.data.synthetic import write_synthetic_dataset
from p3m.data.trimap import FOREGROUND, UNKNOWN, make_trimap, trimap_from_alpha, trimap_image
from p3m.training.config import TrainConfig, load_config, to_toml
from p3m.training.data import MattingTrainDataset, choose_crop, find_training_samples
from p3m.training.loop import TrainingError, train
from p3m.training.recipe import RECIPES
from p3m.utils.device import torch_threads
from p3m.weights.io import read_state_dict


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("train") / "data", train=4, val=2, size=(96, 80), seed=3)


def _config(root, out, **kw) -> TrainConfig:
    base = dict(data=str(root), out=str(out), size=64, batch_size=2, epochs=2, workers=0, device="cpu",
                val_every=0, log_every=1000)
    return TrainConfig(**{**base, **kw})


# -- data ------------------------------------------------------------------------------
def test_online_trimap_follows_the_recipe():
    alpha = np.zeros((60, 60), np.float32)
    alpha[20:40, 20:40] = 1.0
    alpha[20:40, 40] = 0.5
    trimap = make_trimap(alpha, 5)
    assert trimap[30, 30] == FOREGROUND  # deep inside: eroded foreground
    assert trimap[30, 40] == UNKNOWN and trimap[20, 30] == UNKNOWN  # the soft edge and the rim
    assert trimap[30, 42] == UNKNOWN and trimap[30, 43] == 0 and trimap[5, 5] == 0  # dilated by the radius, 2
    # The dataset's trimap images: the same classes as 0/128/255, a band of width 2 = kernel 5.
    image = trimap_from_alpha(alpha, 2)
    np.testing.assert_array_equal(image, np.select([trimap == UNKNOWN, trimap == FOREGROUND], [128, 255], 0))


@pytest.mark.parametrize("short, sizes, share_512", [(600, {512}, 1.0), (768, {512}, 1.0), (800, {512, 768}, 2 / 3),
                                                      (1024, {512, 768}, 2 / 3), (1100, {512, 768, 1024}, 1 / 3)])
def test_crop_size_is_drawn_then_falls_back_to_512_unless_strictly_smaller(short, sizes, share_512):
    rng = np.random.default_rng(0)
    trimap = np.zeros((short, short + 300), np.uint8)
    drawn = [choose_crop(rng, trimap)[2] for _ in range(600)]
    assert set(drawn) == sizes
    assert drawn.count(512) / len(drawn) == pytest.approx(share_512, abs=0.06)
    fitting = {choose_crop(rng, trimap, recipe=RECIPES["p3m"])[2] for _ in range(200)}  # the variant: all that fit
    assert fitting == {s for s in (512, 768, 1024) if s <= short}


def test_crop_anchor_is_the_top_left_corner_drawn_inside_the_published_region():
    rng = np.random.default_rng(1)
    trimap = np.zeros((1000, 900), np.uint8)
    trimap[100, 90] = 128       # inside [0, h - c) x [0, w - c) for every crop size (768: 232 x 132)
    trimap[990, 890] = 128      # outside it: never a candidate
    crops = [choose_crop(rng, trimap) for _ in range(800)]
    assert all(top < 1000 - size and left < 900 - size for top, left, size in crops)
    on_unknown = sum((top, left) == (100, 90) for top, left, _ in crops)
    assert 0.4 < on_unknown / len(crops) < 0.6  # half the time: the unknown pixel is the top-left corner
    empty = np.zeros((1000, 900), np.uint8)
    empty[995, 895] = 128  # no unknown pixel in the region: all its pixels are candidates
    assert all(top < 1000 - size and left < 900 - size for top, left, size in
               (choose_crop(rng, empty) for _ in range(200)))
    small = np.zeros((300, 200), np.uint8)
    top, left, size = choose_crop(rng, small)  # no larger than any crop: its short side, at that side's edge
    assert size == 200 and left == 0 and 0 <= top < 100


def _sample_dataset(tmp_path, recipe):
    """One 100 x 100 sample whose crop is the whole image (no crop size fits)."""
    from p3m.data.layout import TrainLayout
    from p3m.training.data import TrainSample

    yy, xx = np.mgrid[0:100, 0:100]
    alpha = np.clip((60 - np.hypot(yy - 50, xx - 50)) / 8, 0, 1)
    layout = TrainLayout(tmp_path)
    for folder in (layout.image_dir("blurred"), layout.mask_dir):
        folder.mkdir(parents=True)
    Image.fromarray((alpha * 255).round().astype(np.uint8)).save(layout.mask_dir / "a.png")
    Image.fromarray(np.full((100, 100, 3), 200, np.uint8)).save(layout.image_dir("blurred") / "a.png")
    sample = TrainSample("a", layout.image_dir("blurred") / "a.png", layout.mask_dir / "a.png")
    return MattingTrainDataset([sample], size=64, composition=False, recipe=recipe), np.round(alpha * 255).astype(np.uint8)


def _crop_flip_resize(x, flipped):
    """What the dataset does to the whole-image crop of a 100 x 100 sample."""
    import cv2

    return cv2.resize(np.ascontiguousarray(x[:, ::-1] if flipped else x), (64, 64), interpolation=cv2.INTER_LINEAR)


def test_alpha_and_trimap_are_resized_as_uint8_with_inter_linear(tmp_path):
    import cv2

    dataset, alpha = _sample_dataset(tmp_path, RECIPES["published"])
    for epoch in range(4):
        dataset.set_epoch(epoch)
        out = dataset[0]
        got_alpha, got_trimap = out["alpha"][0].numpy(), out["trimap"][0].numpy()
        flipped = not np.array_equal(got_alpha, cv2.resize(alpha, (64, 64), interpolation=cv2.INTER_LINEAR))
        np.testing.assert_array_equal(got_alpha, _crop_flip_resize(alpha, flipped))
        candidates = [_crop_flip_resize(trimap_image(alpha, k), flipped) for k in range(15, 31)]
        assert any(np.array_equal(got_trimap, c) for c in candidates)  # the uint8 trimap, bilinear
        assert set(np.unique(got_trimap)) - {0, 128, 255}, "class borders carry in-between values"
    nearest, _ = _sample_dataset(tmp_path / "n", RECIPES["p3m"])
    assert set(np.unique(nearest[0]["trimap"].numpy())) <= {0, 128, 255}


def test_trimap_kernel_sizes_are_drawn_from_15_to_30(tmp_path, monkeypatch):
    import p3m.training.data as data

    dataset, _ = _sample_dataset(tmp_path, RECIPES["published"])
    seen = []
    monkeypatch.setattr(data, "trimap_image", lambda alpha, k: seen.append(k) or trimap_image(alpha, k))
    for epoch in range(300):
        dataset.set_epoch(epoch)
        dataset[0]
    assert set(seen) == set(range(15, 31))


def test_samples_are_deterministic_per_epoch_and_index(data_root):
    samples, problems = find_training_samples(data_root)
    assert len(samples) == 4 and not problems
    ds = MattingTrainDataset(samples, size=64)
    a, b = ds[1], ds[1]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (3, 64, 64) and a["alpha"].shape == (1, 64, 64) and a["fg"].shape == (3, 64, 64)
    assert a["trimap"].min() >= 0 and a["trimap"].max() <= 255 and a["alpha"].max() <= 255
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["image"], a["image"]) or not torch.equal(ds[1]["alpha"], a["alpha"])


def test_missing_fgbg_names_the_command(tmp_path, data_root):
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    shutil.rmtree(root / "train" / "fg")
    with pytest.raises(DatasetError, match="p3m prepare-fgbg"):
        find_training_samples(root)
    samples, _ = find_training_samples(root, composition=False)
    assert len(samples) == 4


def test_unpaired_files_and_empty_datasets_are_reported(tmp_path, data_root):
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    (root / "train" / "mask" / "p_train_00000.png").unlink()
    _, problems = find_training_samples(root)
    assert any("p_train_00000" in name and "without a matte" in reason for name, reason in problems)
    for f in (root / "train" / "mask").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="no usable training samples"):
        find_training_samples(root)


# -- config ----------------------------------------------------------------------------
def test_config_file_overrides_and_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('epochs = 3\nlr = 2e-5\nimages = "original"\ncomposition_loss = false\n')
    config = load_config(path, {"batch_size": 4, "epochs": None})
    assert (config.epochs, config.lr, config.batch_size, config.images, config.composition_loss) == \
           (3, 2e-5, 4, "original", False)
    assert config.crop_sizes == [512, 768, 1024] and config.weight_semantic == pytest.approx(1 / 6)
    saved = tmp_path / "saved.toml"
    saved.write_text(to_toml(config))
    assert load_config(saved) == config
    with pytest.raises(p3m.P3MError, match="unknown config key"):
        load_config(None, {"learning_rate": 1})


# -- the loop --------------------------------------------------------------------------
@pytest.mark.slow
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path, data_root):
    with torch_threads(1):  # bit-reproducible arithmetic
        train(_config(data_root, tmp_path / "full"))
        interrupted = _config(data_root, tmp_path / "resumed", max_steps=3)  # stops mid-epoch 2
        first = train(interrupted)
        assert first.state.step == 3 and first.state.epoch == 1
        train(_config(data_root, tmp_path / "resumed"), resume=True)
    full, _, _ = read_state_dict(tmp_path / "full" / "final.safetensors")
    resumed, _, _ = read_state_dict(tmp_path / "resumed" / "final.safetensors")
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    rows = (tmp_path / "resumed" / "train_log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4  # header + 4 optimiser steps, none repeated


@pytest.mark.slow
def test_training_changes_weights_and_exports_loadable_models(tmp_path, data_root):
    result = train(_config(data_root, tmp_path / "run", epochs=1, val_every=1, val_limit=1))
    model = p3m.load_model(result.final_weights)
    assert model.arch_config["arch"] == "p3mnet-r34"
    assert result.best_weights is not None and (tmp_path / "run" / "val_log.csv").is_file()
    assert (tmp_path / "run" / "config.toml").is_file() and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    fresh = p3m.build_model()
    assert not torch.equal(model.decoder_final_l.weight, fresh.decoder_final_l.weight)


@pytest.mark.slow
def test_bad_samples_are_skipped_counted_and_stop_the_run_past_the_threshold(tmp_path, data_root):
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "train" / "mask" / "p_train_00001.png")
    result = train(_config(root, tmp_path / "ok", epochs=1, max_bad_samples=5))
    assert result.state.bad_samples == 1 and result.state.step == 2
    with pytest.raises(TrainingError, match="unusable samples"):
        train(_config(root, tmp_path / "strict", epochs=1, max_bad_samples=0))


def _imagenet_files(tmp_path, encoder_state):
    """Small stand-ins for the ImageNet ResNet-34 files users can get, each in its own key layout."""
    from safetensors.torch import save_file

    plain = {k: v.clone() for k, v in encoder_state.items() if not k.endswith("num_batches_tracked")}
    torch.save(plain, tmp_path / "resnet34-b627a593.pth")                        # torchvision: bare keys
    torch.save(plain, tmp_path / "timm_resnet34.pth")                             # timm .pth: bare keys
    save_file({k: v.contiguous() for k, v in plain.items()}, str(tmp_path / "model.safetensors"))  # timm hub file
    torch.save({"epoch": 90, "arch": "resnet34_mp", "best_prec1": 73.0,           # the authors' r34mp file
                "state_dict": {f"module.{k}": v for k, v in plain.items()}}, tmp_path / "r34mp_pretrained_imagenet.pth.tar")
    return ["resnet34-b627a593.pth", "timm_resnet34.pth", "model.safetensors", "r34mp_pretrained_imagenet.pth.tar"]


def test_imagenet_weights_in_every_published_layout_initialise_the_encoder(tmp_path):
    from p3m.training.loop import load_backbone

    torch.manual_seed(3)
    donor = p3m.build_model().resnet
    with torch.no_grad():
        for tensor in donor.state_dict().values():
            if tensor.is_floating_point():
                tensor.normal_()
    for name in _imagenet_files(tmp_path, donor.state_dict()):
        model = p3m.build_model()
        load_backbone(model, str(tmp_path / name))
        loaded = model.resnet.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in donor.state_dict().items()
                   if not k.endswith("num_batches_tracked")), name
    with pytest.raises(TrainingError, match="not resnet backbone weights"):
        load_backbone(p3m.build_model(), _vitae_file(tmp_path))


def _vitae_file(tmp_path):
    path = tmp_path / "vitae.pth"
    torch.save({"encoder.head.weight": torch.zeros(1000, 512)}, path)
    return str(path)


@pytest.mark.slow
def test_cli_train_and_precision_check(tmp_path, data_root, capsys):
    assert main(["train", "--data", str(data_root), "--out", str(tmp_path / "cli"), "--size", "64",
                 "--batch-size", "2", "--epochs", "1", "--workers", "0", "--device", "cpu", "--val-every", "0",
                 "--set", "log_every=1"]) == 0
    assert "final weights" in capsys.readouterr().err
    assert main(["train", "--data", str(data_root), "--out", str(tmp_path / "x"), "--precision", "bf16",
                 "--device", "cpu", "--workers", "0"]) == 1
    assert "needs CUDA" in capsys.readouterr().err


def test_prepare_fgbg_writes_colours_that_recompose_the_image(tmp_path, data_root, capsys):
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    shutil.rmtree(root / "train" / "fg")
    shutil.rmtree(root / "train" / "bg")
    assert main(["prepare-fgbg", str(root), "--workers", "1"]) == 0
    assert "4 done, 0 skipped" in capsys.readouterr().err
    image = np.asarray(Image.open(root / "train" / "blurred_image" / "p_train_00000.jpg")).astype(float)
    alpha = np.asarray(Image.open(root / "train" / "mask" / "p_train_00000.png")).astype(float)[..., None] / 255
    fg = np.asarray(Image.open(root / "train" / "fg" / "p_train_00000.jpg")).astype(float)
    bg = np.asarray(Image.open(root / "train" / "bg" / "p_train_00000.jpg")).astype(float)
    assert np.abs(alpha * fg + (1 - alpha) * bg - image).mean() < 6  # JPEG-stored colours
    assert main(["prepare-fgbg", str(root), "--workers", "1"]) == 0
    assert "0 done, 4 skipped" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_distributed_training_on_cpu(tmp_path, data_root):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "p3m", "train", "--data", str(data_root), "--out", str(out), "--size", "64", "--batch-size", "1",
           "--epochs", "1", "--workers", "0", "--device", "cpu", "--val-every", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = (out / "train_log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # 4 samples over 2 ranks at batch 1: 2 steps, logged once (rank 0)
    assert (out / "final.safetensors").is_file() and (out / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
def test_vitae_trains_and_takes_its_imagenet_backbone(tmp_path, data_root):
    donor = p3m.build_model("vitae-s")
    backbone = tmp_path / "vitae_s_imagenet.pth"
    torch.save({k: v for k, v in donor.state_dict().items() if k.startswith("encoder.")}, backbone)
    result = train(_config(data_root, tmp_path / "vitae", arch="vitae-s", epochs=1, max_steps=1,
                           backbone_weights=str(backbone)))
    model = p3m.load_model(result.final_weights)
    assert model.arch_config["arch"] == "p3mnet-vitae-s"
    # one optimiser step from the donor's encoder: close to it, but trained
    delta = (model.encoder.layers[2].NC[0].mlp.fc1.weight - donor.encoder.layers[2].NC[0].mlp.fc1.weight).abs().max().item()
    assert 0 < float(delta) < 1e-3
