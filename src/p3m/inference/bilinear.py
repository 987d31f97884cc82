"""The bilinear rules of the published strategies, in numpy (no torch).

:mod:`p3m.inference.resize` applies them to torch tensors on the model's device; the
ONNX Runtime engine applies them here, to arrays. Both follow scikit-image 0.14's
``resize`` (order 1, pixel-centre aligned, no anti-aliasing), with either border:
``"edge"`` repeats the edge pixels, ``"zero"`` blends the outermost ring with zeros
outside the image, as the published evaluation did.
"""

from __future__ import annotations

import numpy as np

from p3m.errors import choice_error

BORDERS = ("edge", "zero")


def source_coords(in_size: int, out_size: int) -> np.ndarray:
    """Where each output pixel centre falls in the input, in input pixels (float64)."""
    return (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5


def bilinear_footprint(in_size: int, out_size: int, *, border: str = "edge") -> tuple[np.ndarray, np.ndarray]:
    """For each output index, the two source indices with non-zero bilinear weight.

    Where an output pixel falls exactly on a source pixel centre, both indices are that
    pixel. With ``border="zero"`` indices may be -1 or ``in_size`` (outside the image).
    Computed in float64, as scikit-image does.
    """
    if border not in BORDERS:
        raise choice_error("border", border, BORDERS)
    src = source_coords(in_size, out_size)
    # A coordinate within rounding of a pixel centre is on it: the neighbour's weight
    # would be ~1e-15, which no resize implementation agrees on.
    nearest = np.round(src)
    src = np.where(np.abs(src - nearest) < 1e-9, nearest, src)
    if border == "edge":
        src = np.clip(src, 0, in_size - 1)
    low = np.floor(src).astype(np.int64)
    high = np.where(src > low, low + 1, low)
    if border == "edge":
        high = np.minimum(high, in_size - 1)
    return low, high


def _axis_weights(in_size: int, out_size: int, border: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low and high source indices (shifted by one for a zero-padded input) and the high weight."""
    src = source_coords(in_size, out_size)
    if border == "edge":
        src = np.clip(src, 0, in_size - 1)
    low = np.floor(src)
    weight = (src - low).astype(np.float32)
    low = low.astype(np.int64)
    high = low + 1
    if border == "edge":
        high = np.minimum(high, in_size - 1)
        return low, high, weight
    return low + 1, high + 1, weight  # indices into the input padded by one zero pixel


def resize_array(x: np.ndarray, size: tuple[int, int], *, border: str = "edge") -> np.ndarray:
    """Resize a float ... x H x W array to ``size`` (bilinear, no anti-aliasing)."""
    if border not in BORDERS:
        raise choice_error("border", border, BORDERS)
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    x = x.astype(np.float32, copy=False)
    if border == "zero":
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)])
        in_h, in_w = x.shape[-2] - 2, x.shape[-1] - 2
    else:
        in_h, in_w = x.shape[-2:]
    top, bottom, wy = _axis_weights(in_h, size[0], border)
    left, right, wx = _axis_weights(in_w, size[1], border)
    rows = x[..., top, :] * (1 - wy)[:, None] + x[..., bottom, :] * wy[:, None]
    return rows[..., left] * (1 - wx) + rows[..., right] * wx


def resized_class_is_exact_array(classes: np.ndarray, value: int, size: tuple[int, int], *,
                                 border: str = "edge", outside: int = 0) -> np.ndarray:
    """Where bilinear resizing of ``classes == value`` gives exactly 1 (see
    :func:`p3m.inference.resize.resized_class_is_exact`); ``classes`` is ... x H x W."""
    hit = classes == value
    offset = 0
    if border == "zero":
        hit = np.pad(hit, [(0, 0)] * (hit.ndim - 2) + [(1, 1), (1, 1)], constant_values=value == outside)
        offset = 1
    rows = [i + offset for i in bilinear_footprint(classes.shape[-2], size[0], border=border)]
    cols = [i + offset for i in bilinear_footprint(classes.shape[-1], size[1], border=border)]
    result = None
    for r in rows:
        picked_rows = hit[..., r, :]
        for c in cols:
            part = picked_rows[..., c]
            result = part if result is None else result & part
    return result
