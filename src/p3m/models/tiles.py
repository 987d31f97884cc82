"""Compute local layers on the tiles of a region only, with the values of the full map.

HYBRID uses the local alpha only where the resized global trimap is unknown: a band
around the person that is typically a small part of a portrait. The last layers of
the matting decoder (1/2 and full resolution, about half of the full-size pass) see
only a few pixels around each output, so on a window that reaches ``halo`` pixels past
a tile, or stops at the image border where the full map stops too, they give exactly
the values the full map would have inside the tile. Windows of one size are stacked
into batches, so the convolutions run as efficiently as on the whole map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

#: Above this share of the map's area (windows included), tiling costs more than it saves.
DENSE_SHARE = 0.7


def receptive_radius(*modules: nn.Module) -> int:
    """How many pixels a chain of these modules reaches: the sum over its convolutions.

    Summing every convolution over-counts branches that run side by side, which only
    makes the windows larger than needed, never too small.
    """
    radius = 0
    for module in modules:
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d):
                if conv.stride != (1, 1):
                    raise ValueError("receptive_radius expects stride-1 convolutions")
                radius += max((k - 1) // 2 * d for k, d in zip(conv.kernel_size, conv.dilation))
    return radius


@dataclass(frozen=True)
class Windows:
    """A batch of windows: per window its image, window origin and tile (core) box."""

    images: list[int]
    origins: list[tuple[int, int]]
    cores: list[tuple[int, int, int, int]]  # y, x, height, width
    size: tuple[int, int]

    def crop(self, t: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """The windows of ``t`` (N x C x H*scale x W*scale) stacked: B x C x h*scale x w*scale.

        The crops keep ``t``'s memory format: convolutions pick their kernel, and with
        it the order of their sums, by layout, and the values must match the whole map's.
        """
        h, w = self.size[0] * scale, self.size[1] * scale
        channels_last = not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
        source = t.permute(0, 2, 3, 1) if channels_last else t
        crops = [source[i, y * scale:y * scale + h, x * scale:x * scale + w] if channels_last
                 else source[i, :, y * scale:y * scale + h, x * scale:x * scale + w]
                 for i, (y, x) in zip(self.images, self.origins)]
        stacked = torch.stack(crops)
        return stacked.permute(0, 3, 1, 2) if channels_last else stacked

    def paste(self, result: torch.Tensor, out: torch.Tensor, *, scale: int = 1, offset: int = 0) -> None:
        """Copy each window's core from ``result`` (B x C x ...) into ``out`` (N x C x H*scale x W*scale).

        ``result[k]`` starts at pixel ``origin * scale + offset`` of the map at ``scale``.
        """
        for k, (i, (y, x), (cy, cx, ch, cw)) in enumerate(zip(self.images, self.origins, self.cores)):
            top, left = cy * scale - (y * scale + offset), cx * scale - (x * scale + offset)
            out[i, :, cy * scale:(cy + ch) * scale, cx * scale:(cx + cw) * scale] = \
                result[k, :, top:top + ch * scale, left:left + cw * scale]


@dataclass(frozen=True)
class TilePlan:
    """Which tiles of an N x H x W map to compute, and the window around each."""

    shape: tuple[int, int, int]
    window: tuple[int, int]
    images: list[int]
    origins: list[tuple[int, int]]
    cores: list[tuple[int, int, int, int]]

    @property
    def share(self) -> float:
        """Area of all windows over the area of the map."""
        n, h, w = self.shape
        return len(self.cores) * self.window[0] * self.window[1] / (n * h * w)

    def batches(self, size: int = 64) -> Iterator[Windows]:
        for start in range(0, len(self.cores), size):
            part = slice(start, start + size)
            yield Windows(self.images[part], self.origins[part], self.cores[part], self.window)


def plan_tiles(region: torch.Tensor, *, tile: int, halo: int) -> TilePlan:
    """Tiles of ``tile`` x ``tile`` that touch ``region`` (N x H x W bool), windows ``halo`` wider.

    A window at the map's border is shifted inward rather than cut: there the map's own
    edge bounds it, as it bounds the full computation.
    """
    n, h, w = region.shape
    touched = F.max_pool2d(region[:, None].float(), tile, tile, ceil_mode=True)[:, 0] > 0
    window = (min(tile + 2 * halo, h), min(tile + 2 * halo, w))
    images, origins, cores = [], [], []
    for image, row, col in touched.nonzero().tolist():
        cy, cx = row * tile, col * tile
        images.append(image)
        origins.append((max(0, min(cy - halo, h - window[0])), max(0, min(cx - halo, w - window[1]))))
        cores.append((cy, cx, min(tile, h - cy), min(tile, w - cx)))
    return TilePlan((n, h, w), window, images, origins, cores)


def unpool_windows(values: torch.Tensor, indices: torch.Tensor, windows: Windows, *, full_width: int) -> torch.Tensor:
    """Max-unpool B x C x h x w windows of a map pooled by 2 (3x3 pools with padding 1, or 2x2).

    ``indices`` are the pool's, cropped like ``values``: flat positions in the unpooled
    map of width ``full_width``. A pool window reaches one pixel above and left of its
    2x2 cell, so the result starts at pixel ``2 * origin - 1`` and is 2h+1 x 2w+1 (paste
    it with ``scale=2, offset=-1``). Where two windows picked the same pixel, the later
    one wins, as in the unpooling of the whole map.
    """
    h, w = values.shape[-2:]
    width = 2 * w + 1
    # (row - top) * width + (col - left), with col = index - row * full_width, is
    # index + row * (width - full_width) - (top * width + left): one division and three
    # in-place passes over the int64 indices instead of six new tensors (exact either way).
    start = torch.tensor([(2 * y - 1) * width + 2 * x - 1 for y, x in windows.origins],
                         device=indices.device).view(-1, 1, 1, 1)
    local = torch.div(indices, full_width, rounding_mode="floor")
    local.mul_(width - full_width).add_(indices).sub_(start)
    return F.max_unpool2d(values, local, kernel_size=2, stride=2, output_size=(2 * h + 1, width))
