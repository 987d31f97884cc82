"""RESIZE and HYBRID as published: resizing, sizing, fusion rule, batching, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.transform import resize as sk_resize
from torch import nn

import p3m
from p3m.inference import NetworkEngine, network_size
from p3m.inference.resize import bilinear_sources, resize_bilinear, resized_class_is_exact
from p3m.inference.strategies import FullNetworkOnly
from p3m.models.decoder import P3MDecoder
from p3m.reference.given_trimap import GivenTrimap, ellipse_trimap
from p3m.utils.device import torch_threads

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


class ToyMatting(nn.Module):
    """A tiny network following the P3M output convention, whose global classes vary
    with the image (so HYBRID meets foreground, background and transition)."""

    def __init__(self) -> None:
        super().__init__()
        self.local = nn.Conv2d(3, 1, 3, padding=1)
        torch.nn.init.normal_(self.local.weight, std=0.3, generator=torch.Generator().manual_seed(1))

    def forward(self, x):
        gray = x.mean(1, keepdim=True)
        logits = torch.cat([-4 * gray, torch.zeros_like(gray) + 0.5, 4 * gray], dim=1)
        local = torch.sigmoid(self.local(x))
        classes = logits.argmax(1, keepdim=True)
        fusion = torch.where(classes == 2, torch.ones_like(local), torch.where(classes == 0, 0 * local, local))
        return logits, local, fusion


def _portrait(h=150, w=110, seed=0):
    """A smooth image with bright, dark and middle regions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 120 * np.sin(yy / 17.0) * np.cos(xx / 13.0)
    img = np.stack([base, base[::-1], base[:, ::-1]], axis=2) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _published(model, img, method, max_size=1600):
    """Transcription of the authors' test procedure with scikit-image 0.14 semantics:
    bilinear, no anti-aliasing, mode='constant' (cval 0); sides clipped separately."""
    h, w = img.shape[:2]

    def once(ratio):
        rh, rw = int(h * ratio), int(w * ratio)
        nh, nw = min(max_size, rh - rh % 32), min(max_size, rw - rw % 32)
        scaled = sk_resize(img, (nh, nw), order=1, mode="constant", anti_aliasing=False) * 255.0
        x = (scaled / 255.0 - MEAN) / STD
        t = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
        with torch.no_grad():
            g, loc, fus = model(t)[:3]
        classes = g[0].argmax(0).numpy()
        trimap = np.choose(classes, [0, 128, 255]).astype(np.float64)
        return trimap, loc[0, 0].numpy().astype(np.float64), fus[0, 0].numpy().astype(np.float64)

    def up(a):
        return sk_resize(a, (h, w), order=1, mode="constant", anti_aliasing=False)

    if method == "resize":
        return up(once(0.5)[2])
    trimap = up(once(0.5)[0] / 255.0) * 255.0
    local = up(once(1.0)[1])
    fg, bg = np.abs(trimap - 255) < 1e-6, np.abs(trimap) < 1e-6
    return np.where(fg, 1.0, np.where(bg, 0.0, local))


# -- resizing ------------------------------------------------------------------------
@pytest.mark.parametrize("shape, out", [((7, 9), (13, 5)), ((16, 16), (5, 7)), ((32, 48), (96, 100)), ((50, 30), (50, 31))])
@pytest.mark.parametrize("border, mode", [("edge", "edge"), ("zero", "constant")])
def test_resize_matches_scikit_image_without_antialiasing(shape, out, border, mode):
    a = np.random.default_rng(sum(shape)).random(shape)
    ours = resize_bilinear(torch.from_numpy(a)[None, None].float(), out, border=border)[0, 0].numpy()
    expected = sk_resize(a, out, order=1, mode=mode, anti_aliasing=False)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_zero_border_darkens_the_outer_ring_when_upscaling():
    ones = torch.ones(1, 1, 4, 4)
    edge = resize_bilinear(ones, (8, 8), border="edge")
    zero = resize_bilinear(ones, (8, 8), border="zero")
    assert torch.equal(edge, torch.ones_like(edge))
    assert zero[0, 0, 0, 0] < 1 and zero[0, 0, 4, 4] == 1


@pytest.mark.parametrize("border, mode", [("edge", "edge"), ("zero", "constant")])
def test_exact_trimap_rule_matches_resized_trimap(border, mode):
    rng = np.random.default_rng(7)
    for _ in range(40):
        h, w = rng.integers(4, 20, 2)
        oh, ow = rng.integers(4, 60, 2)
        classes = rng.integers(0, 3, (h, w))
        classes[: h // 2] = 2
        trimap = sk_resize(np.choose(classes, [0, 128, 255]) / 255.0, (oh, ow), order=1, mode=mode,
                           anti_aliasing=False) * 255.0
        c = torch.from_numpy(classes)[None]
        fg = resized_class_is_exact(c, 2, (oh, ow), border=border)[0].numpy()
        bg = resized_class_is_exact(c, 0, (oh, ow), border=border)[0].numpy()
        np.testing.assert_array_equal(fg, np.abs(trimap - 255) < 1e-6)
        np.testing.assert_array_equal(bg, np.abs(trimap) < 1e-6)


# -- sizing --------------------------------------------------------------------------
def test_sizes_are_multiples_of_32_and_published_sizing_squashes_large_photos():
    # HYBRID's full-size pass on a 1080 x 1920 landscape photo
    assert network_size(1080, 1920, 1.0, sizing="published") == (1056, 1600)  # aspect 1.52, squashed
    assert network_size(1080, 1920, 1.0, sizing="aspect") == (896, 1600)  # aspect 1.79 kept
    assert network_size(1620, 1080, 0.5, sizing="aspect") == network_size(1620, 1080, 0.5, sizing="published") == (800, 512)
    assert network_size(4000, 3000, 1.0, max_size=1600) == (1600, 1184)
    assert network_size(40, 50, 0.5) == (32, 32)  # tiny images still run


# -- the strategies --------------------------------------------------------------------
@pytest.mark.parametrize("method", ["resize", "hybrid"])
def test_published_sizing_reproduces_the_published_procedure(method):
    model = ToyMatting().eval()
    img = _portrait()
    ours = p3m.predict_alpha(model, img, method=method, sizing="published")
    expected = _published(model, img, method)
    assert ours.shape == img.shape[:2] and ours.dtype == np.float32
    classes_seen = set(np.unique(np.round(expected, 6))) & {0.0, 1.0}
    assert classes_seen == {0.0, 1.0}, "test image should hit both exact classes"
    np.testing.assert_allclose(ours, expected, atol=2e-5)


@pytest.mark.parametrize("method", ["resize", "hybrid"])
def test_p3mnet_with_published_sizing_matches_transcription(reference_model, method):
    img = _portrait(100, 140, seed=3)
    ours = p3m.predict_alpha(reference_model, img, method=method, sizing="published")
    np.testing.assert_allclose(ours, _published(reference_model, img, method), atol=1e-4)


# The fixture-weight P3M-Net amplifies float rounding (logits near 100), so tests of
# batching and sizing, which do not depend on the network, use the toy network.
def test_default_sizing_keeps_edges_and_equals_published_inside():
    model = ToyMatting().eval()
    img = _portrait(100, 140, seed=3)
    ours = p3m.predict_alpha(model, img, method="resize")
    published = p3m.predict_alpha(model, img, method="resize", sizing="published")
    np.testing.assert_allclose(ours[2:-2, 2:-2], published[2:-2, 2:-2], atol=1e-5)
    assert np.abs(ours[-1] - published[-1]).max() > 1e-3  # the published border darkens


def test_hybrid_shortcuts_give_identical_output_to_the_full_network(reference_model):
    img = _portrait(130, 90, seed=5)
    # One thread: bit-reproducible (threaded reductions vary in the last bit from run
    # to run, which the fixture network amplifies).
    with torch_threads(1):
        fast = p3m.predict_alpha(reference_model, img, method="hybrid")
        naive = p3m.predict_alpha(FullNetworkOnly(reference_model), img, method="hybrid")
    np.testing.assert_array_equal(fast, naive)


@pytest.mark.slow
@pytest.mark.parametrize("sizing", ["aspect", "published"])
def test_hybrid_on_the_unknown_band_only_is_identical_to_the_full_network(reference_model, sizing, monkeypatch):
    # With a compact unknown band, pass 2 runs its last layers on tiles over the band;
    # the fixture network's own global output is noise, hence the given trimap.
    img = _portrait(512, 384, seed=7)
    model = GivenTrimap(reference_model, ellipse_trimap(512, 384, band=6)).eval()
    used = []
    finish = P3MDecoder._finish_on_tiles
    monkeypatch.setattr(P3MDecoder, "_finish_on_tiles", lambda *a: used.append(finish(*a)) or used[-1])
    with torch_threads(1):  # see torch_threads: the full network's unpooling splits by thread
        fast = p3m.predict_alpha(model, img, method="hybrid", sizing=sizing)
        naive = p3m.predict_alpha(FullNetworkOnly(model), img, method="hybrid", sizing=sizing)
    assert used and used[0] is not None  # the tiles ran
    np.testing.assert_array_equal(fast, naive)
    assert ((fast > 0) & (fast < 1)).any()


def test_hybrid_skips_the_local_pass_when_the_global_pass_decides_every_pixel(reference_model):
    img = _portrait(160, 120, seed=6)
    model = GivenTrimap(reference_model, np.full((160, 120), 255, np.uint8)).eval()
    model.forward_local = lambda *a, **k: pytest.fail("the local pass ran")
    np.testing.assert_array_equal(p3m.predict_alpha(model, img, method="hybrid"), np.ones((160, 120), np.float32))


@pytest.mark.parametrize("border", ["edge", "zero"])
@pytest.mark.parametrize("in_size,out_size", [((64, 44), (65, 45)), ((50, 32), (81, 54)), ((48, 64), (30, 40))])
def test_bilinear_sources_hold_every_pixel_resizing_reads(in_size, out_size, border):
    gen = torch.Generator().manual_seed(5)
    mask = torch.rand((2, *out_size), generator=gen) > 0.98
    sources = bilinear_sources(mask, in_size)
    values = torch.rand((2, 1, *in_size), generator=gen)
    # Any weight, however small, on a pixel outside the sources would show.
    poisoned = torch.where(sources[:, None], values, values + 100)
    expected = resize_bilinear(values, out_size, border=border)
    got = resize_bilinear(poisoned, out_size, border=border)
    assert torch.equal(got[mask[:, None]], expected[mask[:, None]])
    assert sources.float().mean() < 0.5  # and not simply everything


def test_same_size_images_share_a_batch_with_the_same_result():
    model = ToyMatting().eval()
    images = [_portrait(96, 64, seed=s) for s in range(3)] + [_portrait(64, 96, seed=9)]
    engine = NetworkEngine(model, method="hybrid", batch_size=3)
    calls = []
    run = engine.runner.run
    engine.runner.run = lambda batch: calls.append(len(batch)) or run(batch)
    batched = engine.predict(images)
    single = [p3m.predict_alpha(model, im) for im in images]
    assert sorted(calls) == [1, 3]
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_path_pil_and_array_inputs_agree(tmp_path, reference_model):
    img = _portrait(64, 96)
    path = tmp_path / "p.png"
    Image.fromarray(img).save(path)
    from_array = p3m.predict_alpha(reference_model, img, method="resize")
    np.testing.assert_array_equal(from_array, p3m.predict_alpha(reference_model, Image.fromarray(img), method="resize"))
    np.testing.assert_array_equal(from_array, p3m.predict_alpha(reference_model, str(path), method="resize"))
    assert from_array.min() >= 0 and from_array.max() <= 1


def test_unknown_method_and_bad_arrays_are_clear_errors(reference_model):
    with pytest.raises(p3m.P3MError, match="method must be one of"):
        p3m.predict_alpha(reference_model, _portrait(64, 64), method="tiles")
    with pytest.raises(p3m.P3MError, match="zero size"):
        p3m.predict_alpha(reference_model, np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(p3m.P3MError, match="uint8 or uint16"):
        p3m.predict_alpha(reference_model, np.zeros((10, 10, 3), np.float64))


# -- precision on the CPU -------------------------------------------------------------
def test_fp16_on_the_cpu_runs_as_bf16_with_one_note(reference_model, caplog):
    with caplog.at_level("WARNING", logger="p3m.inference.strategies"):
        engine = NetworkEngine(reference_model, precision="fp16")
    assert engine.runner.precision == "bf16" and "bf16" in engine.summary()
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "fp16 on the CPU runs as bf16" in notes[0]


def test_cpu_bf16_leaves_the_callers_network_as_it_was_and_stays_close_to_fp32(reference_model):
    weight = reference_model.resnet.conv1.weight
    layout, dtype = weight.is_contiguous(), weight.dtype
    engine = NetworkEngine(reference_model, method="resize", precision="bf16")
    prepared = engine.runner.model
    assert prepared is not reference_model
    convs = [m for m in prepared.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.dtype == torch.bfloat16 for c in convs)
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs if c.kernel_size != (1, 1))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())  # folded into the convolutions
    assert reference_model.resnet.conv1.weight.is_contiguous() == layout and reference_model.resnet.conv1.weight.dtype == dtype
    image = np.asarray(Image.fromarray(np.random.default_rng(3).integers(0, 255, (96, 128, 3), np.uint8)))
    bf16 = engine.predict([image])[0]
    fp32 = NetworkEngine(reference_model, method="resize").predict([image])[0]
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert 0 < np.abs(bf16 - fp32).mean() < 0.05  # bf16 ran (not fp32), and stayed close
