"""One image in, outputs out: the per-image pipeline under every front end.

Decoding (:mod:`p3m.io.images`) -> the alpha matte (the engine, on the original photo)
-> faces anonymized when asked (:func:`p3m.privacy.anonymize.anonymize`, fail closed,
the matte's transition pixels kept) -> the outputs rendered (alpha, cut-out,
composite) -> encoding (:mod:`p3m.io.writers`). The command line (one file or a
folder), the Python API, the service, cluster actors and video frames all call
:func:`matte_image`; nothing else renders outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np

from p3m.errors import ImageError
from p3m.inference.compose import Background, composite, cutout_rgba, estimate_foreground
from p3m.inference.engine import MattingEngine
from p3m.options import MatteOptions
from p3m.privacy.anonymize import AnonymizeResult, anonymize


@dataclass
class ImageResult:
    """What became of one image."""

    alpha: np.ndarray                  # float32 H x W in [0, 1], from the original photo
    outputs: dict[str, np.ndarray]     # kind -> array; empty when the image is held back
    privacy: AnonymizeResult | None = None  # with options.anonymize: the blur's outcome and audit

    @property
    def held_back(self) -> bool:
        """Faces were asked to be anonymized and could not be: nothing may be written."""
        return self.privacy is not None and not self.privacy.written

    @property
    def reason(self) -> str:
        return self.privacy.reason if self.privacy is not None else ""


def image_kinds(save: Iterable[str]) -> tuple[str, ...]:
    """The image outputs behind ``save``: a video's ``frames`` are its cut-outs."""
    return tuple(dict.fromkeys("cutout" if kind == "frames" else kind for kind in save))


def matte_image(engine: MattingEngine, image: np.ndarray, options: MatteOptions | None = None,
                kinds: Iterable[str] | None = None, *, alpha: np.ndarray | None = None) -> ImageResult:
    """The outputs (``kinds``, default ``options.save``) of one RGB uint8 image.

    ``alpha`` is the engine's matte when the caller ran the engine already (a batch, a
    video's frames); otherwise the engine runs here. With ``options.anonymize`` the
    outputs show the image with every face blurred, or the result is held back.
    """
    options = options or MatteOptions()
    kinds = image_kinds(kinds if kinds is not None else options.save)
    if alpha is None:
        alpha = engine.predict([image])[0]
    if not np.isfinite(alpha).all():
        raise ImageError("the engine produced non-finite alpha values (NaN or infinity); are its weights damaged?")
    privacy = None
    if options.anonymize is not None:
        privacy = anonymize(image, alpha, options.anonymize)
        if not privacy.written:
            return ImageResult(alpha, {}, privacy)
        image = privacy.image
    return ImageResult(alpha, render_outputs(image, alpha, kinds, options), privacy)


def render_outputs(image: np.ndarray, alpha: np.ndarray, kinds: Iterable[str],
                   options: MatteOptions) -> dict[str, np.ndarray]:
    """The arrays of the asked outputs: alpha (uint8, or uint16 with ``alpha_16bit``),
    cutout (RGBA) and composite (RGB on ``options.background``, white by default)."""
    kinds = tuple(kinds)
    needs_fg = "composite" in kinds or ("cutout" in kinds and not options.premultiplied)
    fg = estimate_foreground(image, alpha) if needs_fg else None
    arrays = {}
    if "alpha" in kinds:
        scale, dtype = (65535.0, np.uint16) if options.alpha_16bit else (255.0, np.uint8)
        arrays["alpha"] = np.round(np.clip(alpha, 0, 1) * scale).astype(dtype)
    if "cutout" in kinds:
        arrays["cutout"] = cutout_rgba(image, alpha, foreground=fg, premultiplied=options.premultiplied)
    if "composite" in kinds:
        plate = background_of(options.background).for_image(image) if options.background is not None \
            else np.full_like(image, 255)
        arrays["composite"] = composite(image, alpha, plate, foreground=fg)
    return arrays


def background_of(spec) -> Background:
    """The Background of a spec; a text spec is read once (a file is not loaded per frame)."""
    if isinstance(spec, Background):
        return spec
    return _background_from_text(spec) if isinstance(spec, str) else Background(spec)


@lru_cache(maxsize=8)
def _background_from_text(spec: str) -> Background:
    return Background(spec)
