"""Turning whatever a user hands us into an H x W x 3 uint8 RGB array.

Photos come in every mode Pillow knows: grayscale, palette, RGBA, CMYK, 16-bit, with
EXIF orientation. Each is converted the way a viewer would show it; anything that
cannot be read raises :class:`ImageError` naming the file and the reason.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from p3m.errors import ImageError, ImageTooLargeError
from p3m.options import RunOptions

#: Default pixel limit: above this an image is refused instead of exhausting memory.
DEFAULT_MAX_PIXELS = RunOptions.default("max_pixels")  # one definition, with the options

ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image]


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 RGB, 16-bit scaled (not clipped), transparency over white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(img).astype(np.int64)
        if img.mode != "I" or values.max(initial=0) > 255:
            values = values >> 8  # 16-bit -> 8-bit by the high byte
        gray = np.clip(values, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        gray = np.clip(np.round(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_image_file(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to RGB uint8, honouring EXIF orientation."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    return _decode(path, str(path), max_pixels)


def read_image_with_alpha(path: str | os.PathLike, *,
                          max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB uint8, alpha uint8 or None) of an image file. An image with an alpha channel
    gives its colours as stored, not composited (what lies under transparent pixels is
    still in the file, so whoever anonymizes it must see it), and its alpha to keep."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    return _decode(path, str(path), max_pixels, split_alpha=True)


def read_image_bytes(data: bytes, *, name: str = "<stdin>", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                     split_alpha: bool = False):
    """Decode encoded image bytes (a PNG, a JPEG, ... as read from stdin or a request);
    ``split_alpha``: (stored RGB, alpha or None), as :func:`read_image_with_alpha`."""
    if not data:
        raise ImageError(f"{name}: no image data (empty input)")
    return _decode(io.BytesIO(data), name, max_pixels, split_alpha)


def load_image_with_alpha(image: ImageLike, *,
                          max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB uint8, alpha uint8 or None) of a path, PIL image or array: an image with an
    alpha channel gives its colours as stored and its alpha (what anonymizing must keep:
    :func:`read_image_with_alpha`); any other, as :func:`load_image`. A 16-bit array's
    alpha comes back in 8 bits, as its colours do."""
    if isinstance(image, (str, os.PathLike)):
        return read_image_with_alpha(image, max_pixels=max_pixels)
    if isinstance(image, Image.Image) and has_alpha(image):
        if image.size[0] == 0 or image.size[1] == 0:
            raise ImageError(f"image has zero size ({image.size[0]}x{image.size[1]})")
        rgba = np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4 and image.size:
        rgba = _array_to_rgb(image[..., :3]), _array_to_rgb(image[..., 3:])[..., 0]  # dtype checked, 16 bits to 8
        return rgba[0], np.ascontiguousarray(rgba[1])
    return load_image(image, max_pixels=max_pixels), None


#: The formats p3m decodes (its image suffixes); no other decoder ever sees an input:
#: no EPS handed to Ghostscript, whatever a file is named or a client uploads.
DECODED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")  # JPEG opens MPO (phone photos) too


def open_image(source) -> Image.Image:
    """Pillow's open, limited to :data:`DECODED_FORMATS` (the one place p3m opens images)."""
    return Image.open(source, formats=DECODED_FORMATS)


#: Pillow modes that carry transparency (a palette's is in its info).
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def has_alpha(img: Image.Image) -> bool:
    """A Pillow image with an alpha channel, or a palette with a transparent entry."""
    return img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info)


def _decode(source, path: str, max_pixels: int | None, split_alpha: bool = False):
    """Decode a file or buffer to RGB uint8, honouring EXIF orientation; ``path`` names it
    in errors. ``split_alpha``: (stored RGB, alpha or None) instead, see :func:`read_image_with_alpha`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image(source) as img:
                w, h = img.size
                if w == 0 or h == 0:
                    raise ImageError(f"{path}: image has zero size ({w}x{h})")
                if max_pixels is not None and w * h > max_pixels:
                    raise ImageTooLargeError(
                        f"{path}: {w}x{h} = {w * h / 1e6:.3g} megapixels exceeds the limit of "
                        f"{max_pixels / 1e6:g} (raise it with --max-pixels)"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                if not split_alpha:
                    return _to_rgb(img)
                if has_alpha(img):
                    rgba = np.asarray(img.convert("RGBA"))
                    return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
                return _to_rgb(img), None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or an unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{path}: refused as too large, a possible decompression bomb ({exc}); "
                         "raise the limit with --max-pixels if you trust it") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot decode image, truncated or corrupt ({exc})") from None


def load_image(image: ImageLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A path, PIL image or array -> H x W x 3 uint8 RGB (a copy; the input is untouched)."""
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(image, max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        if image.size[0] == 0 or image.size[1] == 0:
            raise ImageError(f"image has zero size ({image.size[0]}x{image.size[1]})")
        return _to_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise ImageError(f"unsupported image type {type(image).__name__}; pass a path, PIL image or array")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(f"image array must be H x W, H x W x 3 or H x W x 4, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"image has zero size ({array.shape[1]}x{array.shape[0]})")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"image array must be uint8 or uint16, got {array.dtype}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        array = np.round(array[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(array)


def read_matte(path: str | os.PathLike) -> np.ndarray:
    """An 8- or 16-bit alpha matte (first channel if colour) -> float64 in [0, 1]."""
    try:
        with open_image(path) as img:
            array = np.asarray(img)
    except Exception as exc:
        raise ImageError(f"{path}: cannot read matte ({exc})") from None
    if array.dtype == np.int32 and array.size and 0 <= array.min() and array.max() <= 65535:
        array = array.astype(np.uint16)  # Pillow's mode "I" for a 16-bit PNG
    return matte_to_float(array, name=str(path))


def matte_to_float(array, *, name: str = "alpha matte") -> np.ndarray:
    """A matte array -> float64 in [0, 1]: 8-bit / 255, 16-bit / 65535, float as it is.

    A colour matte gives its first channel. Every matte p3m reads or is handed goes
    through here, so 16-bit mattes are never cut to their high byte or left unscaled.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., 0]
    if array.ndim != 2:
        raise ImageError(f"{name}: must be a 2-D matte, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array / 255.0
    if array.dtype == np.uint16:
        return array / 65535.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ImageError(f"{name}: unsupported matte type {array.dtype} (use uint8, uint16 or float in [0, 1])")
    return array.astype(np.float64, copy=False)
