"""Writing images atomically (temp file + rename), so an interrupted run never leaves a
half-written file that a resumed run would then skip."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from p3m.errors import ImageError, choice_error
from p3m.utils.files import atomic_path

#: zlib level of every PNG p3m writes. Pillow's default, 6, took 0.19 s for a 1-megapixel
#: RGBA cut-out on 2 cores; 3 takes 0.08 s for a file 12% larger (1 takes 0.07 s, 18%
#: larger). A one-photo run spends about 1.4 s in all (benchmarks/single_photo.py).
PNG_COMPRESS_LEVEL = 3


def write_image(path: str | os.PathLike, array: np.ndarray, *, quality: int = 95) -> Path:
    """Write uint8 gray/RGB/RGBA or uint16 gray as PNG (or JPEG by the suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if array.dtype == np.uint16:
        if suffix != ".png" or array.ndim != 2:
            raise ImageError(f"{path}: 16-bit output is only written as single-channel PNG")
        ok, encoded = cv2.imencode(".png", array)
        if not ok:
            raise ImageError(f"{path}: could not encode 16-bit PNG")
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded.tobytes())
        return path
    image = Image.fromarray(np.ascontiguousarray(array))
    with atomic_path(path) as tmp:
        if suffix in (".jpg", ".jpeg"):
            image.convert("RGB").save(tmp, format="JPEG", quality=quality)
        else:
            image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path


def encode_image(array: np.ndarray, suffix: str = ".png", *, quality: int = 95) -> bytes:
    """The bytes of a uint8 gray/RGB/RGBA image as PNG or JPEG (by ``suffix``), for
    stdout or a response; JPEG drops an alpha channel."""
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(array))
    if suffix.lower() in (".jpg", ".jpeg"):
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    elif suffix.lower() == ".webp":
        image.save(buffer, format="WEBP", lossless=True)
    else:
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_matte(path: str | os.PathLike, alpha: np.ndarray, *, bits: int = 8) -> Path:
    """A float matte in [0, 1] as an 8- or 16-bit PNG (what ``read_matte`` reads back)."""
    if bits not in (8, 16):
        raise choice_error("matte bits", bits, (8, 16))
    scale, dtype = (255.0, np.uint8) if bits == 8 else (65535.0, np.uint16)
    return write_image(path, np.round(alpha * scale).astype(dtype))
