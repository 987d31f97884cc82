"""P3M-CP at image level: a real face (scikit-image's astronaut) pasted over a synthetic
portrait's blurred face: only there, never on a transition pixel, colour-matched,
seeded, and in the training samples only when asked for."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from p3m.data.synthetic import make_portrait, write_synthetic_dataset
from p3m.errors import DatasetError
from p3m.training.copy_paste import CopyPaste, FaceBank, paste_face
from p3m.training.data import MattingTrainDataset, find_training_samples


@pytest.fixture(scope="module")
def donors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("normal_portraits")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")  # no face: skipped
    return FaceBank.from_folder(folder)


@pytest.fixture(scope="module")
def portrait():
    return make_portrait(np.random.default_rng(4), 384, 288)


def test_the_bank_keeps_portraits_with_a_confident_face(donors):
    assert [f.path.name for f in donors.faces] == ["astronaut.png"]
    assert donors.skipped and "coffee.png" in donors.skipped[0][0]
    with pytest.raises(DatasetError, match="no portrait with a confidently detected face"):
        _bank_of_no_faces(donors.folder.parent)


def _bank_of_no_faces(root):
    folder = root / "no_faces"
    folder.mkdir(exist_ok=True)
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    return FaceBank.from_folder(folder)


@pytest.mark.parametrize("flip", [False, True])
def test_the_paste_stays_inside_the_blurred_face_and_off_transition_pixels(donors, portrait, flip):
    donor = donors.faces[0]
    out, fg, weight = paste_face(portrait.blurred, portrait.facemask, portrait.alpha, data.astronaut(),
                                 donor.landmarks, foreground=portrait.foreground, flip=flip)
    changed = (out != portrait.blurred).any(axis=2)
    allowed = (portrait.facemask > 0) & (portrait.alpha >= 1)
    assert not (changed & ~allowed).any(), "a pixel outside the blurred opaque face changed"
    assert not (changed & (portrait.alpha > 0) & (portrait.alpha < 1)).any()
    assert changed.sum() > 0.4 * allowed.sum()  # the face covers most of the region
    # a sharp face replaces the blur: much more detail than before
    def detail(x):
        return cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F)[changed].var()
    assert detail(out) > 3 * detail(portrait.blurred)
    # colour-matched to the blurred face it replaces
    assert np.abs(out[changed].mean(axis=0) - portrait.blurred[changed].mean(axis=0)).max() < 12
    # the foreground colours get the same paste where the weight is full
    full = weight >= 1
    np.testing.assert_array_equal(fg[full], out[full])
    assert (fg != portrait.foreground).any(axis=2)[changed].mean() > 0.9


def test_the_augmentation_is_seeded_and_respects_its_probability(donors, portrait):
    paste = CopyPaste(donors, probability=1.0)
    a, _ = paste(np.random.default_rng(7), portrait.blurred, portrait.facemask, portrait.alpha)
    b, _ = paste(np.random.default_rng(7), portrait.blurred, portrait.facemask, portrait.alpha)
    np.testing.assert_array_equal(a, b)
    never = CopyPaste(donors, probability=0.0)
    same, _ = never(np.random.default_rng(7), portrait.blurred, portrait.facemask, portrait.alpha)
    assert same is portrait.blurred


def test_training_samples_carry_pasted_faces_only_when_asked(tmp_path, donors):
    root = write_synthetic_dataset(tmp_path / "data", train=2, val=1, size=(256, 192), seed=2)
    samples, _ = find_training_samples(root)
    assert all(s.facemask is not None for s in samples)
    plain = MattingTrainDataset(samples, size=128, crop_sizes=[512])
    pasted = MattingTrainDataset(samples, size=128, crop_sizes=[512], copy_paste=CopyPaste(donors, 1.0))
    assert not torch_equal(plain[0]["image"], pasted[0]["image"])
    for key in ("alpha", "trimap"):  # the matte and everything derived from it are untouched
        assert torch_equal(plain[0][key], pasted[0][key])


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
