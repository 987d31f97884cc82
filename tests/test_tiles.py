"""The regional local pass: tiles, windows, unpooling, and exact equality with the whole map."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from p3m.models.decoder import P3MDecoder
from p3m.models.tiles import DENSE_SHARE, plan_tiles, receptive_radius, unpool_windows
from p3m.utils.device import torch_threads


def test_receptive_radius_sums_the_reach_of_each_convolution(reference_model):
    m = reference_model
    assert receptive_radius(m.tfi_0) == 1  # 1x1 projections, then one 3x3
    assert receptive_radius(m.sbfi_0) == 1
    assert receptive_radius(m.decoder0_l) == 2
    assert receptive_radius(nn.Conv2d(1, 1, 5, padding=4, dilation=2)) == 4
    with pytest.raises(ValueError, match="stride-1"):
        receptive_radius(nn.Conv2d(1, 1, 3, stride=2))


def test_plan_covers_the_region_and_keeps_windows_inside_the_map():
    gen = torch.Generator().manual_seed(0)
    region = torch.rand(2, 70, 45, generator=gen) > 0.99
    tile, halo = 8, 3
    plan = plan_tiles(region, tile=tile, halo=halo)
    covered = torch.zeros_like(region)
    for windows in plan.batches(size=5):
        for i, (y0, x0), (cy, cx, ch, cw) in zip(windows.images, windows.origins, windows.cores):
            assert region[i, cy:cy + ch, cx:cx + cw].any()  # only tiles the region touches
            covered[i, cy:cy + ch, cx:cx + cw] = True
            assert 0 <= y0 and y0 + plan.window[0] <= 70 and 0 <= x0 and x0 + plan.window[1] <= 45
            # Each core keeps the halo to every window edge that is not the map's edge.
            assert cy - y0 >= halo or y0 == 0
            assert cx - x0 >= halo or x0 == 0
            assert y0 + plan.window[0] - (cy + ch) >= halo or y0 + plan.window[0] == 70
            assert x0 + plan.window[1] - (cx + cw) >= halo or x0 + plan.window[1] == 45
    assert covered[region].all()


@pytest.mark.parametrize("channels_last", [False, True])
def test_crops_keep_values_and_memory_format(channels_last):
    t = torch.arange(2 * 3 * 20 * 16, dtype=torch.float32).view(2, 3, 20, 16)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    region = torch.zeros(2, 10, 8, dtype=torch.bool)
    region[1, 9, 0] = True
    windows = next(plan_tiles(region, tile=4, halo=1).batches())
    crop = windows.crop(t, scale=2)
    (y0, x0), = windows.origins
    assert torch.equal(crop[0], t[1, :, 2 * y0:2 * y0 + 12, 2 * x0:2 * x0 + 12])
    assert crop.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("kernel,padding", [(3, 1), (2, 0)])
def test_unpooling_windows_equals_unpooling_the_whole_map(kernel, padding):
    gen = torch.Generator().manual_seed(1)
    # Few distinct values: many pools pick the same pixel, so overlapping writes are exercised.
    image = torch.randint(0, 3, (2, 4, 64, 48), generator=gen).float()
    pooled, indices = F.max_pool2d(image, kernel, 2, padding, return_indices=True)
    values = torch.randn(pooled.shape, generator=gen)
    with torch_threads(1):
        whole = F.max_unpool2d(values, indices, 2, 2, output_size=image.shape[-2:])
    out = torch.zeros_like(whole)
    plan = plan_tiles(torch.ones(2, 32, 24, dtype=torch.bool), tile=8, halo=2)
    for windows in plan.batches(size=7):
        unpooled = unpool_windows(windows.crop(values), windows.crop(indices), windows, full_width=48)
        windows.paste(unpooled, out, scale=2, offset=-1)
    assert torch.equal(out, whole)


def _regions(n: int, h: int, w: int) -> torch.Tensor:
    """Small areas: at a corner, along an edge, in the middle; different per image."""
    region = torch.zeros(n, h, w, dtype=torch.bool)
    region[0, :20, :24] = True
    region[0, h // 2, w // 3:w // 2] = True
    region[-1, h - 9:, 40:90] = True
    region[-1, 60:70, w - 3:] = True
    return region


@pytest.mark.parametrize("channels_last", [False, True])
def test_local_pass_on_a_region_equals_the_whole_map(reference_model, channels_last, monkeypatch):
    x = torch.randn(2, 3, 320, 256, generator=torch.Generator().manual_seed(2))
    if channels_last:  # what the inference strategies feed (an NHWC image permuted)
        x = x.contiguous(memory_format=torch.channels_last)
    region = _regions(2, 320, 256)
    used = []
    finish = P3MDecoder._finish_on_tiles
    monkeypatch.setattr(P3MDecoder, "_finish_on_tiles", lambda *a: used.append(finish(*a)) or used[-1])
    # One thread: the whole-map unpooling then has no thread split (see torch_threads).
    with torch_threads(1), torch.inference_mode():
        whole = reference_model.forward_local(x)
        regional = reference_model.forward_local(x, region=region)
    assert used and used[0] is not None  # the tiles ran, not the whole-map fallback
    inside = region[:, None]
    assert torch.equal(regional[inside], whole[inside])
    assert (regional[~inside] == 0).any()  # outside the tiles nothing was computed


def test_vitae_local_pass_on_a_region_equals_the_whole_map(vitae_reference):
    x = torch.randn(1, 3, 256, 320, generator=torch.Generator().manual_seed(3))
    region = _regions(1, 256, 320)
    with torch_threads(1), torch.inference_mode():
        whole = vitae_reference.forward_local(x)
        regional = vitae_reference.forward_local(x, region=region)
    inside = region[:, None]
    assert torch.equal(regional[inside], whole[inside])
    assert (regional[~inside] == 0).any()


def test_a_region_covering_most_of_the_map_runs_the_whole_map(reference_model):
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    region = torch.ones(1, 128, 128, dtype=torch.bool)
    assert plan_tiles(region[:, ::2, ::2], tile=32, halo=5).share > DENSE_SHARE
    with torch_threads(1), torch.inference_mode():
        assert torch.equal(reference_model.forward_local(x, region=region), reference_model.forward_local(x))
