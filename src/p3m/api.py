"""The one-call Python API: ``p3m.remove(image)`` for a cut-out or a new background,
``p3m.matte(image)`` for the alpha matte.

An image is a path, encoded bytes, a PIL image or an RGB numpy array (H x W x 3 or 4,
or gray). Arrays from OpenCV are BGR: say so with ``bgr=True``; p3m cannot tell
and never guesses. Engines are opened once per (spec, options) and reused by later
calls; pass an engine from :func:`p3m.open_engine` to choose it yourself.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

#: Engines opened by earlier calls, by their spec and options.
_ENGINES: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _engine(engine: Any, options: dict[str, Any]):
    from p3m.inference.engine import MattingEngine
    from p3m.inference.factory import open_engine

    if isinstance(engine, MattingEngine):
        return open_engine(engine, **options)
    key = (str(engine) if isinstance(engine, str) else id(engine), tuple(sorted(options.items())))
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = open_engine(engine, **options)
        return _ENGINES[key]


def _rgb(image: Any, bgr: bool) -> np.ndarray:
    from p3m.errors import ImageError
    from p3m.io.images import load_image, read_image_bytes

    if isinstance(image, (bytes, bytearray, memoryview)):
        return read_image_bytes(bytes(image), name="<bytes>")
    if bgr:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ImageError("bgr=True is for H x W x 3 (or 4) arrays from OpenCV")
        image = image[..., [2, 1, 0, *([3] if image.shape[2] == 4 else [])]]
    return load_image(image)


def matte(image: Any, *, engine: Any = "auto", bgr: bool = False, **options: Any) -> np.ndarray:
    """The alpha matte of ``image``: float32 H x W in [0, 1]. ``options`` open the engine
    (method, device, precision, max_size, ...)."""
    return _engine(engine, options).predict([_rgb(image, bgr)])[0]


def remove(image: Any, *, background: Any = None, engine: Any = "auto", bgr: bool = False,
           premultiplied: bool = False, **options: Any):
    """The person of ``image`` as a PIL image: an RGBA cut-out with estimated foreground
    colours (``background=None``), or an RGB composite on ``background``: a CSS colour,
    an (r, g, b) tuple, ``"blur"``, an image file, a PIL image or an RGB array."""
    from PIL import Image

    from p3m.inference.compose import Background
    from p3m.jobs.matte import MatteOptions, render_outputs

    rgb = _rgb(image, bgr)
    alpha = _engine(engine, options).predict([rgb])[0]
    if background is None:
        kind, mode, plate = "cutout", "RGBA", None
    else:
        kind, mode = "composite", "RGB"
        plate = Background(background if isinstance(background, (str, tuple)) else _rgb(background, False))
    options = MatteOptions(background=plate, premultiplied=premultiplied)
    return Image.fromarray(render_outputs(rgb, alpha, (kind,), options)[kind], mode)
