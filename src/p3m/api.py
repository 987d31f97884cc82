"""The one-call Python API: ``p3m.remove(image)`` for a cut-out or a new background,
``p3m.matte(image)`` for the alpha matte.

An image is a path, encoded bytes, a PIL image or an RGB numpy array (H x W x 3 or 4,
or gray). Arrays from OpenCV are BGR: say so with ``bgr=True``; p3m cannot tell
and never guesses. Keyword options are those of :mod:`p3m.options` (the engine's,
the outputs', and with ``anonymize=True`` the face options); an unknown one is an
:class:`~p3m.errors.OptionError` naming the accepted ones. Engines are opened once per
(spec, options) and reused by later calls; pass an engine from :func:`p3m.open_engine`
to choose it yourself. Both run the one per-image pipeline, :func:`p3m.pipeline.matte_image`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from p3m.options import EngineOptions, FaceBlurOptions, MatteOptions, boolean, face_options_for, unknown_options

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
    if boolean("bgr", bgr):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ImageError("bgr=True is for H x W x 3 (or 4) arrays from OpenCV")
        image = image[..., [2, 1, 0, *([3] if image.shape[2] == 4 else [])]]
    return load_image(image)


#: The keywords of p3m.remove beside the engine's and the face options: what each image
#: becomes (the options the service takes too, but background and anonymize, which are its own).
_REMOVE = tuple(n for n in MatteOptions.names() if MatteOptions.spec(n).service and n not in ("background", "anonymize"))


def _split(options: dict[str, Any], *, remove: bool) -> tuple[dict, dict, dict]:
    """(engine options, matte options, face options) of the keywords; unknown names refused."""
    engine_names = [n for n in EngineOptions.names() if n != "engine"]
    matte_names = _REMOVE if remove else ()
    face_names = FaceBlurOptions.names() if remove else ()
    unknown = [n for n in options if n not in (*engine_names, *matte_names, *face_names)]
    if unknown:
        accepted = ["engine", "bgr", *(("background", "anonymize") if remove else ()), *engine_names,
                    *matte_names, *face_names]
        raise unknown_options(unknown, accepted)
    pick = lambda names: {n: v for n, v in options.items() if n in names}  # noqa: E731
    return pick(engine_names), pick(matte_names), pick(face_names)


def matte(image: Any, *, engine: Any = "auto", bgr: bool = False, **options: Any) -> np.ndarray:
    """The alpha matte of ``image``: float32 H x W in [0, 1]. ``options`` open the engine
    (method, device, precision, max_size, ...)."""
    network, _, _ = _split(options, remove=False)
    return _engine(engine, network).predict([_rgb(image, bgr)])[0]


def remove(image: Any, *, background: Any = None, engine: Any = "auto", bgr: bool = False, anonymize: bool = False,
           **options: Any):
    """The person of ``image`` as a PIL image: an RGBA cut-out with estimated foreground
    colours (``background=None``), or an RGB composite on ``background``: a CSS colour,
    an (r, g, b) tuple, ``"blur"``, an image file, a PIL image or an RGB array.

    With ``anonymize=True`` (and the face options: ``strength``, ``detector``, ...) every
    face is blurred by the fail-closed blur of ``p3m anonymize``; an image that cannot be
    anonymized raises :class:`~p3m.errors.HeldBackError` with the reason and audit.
    """
    from PIL import Image

    from p3m.errors import HeldBackError
    from p3m.pipeline import matte_image

    network, looks, faces = _split(options, remove=True)
    rgb = _rgb(image, bgr)
    if background is not None and not isinstance(background, (str, tuple)):
        background = _rgb(background, False)
    kind, mode = ("cutout", "RGBA") if background is None else ("composite", "RGB")
    settings = MatteOptions(save=(kind,), background=background, anonymize=face_options_for(anonymize, faces, "python"),
                            **looks)
    result = matte_image(_engine(engine, network), rgb, settings)
    if result.held_back:
        raise HeldBackError(result.reason, result.cause)
    if result.warning:
        import warnings

        warnings.warn(f"p3m: {result.warning}", UserWarning, stacklevel=2)
    return Image.fromarray(result.outputs[kind], mode)
