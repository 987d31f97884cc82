"""The one-call Python API: p3m.remove and p3m.matte on every input kind, BGR only when
said, engines reused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import p3m


@pytest.fixture(scope="module")
def weights(tmp_path_factory, reference_model):
    return str(p3m.save_model(reference_model, tmp_path_factory.mktemp("w") / "ref.safetensors"))


def _photo():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    image[..., 0] = 250  # a red cast, so RGB and BGR differ
    return image


def test_remove_gives_an_rgba_cutout_from_every_input_kind(tmp_path, weights):
    image = _photo()
    Image.fromarray(image).save(tmp_path / "a.png")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    cutouts = [p3m.remove(source, engine=weights, method="resize")
               for source in (image, Image.fromarray(image), str(tmp_path / "a.png"), buffer.getvalue())]
    assert all(c.mode == "RGBA" and c.size == (48, 64) for c in cutouts)
    assert all(np.array_equal(np.asarray(c), np.asarray(cutouts[0])) for c in cutouts[1:])


def test_bgr_arrays_are_converted_only_when_said(weights):
    rgb = _photo()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert np.array_equal(p3m.matte(bgr, bgr=True, engine=weights, method="resize"),
                          p3m.matte(rgb, engine=weights, method="resize"))
    assert not np.array_equal(p3m.matte(bgr, engine=weights, method="resize"),
                              p3m.matte(rgb, engine=weights, method="resize"))  # never guessed


def test_backgrounds_and_engine_reuse(weights, monkeypatch):
    image = _photo()
    on_navy = p3m.remove(image, background="navy", engine=weights, method="resize")
    assert on_navy.mode == "RGB" and on_navy.size == (48, 64)
    assert p3m.remove(image, background=(0, 255, 0), engine=weights, method="resize").mode == "RGB"
    assert p3m.remove(image, background=np.zeros((10, 10, 3), np.uint8), engine=weights, method="resize").mode == "RGB"
    import p3m.inference.factory as factory

    real, opened = factory.open_engine, []
    monkeypatch.setattr(factory, "open_engine", lambda *a, **k: opened.append(a) or real(*a, **k))
    p3m.matte(image, engine=weights, method="resize")
    assert opened == [], "the engine opened by the calls above is reused"
    p3m.matte(image, engine=weights, method="hybrid")
    assert len(opened) == 1, "other options open another engine"
    engine = p3m.open_engine(weights, method="resize")
    assert p3m.matte(image, engine=engine).shape == (64, 48)
