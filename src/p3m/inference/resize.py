"""Bilinear resizing as the published evaluation did it.

The authors resized with scikit-image 0.14's ``resize``: order 1 (bilinear), pixel-centre
aligned (``src = (dst + 0.5) * in / out - 0.5``), no anti-aliasing, and that version's
default border ``mode="constant"`` with ``cval=0``: when upscaling, the outermost ring of
output pixels blends with zeros outside the image.

Two borders are offered:
- ``"edge"`` (our default): edge pixels are repeated, as torch's
  ``interpolate(mode="bilinear", align_corners=False)`` and scikit-image's
  ``mode="edge"`` do; nothing darkens at the border.
- ``"zero"``: the published behaviour (scikit-image ``mode="constant"``), used with
  ``sizing="published"`` so benchmark numbers are comparable with the paper's.

Both run in torch on the model's device (the rules themselves, in numpy, are in
:mod:`p3m.inference.bilinear`); the tests compare them with
``skimage.transform.resize`` on small arrays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from p3m.errors import choice_error
from p3m.inference.bilinear import BORDERS, bilinear_footprint, source_coords

__all__ = ["BORDERS", "bilinear_footprint", "bilinear_sources", "resize_bilinear", "resized_class_is_exact"]


def resize_bilinear(x: torch.Tensor, size: tuple[int, int], *, border: str = "edge") -> torch.Tensor:
    """Resize an N x C x H x W float tensor to ``size`` (bilinear, no anti-aliasing)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if border == "edge":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    if border != "zero":
        raise choice_error("border", border, BORDERS)
    # grid_sample with zero padding: neighbours outside the image count as 0.
    (h, w), (oh, ow) = x.shape[-2:], size
    ys = torch.from_numpy((2 * source_coords(h, oh) + 1) / h - 1)
    xs = torch.from_numpy((2 * source_coords(w, ow) + 1) / w - 1)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).to(x.device, x.dtype)
    grid = grid.unsqueeze(0).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resized_class_is_exact(classes: torch.Tensor, value: int, size: tuple[int, int], *,
                           border: str = "edge", outside: int = 0) -> torch.Tensor:
    """Where bilinear resizing of ``classes == value`` would give exactly 1.

    This is HYBRID's "exactly 255 / exactly 0 after resizing the trimap" rule in exact
    arithmetic: an output pixel is exactly of a class iff every source pixel with a
    non-zero bilinear weight is of that class. ``classes`` is N x H x W (integers);
    with ``border="zero"``, pixels outside the image are of class ``outside``
    (background, as a zero-padded trimap).
    """
    hit = classes == value
    offset = 0
    if border == "zero":
        hit = F.pad(hit, (1, 1, 1, 1), value=(value == outside))
        offset = 1
    rows = [torch.from_numpy(i + offset).to(classes.device)
            for i in bilinear_footprint(classes.shape[-2], size[0], border=border)]
    cols = [torch.from_numpy(i + offset).to(classes.device)
            for i in bilinear_footprint(classes.shape[-1], size[1], border=border)]
    result = None
    for r in rows:
        picked_rows = hit.index_select(-2, r)
        for c in cols:
            part = picked_rows.index_select(-1, c)
            result = part if result is None else result & part
    return result


def bilinear_sources(mask: torch.Tensor, in_size: tuple[int, int]) -> torch.Tensor:
    """The input pixels that bilinear resizing from ``in_size`` may read for the pixels in ``mask``.

    ``mask`` is N x H x W (bool) at the output size; the result is N x h x w (bool) at
    ``in_size``. HYBRID needs the local alpha only there. Each output pixel counts the
    pixel below its source coordinate and the one on either side of it: resizing code
    computes the coordinate in float32 and may read a neighbour with a tiny weight where
    exact arithmetic falls on a pixel centre. That holds for either border.
    """
    n, oh, ow = mask.shape
    weights = mask.float()
    by_rows = weights.new_zeros((n, in_size[0], ow))
    for index in _neighbour_indices(in_size[0], oh, mask.device):
        by_rows.index_add_(1, index, weights)
    sources = weights.new_zeros((n, in_size[0], in_size[1]))
    for index in _neighbour_indices(in_size[1], ow, mask.device):
        sources.index_add_(2, index, by_rows)
    return sources > 0


def _neighbour_indices(in_size: int, out_size: int, device) -> list[torch.Tensor]:
    below = np.floor(source_coords(in_size, out_size)).astype(np.int64)
    return [torch.from_numpy(np.clip(below + step, 0, in_size - 1)).to(device) for step in (-1, 0, 1)]
