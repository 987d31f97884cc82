"""The live engine: mattes at frame rate for cameras and streams. A baseline, not P3M-Net.

1. MediaPipe's selfie-segmentation network (the default engine's, run by LiteRT) gives
   a person probability at 256 x 256 (about 7 ms on 2 cores).
2. A colour guided filter (He, Sun and Tang, "Guided Image Filtering", 2010, in its
   fast form: the linear coefficients solved at ``work_size`` and applied to the
   full-size frame) makes that probability follow the frame's own edges.
3. Pixels further than ``band`` (a fraction of the frame's longer side) from the 0.5
   contour are decided: 1 inside, 0 outside, as in the default engine's trimap.

The default engine's closed-form matting (pymatting) is the photo path's refinement:
more faithful in hair, and about 10x slower. Measured against it in docs/live.md
(``benchmarks/live.py``). OpenCV's own guided filter is in opencv-contrib, which
would replace the opencv-python-headless p3m depends on; the filter is a dozen box
filters, written here with :func:`cv2.boxFilter`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from p3m.inference.engine import MattingEngine
from p3m.io.images import load_image

#: The guided filter's coefficients are solved on a copy whose longer side is this.
WORK_SIZE = 320
#: Its window radius (pixels at WORK_SIZE) and regularisation (alpha per unit of colour variance).
RADIUS, EPS = 4, 1e-3
#: Pixels further than this fraction of the longer side from the 0.5 contour are decided.
BAND = 0.02


class LiveMattingEngine(MattingEngine):
    """Segmentation plus a guided filter: 20 ms a 640 x 360 frame on 2 cores (docs/live.md)."""

    def __init__(self, model_path: Path | None = None, *, work_size: int = WORK_SIZE, band: float = BAND) -> None:
        from p3m.inference.default_engine import SegmentationMattingEngine

        self.segmentation = SegmentationMattingEngine(model_path)
        self.weights = self.segmentation.weights
        self.work_size, self.band = work_size, band

    @property
    def description(self) -> str:
        return (f"live engine: MediaPipe selfie segmentation + guided filter at {self.work_size} px; "
                "a baseline for frame rate, not P3M-Net")

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.matte(image) for image in images]

    def matte(self, image: np.ndarray) -> np.ndarray:
        """The alpha (float32 H x W in [0, 1]) of one RGB uint8 frame (grey, RGBA or 16-bit
        frames are read as :func:`p3m.io.images.load_image` reads any array)."""
        image = load_image(image, max_pixels=None)
        h, w = image.shape[:2]
        probability = self.segmentation.person_probability(image)
        scale = min(1.0, self.work_size / max(h, w))
        sw, sh = max(2, round(w * scale)), max(2, round(h * scale))
        guide = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) * np.float32(1 / 255)
        person = cv2.resize(probability, (sw, sh), interpolation=cv2.INTER_LINEAR)
        a, b = _guided_coefficients(guide, person, RADIUS, EPS)
        decided = _decided(person, max(1, round(self.band * max(sw, sh))))
        up = (w, h)
        a = cv2.resize(a, up, interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(b, up, interpolation=cv2.INTER_LINEAR)
        decided = cv2.resize(decided, up, interpolation=cv2.INTER_LINEAR)
        frame = image[..., :3].astype(np.float32) * np.float32(1 / 255)
        alpha = np.einsum("hwc,hwc->hw", a, frame) + b
        np.clip(alpha, 0, 1, out=alpha)
        inside, outside = decided[..., 0], decided[..., 1]
        alpha = alpha * (1 - inside - outside) + inside
        return np.clip(alpha, 0, 1, out=alpha).astype(np.float32, copy=False)


def _guided_coefficients(guide: np.ndarray, source: np.ndarray, radius: int, eps: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(a: H x W x 3, b: H x W), window-averaged, such that a . guide + b follows ``source``."""
    window = (2 * radius + 1, 2 * radius + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, window)

    mean_guide, mean_source = mean(guide), mean(source)
    cov = mean(guide * source[..., None]) - mean_guide * mean_source[..., None]
    channel = [guide[..., i] for i in range(3)]

    def var(i: int, j: int) -> np.ndarray:
        return mean(channel[i] * channel[j]) - mean_guide[..., i] * mean_guide[..., j]
    rr, rg, rb, gg, gb, bb = var(0, 0) + eps, var(0, 1), var(0, 2), var(1, 1) + eps, var(1, 2), var(2, 2) + eps
    # The 3 x 3 covariance inverted per pixel by its cofactors (symmetric).
    i_rr, i_rg, i_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    i_gg, i_gb, i_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    c0, c1, c2 = cov[..., 0], cov[..., 1], cov[..., 2]
    a = np.dstack([i_rr * c0 + i_rg * c1 + i_rb * c2, i_rg * c0 + i_gg * c1 + i_gb * c2,
                   i_rb * c0 + i_gb * c1 + i_bb * c2]) / det[..., None]
    b = mean_source - np.einsum("hwc,hwc->hw", a, mean_guide)
    return mean(a), mean(b)


def _decided(person: np.ndarray, radius: int) -> np.ndarray:
    """H x W x 2 float32: (surely inside, surely outside) the person, ``radius`` from the 0.5 contour."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = (person > 0.5).astype(np.uint8)
    inside = cv2.erode(mask, kernel)
    outside = 1 - cv2.dilate(mask, kernel)
    return np.dstack([inside, outside]).astype(np.float32)
