"""From an alpha matte to what people use: cut-outs and new backgrounds.

A cut-out's colours are the *estimated foreground* (pymatting's multi-level
foreground estimation), not the photo's colours: at hair edges the photo mixes the
person with the old background, and a straight-alpha PNG of those colours would carry
a halo of that background onto any new one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from p3m.colours import parse_colour
from p3m.errors import OptionError
from p3m.io.images import load_image


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours (float32 H x W x 3 in [0, 1]) behind the mixed edge pixels.

    Images of a few pixels (pymatting's pyramid needs more) keep their own colours.
    """
    from p3m.inference.kernels import import_pymatting

    estimate_foreground_ml = import_pymatting().estimate_foreground_ml
    if min(image.shape[:2]) < 4:
        return image.astype(np.float32) / 255.0
    # pymatting works in float32 whatever it is given: float32 inputs give the same
    # foreground without two image-sized float64 copies (8 GB less at 40 megapixels).
    fg = estimate_foreground_ml(image.astype(np.float32) / np.float32(255.0), alpha.astype(np.float32, copy=False))
    return np.clip(fg, 0.0, 1.0, out=fg if fg.dtype == np.float32 else None).astype(np.float32, copy=False)


def cutout_rgba(image: np.ndarray, alpha: np.ndarray, *, foreground: np.ndarray | None = None,
                premultiplied: bool = False) -> np.ndarray:
    """RGBA uint8 cut-out: straight alpha over the estimated foreground (default), or the
    published "image times alpha" colours with ``premultiplied``."""
    fg = None if premultiplied else estimate_foreground(image, alpha) if foreground is None else foreground
    out = np.empty((*image.shape[:2], 4), np.uint8)
    for rows in _bands(image):
        a = alpha[rows, :, None].astype(np.float32)
        rgb = image[rows].astype(np.float32) * a if premultiplied else fg[rows] * 255.0
        out[rows] = _to_uint8(np.concatenate([rgb, a * 255.0], axis=2))
    return out


def composite(image: np.ndarray, alpha: np.ndarray, background: np.ndarray, *,
              foreground: np.ndarray | None = None) -> np.ndarray:
    """alpha * F + (1 - alpha) * B as uint8 RGB, F the estimated foreground."""
    fg = estimate_foreground(image, alpha) if foreground is None else foreground
    out = np.empty(image.shape, np.uint8)
    for rows in _bands(image):
        a = alpha[rows, :, None].astype(np.float32)
        out[rows] = _to_uint8(a * fg[rows] * 255.0 + (1.0 - a) * background[rows].astype(np.float32))
    return out


#: Rows rendered at a time: element-wise work in bands of about a megapixel keeps the
#: float temporaries of a 40-megapixel photo near 50 MB instead of several GB.
BAND_PIXELS = 1 << 20


def _bands(image: np.ndarray):
    step = max(1, BAND_PIXELS // max(image.shape[1], 1))
    return (slice(top, top + step) for top in range(0, image.shape[0], step))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def cover(background: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``background`` to cover height x width, then crop the centre."""
    bh, bw = background.shape[:2]
    scale = max(height / bh, width / bw)
    nh, nw = max(height, round(bh * scale)), max(width, round(bw * scale))
    resized = cv2.resize(background, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (nh - height) // 2, (nw - width) // 2
    return resized[top:top + height, left:left + width]


class Background:
    """A background: a colour (a spec or an (r, g, b) tuple), an image (a file, a PIL
    image or an RGB array; cover-fitted), or ``blur`` (the original photo blurred, the
    video-call look)."""

    def __init__(self, spec) -> None:
        self.colour, self.image = None, None
        if isinstance(spec, tuple):
            self.colour, self.spec = tuple(int(v) for v in spec[:3]), ",".join(str(int(v)) for v in spec[:3])
            return
        if not isinstance(spec, str):
            self.image, self.spec = load_image(spec), "<image>"
            return
        self.spec = spec
        self.colour = parse_colour(spec)
        if self.colour is None and spec.lower() != "blur":
            if not Path(spec).is_file():
                raise OptionError(f"background {spec!r}: not a CSS colour (navy, #0f0, rgb(0,255,0)), 'r,g,b', "
                                  "'blur' or an image file")
            self.image = load_image(spec)

    def for_image(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.colour is not None:
            return np.broadcast_to(np.array(self.colour, dtype=np.uint8), (h, w, 3))
        if self.image is not None:
            return cover(self.image, h, w)
        sigma = max(h, w) / 60.0
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
