"""Steadier edges between frames: alpha smoothed over time in the edge band only.

A matting network sees each frame alone, so sensor noise and compression make the
semi-transparent band flicker from frame to frame even when nothing moves. The
smoother blends each frame's alpha with the previous result where both (1) the pixel
is in the band (semi-transparent now or before) and (2) the change is small, as noise
is. Where the change is large (a moving person) or the pixel is decided (0 or 1), the
frame's own alpha is kept, so motion is not smeared and solid regions are untouched.
Measured in docs/video.md with ``benchmarks/video.py``.
"""

from __future__ import annotations

import numpy as np

#: Alpha values strictly inside (LOW, HIGH) count as the edge band.
LOW, HIGH = 0.02, 0.98


class EdgeSmoother:
    """Call once per frame, in order; returns the alpha to write."""

    def __init__(self, weight: float = 0.5, motion: float = 0.1) -> None:
        if not 0 <= weight < 1:
            raise ValueError("weight must be in [0, 1)")
        self.weight, self.motion = np.float32(weight), motion
        self.previous: np.ndarray | None = None

    def __call__(self, alpha: np.ndarray) -> np.ndarray:
        alpha = alpha.astype(np.float32, copy=False)
        previous = self.previous
        if previous is None or previous.shape != alpha.shape:
            self.previous = alpha.copy()
            return alpha.copy()
        band = ((alpha > LOW) & (alpha < HIGH)) | ((previous > LOW) & (previous < HIGH))
        steady = band & (np.abs(alpha - previous) < self.motion)
        smoothed = np.where(steady, self.weight * previous + (1 - self.weight) * alpha, alpha)
        self.previous = smoothed
        return smoothed.copy()  # the caller's to change
