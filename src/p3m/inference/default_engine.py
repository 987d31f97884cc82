"""The default engine for people without P3M-Net weights: person segmentation plus
closed-form matting. A baseline, not P3M-Net.

1. MediaPipe's selfie-segmentation network (run by LiteRT) gives a person probability
   at 256 x 256.
2. At a working resolution (longest side ``work_size``), the 0.5 contour of the
   probability becomes a thin unknown band of an automatic trimap.
3. Closed-form matting (pymatting) solves alpha in that band from the image itself.
4. The alpha is resized back to the photo's size.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from p3m.inference.engine import MattingEngine
from p3m.utils.litert import load_interpreter
from p3m.weights.default_model import check_default_model

SEGMENTATION_SIZE = 256


class SegmentationMattingEngine(MattingEngine):
    def __init__(self, model_path: Path | None = None, *, work_size: int = 400, band: float = 0.02) -> None:
        self.model_path = self.weights = check_default_model(model_path)
        self.interpreter = load_interpreter(self.model_path)
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self.work_size, self.band = work_size, band

    @property
    def description(self) -> str:
        return (f"default engine: MediaPipe selfie segmentation + closed-form matting at {self.work_size} px; "
                "a baseline, not P3M-Net")

    def tuned(self, work_size: int | None = None, band: float | None = None) -> SegmentationMattingEngine:
        """This engine with another working size or band: the same loaded model, no reload
        (the service's per-request settings)."""
        import copy

        twin = copy.copy(self)
        twin.work_size = work_size if work_size is not None else self.work_size
        twin.band = band if band is not None else self.band
        return twin

    def person_probability(self, image: np.ndarray) -> np.ndarray:
        """Person probability at 256 x 256, float32 in [0, 1]."""
        x = cv2.resize(image, (SEGMENTATION_SIZE, SEGMENTATION_SIZE), interpolation=cv2.INTER_AREA)
        self.interpreter.set_tensor(self._input, (x.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        return np.clip(self.interpreter.get_tensor(self._output)[0, ..., 0], 0, 1)

    def trimap(self, probability: np.ndarray, height: int, width: int) -> np.ndarray:
        """0 / 0.5 / 1 trimap at height x width with a thin unknown band on the 0.5 contour."""
        prob = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        person = (prob > 0.5).astype(np.uint8)
        radius = max(2, round(self.band * max(height, width)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        trimap = np.full((height, width), 0.5)
        trimap[cv2.erode(person, kernel) > 0] = 1.0
        trimap[cv2.dilate(person, kernel) == 0] = 0.0
        return trimap

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        from p3m.inference.kernels import import_pymatting

        estimate_alpha_cf = import_pymatting().estimate_alpha_cf

        alphas = []
        for image in images:
            h, w = image.shape[:2]
            scale = min(1.0, self.work_size / max(h, w))
            wh, ww = max(8, round(h * scale)), max(8, round(w * scale))
            small = cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA)
            trimap = self.trimap(self.person_probability(image), wh, ww)
            if (trimap == 0.5).any() and (trimap == 1).any() and (trimap == 0).any():
                # pymatting prints a "PERFORMANCE WARNING" whenever its incomplete-Cholesky
                # preconditioner retries with a larger shift; harmless, so not shown to users.
                with contextlib.redirect_stdout(io.StringIO()):
                    alpha = estimate_alpha_cf(small.astype(np.float64) / 255.0, trimap)
            else:  # nothing to solve: all person or all background
                alpha = trimap.round()
            alpha = cv2.resize(alpha.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            alphas.append(np.clip(alpha, 0, 1))
        return alphas
