"""Temporal consistency: each frame's alpha blended with the previous result carried
along optical flow, where the scene holds still and the flow can be trusted.

A matting engine sees each frame alone, so sensor noise and compression make the
edges shimmer even when nothing moves. :class:`FlowSmoother` estimates the motion from
the previous frame to this one (OpenCV's DIS optical flow, on a grey copy at most
:data:`FLOW_SIZE` pixels long), moves the previous result along it, and blends
``weight * carried + (1 - weight) * new``. The blend weight falls off:

- with the flow's **forward-backward error** (a pixel whose motion does not come back
  to where it started is occluded, disoccluded or mismatched: its carried value is not
  trusted);
- with the pixel's **speed** (:data:`STILL_SPEED` pixels a frame). Measured against
  ground truth (``benchmarks/video.py``, docs/video.md), the error of a moving edge is
  the engine's own error moving with the person, not flicker: carrying the past there
  only adds lag and the blur of repeated resampling, so moving pixels keep the new
  estimate and do not lag, while still and slowly drifting ones stop shimmering.

Decided pixels (0 or 1 in both) are unchanged by any blend. A change of size (a new
video) starts afresh, as does an alpha with NaN in it (passed on as it is, for the caller
to refuse). A frame too small for the flow (shorter than :data:`MIN_FLOW_SIDE` pixels)
is passed through. Each alpha returned is the caller's to change.

The older band-only smoother (:class:`p3m.video.stabilise.EdgeSmoother`) stays
available as ``temporal="edges"``, and ``"off"`` is per-frame matting.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from p3m.options import TEMPORAL_MODES

#: The flow is computed on a grey copy whose longer side is at most this many pixels.
FLOW_SIZE = 480
#: The weight of the carried alpha where the scene is still and the flow reliable.
WEIGHT = 0.9
#: Speed (full-size pixels a frame) at which the weight has fallen to 1/e of WEIGHT.
STILL_SPEED = 2.0
#: DIS needs this many pixels on the shorter side (less crashed OpenCV): the flow copy is
#: made at least this big, and a frame smaller than that is passed through.
MIN_FLOW_SIDE = 32
#: Forward-backward error (flow pixels) at which the weight has fallen to 1/e.
FB_TOLERANCE = 2.0
#: Grey-level difference between this frame and the previous one carried along the flow
#: at which the weight has fallen to 1/e: where the flow put the wrong pixel here.
PHOTO_TOLERANCE = 12.0


class FlowSmoother:
    """Call once per frame, in order, with the frame (RGB uint8) and its alpha; returns
    the alpha to write (float32)."""

    def __init__(self, weight: float = WEIGHT, still_speed: float = STILL_SPEED, fb_tolerance: float = FB_TOLERANCE,
                 photo_tolerance: float | None = PHOTO_TOLERANCE, flow_size: int = FLOW_SIZE) -> None:
        import cv2

        if not 0 <= weight < 1:
            raise ValueError("weight must be in [0, 1)")
        self.weight, self.still_speed, self.fb_tolerance = weight, still_speed, fb_tolerance
        self.photo_tolerance, self.flow_size = photo_tolerance, flow_size
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (grey at flow size, alpha written)

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        alpha = np.asarray(alpha, dtype=np.float32)
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[..., 0]
        grey = self._grey(rgb)
        previous = self._previous
        if grey is None or not np.isfinite(alpha).all():
            self._previous = None  # nothing to carry from, or into
            return alpha.copy()
        if previous is None or previous[1].shape != alpha.shape or previous[0].shape != grey.shape:
            self._previous = (grey, alpha.copy())
            return alpha.copy()
        carried, trust = self._carry(previous, grey, alpha.shape)
        weight = np.float32(self.weight) * trust
        out = weight * carried + (1 - weight) * alpha
        self._previous = (grey, out)
        return out.copy()

    def _grey(self, rgb: np.ndarray) -> np.ndarray | None:
        """The frame as 8-bit grey at the flow's size; None when too small for the flow."""
        cv2 = self._cv2
        frame = np.asarray(rgb)
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[..., 0]
        h, w = frame.shape[:2]
        if min(h, w) < MIN_FLOW_SIDE:
            return None
        if frame.dtype != np.uint8:  # 16-bit or float frames: the flow works on 8 bits
            top = 65535.0 if frame.dtype == np.uint16 else 1.0 if frame.dtype.kind == "f" else 255.0
            frame = np.clip(np.nan_to_num(frame.astype(np.float32)) * (255.0 / top), 0, 255).astype(np.uint8)
        grey = frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2GRAY)
        scale = min(1.0, self.flow_size / max(h, w))
        scale = max(scale, MIN_FLOW_SIDE / min(h, w))  # a thin frame keeps its short side for the flow
        size = (round(w * scale), round(h * scale))
        return grey if size == (w, h) else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)

    def _carry(self, previous: tuple[np.ndarray, np.ndarray], grey: np.ndarray, shape: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
        """(the previous alpha moved to this frame, how far to trust it: 0-1), full size."""
        cv2 = self._cv2
        before, alpha_before = previous
        gh, gw = grey.shape
        h, w = shape
        back = self._dis.calc(grey, before, None)   # a pixel here was at pixel + back in the previous frame
        ahead = self._dis.calc(before, grey, None)  # and back again: the forward-backward check
        xs, ys = _grid(gh, gw)
        there_x, there_y = xs + back[..., 0], ys + back[..., 1]  # where each pixel was in the previous frame
        ahead_there = cv2.remap(ahead, there_x, there_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        round_trip = np.sum((back + ahead_there) ** 2, axis=2)
        to_full = np.float32(w / gw), np.float32(h / gh)
        speed2 = (back[..., 0] * to_full[0]) ** 2 + (back[..., 1] * to_full[1]) ** 2
        exponent = round_trip / self.fb_tolerance ** 2 + speed2 / self.still_speed ** 2
        if self.photo_tolerance:
            before_here = cv2.remap(before, there_x, there_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            exponent += ((before_here.astype(np.float32) - grey) / self.photo_tolerance) ** 2
        trust = np.exp(-exponent).astype(np.float32)
        if (gh, gw) != (h, w):
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR)
            back[..., 0] *= to_full[0]
            back[..., 1] *= to_full[1]
            trust = cv2.resize(trust, (w, h), interpolation=cv2.INTER_LINEAR)
        xs, ys = _grid(h, w)
        map_x, map_y = xs + back[..., 0], ys + back[..., 1]
        carried = cv2.remap(alpha_before, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        trust *= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)  # nothing comes from outside
        return carried, trust


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) as float32 H x W grids, made once per size."""
    return (np.broadcast_to(np.arange(w, dtype=np.float32), (h, w)),
            np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))


def temporal_filter(mode: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The per-frame step of ``mode`` (:data:`TEMPORAL_MODES`): a callable (rgb, alpha) -> alpha
    to call once per frame in order (``off``: the alpha as it is)."""
    if mode == "flow":
        return FlowSmoother()
    if mode == "edges":
        from p3m.video.stabilise import EdgeSmoother

        smoother = EdgeSmoother()
        return lambda rgb, alpha: smoother(alpha)
    if mode == "off":
        return lambda rgb, alpha: alpha
    raise ValueError(f"temporal must be one of {', '.join(TEMPORAL_MODES)}; got {mode!r}")
