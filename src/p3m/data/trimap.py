"""Trimaps from alpha mattes, by the P3M-10k rule.

foreground = erode(alpha == 1); unknown = dilate(alpha > 0) minus the foreground;
background elsewhere; both with an elliptical kernel. Training makes them online as
classes; the synthetic dataset writes them as 0/128/255 images, as P3M-10k ships them.
"""

from __future__ import annotations

import cv2
import numpy as np

from p3m.models.classes import BACKGROUND, FOREGROUND, TRIMAP_VALUES
from p3m.models.classes import TRANSITION as UNKNOWN

_VALUE_OF_CLASS = np.array(TRIMAP_VALUES, np.uint8)


def make_trimap(alpha: np.ndarray, kernel_size: int) -> np.ndarray:
    """Classes 0/1/2 (background, unknown, foreground) with a ``kernel_size`` ellipse."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    fg = cv2.erode((alpha >= 1).astype(np.uint8), kernel)
    reach = cv2.dilate((alpha > 0).astype(np.uint8), kernel)
    trimap = np.where(reach > 0, UNKNOWN, BACKGROUND).astype(np.uint8)
    trimap[fg > 0] = FOREGROUND
    return trimap


def trimap_image(alpha: np.ndarray, kernel_size: int) -> np.ndarray:
    """The classes as a 0 / 128 / 255 uint8 image (a uint8 matte is read as /255)."""
    if alpha.dtype == np.uint8:
        alpha = alpha / 255.0
    return _VALUE_OF_CLASS[make_trimap(alpha, kernel_size)]


def trimap_from_alpha(alpha: np.ndarray, width: int = 10) -> np.ndarray:
    """0 / 128 / 255 trimap image; the unknown band reaches ``width`` pixels either side."""
    return trimap_image(alpha, 2 * width + 1)
