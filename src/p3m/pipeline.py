"""One image in, outputs out: the per-image pipeline under every front end.

Decoding (:mod:`p3m.io.images`) -> the alpha matte (the engine, on the original photo)
-> faces anonymized when asked (:func:`p3m.privacy.anonymize.anonymize`, fail closed,
the matte's transition pixels kept) -> the outputs rendered (alpha, cut-out,
composite) -> encoding (:mod:`p3m.io.writers`). The command line (one file or a
folder), the Python API, the service, cluster actors and video frames all call
:func:`matte_image`; nothing else renders outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

from p3m.errors import ImageError
from p3m.inference.compose import Background, composite, cutout_rgba, estimate_foreground
from p3m.inference.engine import MattingEngine
from p3m.options import FaceBlurOptions, MatteOptions
from p3m.privacy.anonymize import AnonymizeResult, anonymize


@dataclass
class ImageResult:
    """What became of one image."""

    alpha: np.ndarray                  # float32 H x W in [0, 1], from the original photo
    outputs: dict[str, np.ndarray]     # kind -> array; empty when the image is held back
    privacy: AnonymizeResult | None = None  # with options.anonymize: the blur's outcome and audit
    plate: AnonymizeResult | None = None    # with options.anonymize and an image background: its faces' outcome
    warning: str = ""                       # written, but worth a look (no face found: maybe no person)

    @property
    def held_back(self) -> bool:
        """Faces were asked to be anonymized and could not be: nothing may be written."""
        return self.cause is not None

    @property
    def cause(self) -> AnonymizeResult | None:
        """The outcome that held the image back (the photo's, or its background's); None if none did."""
        return next((r for r in (self.privacy, self.plate) if r is not None and not r.written), None)

    def privacy_dict(self) -> dict | None:
        """The privacy outcome as plain values (records, the service), or None without anonymize."""
        if self.privacy is None:
            return None
        outcome = self.privacy.to_dict()
        if self.plate is not None:
            outcome["background"] = self.plate.to_dict()
        return outcome

    @property
    def reason(self) -> str:
        cause = self.cause
        if cause is None:
            return ""
        return cause.reason if cause is self.privacy else f"the background image: {cause.reason}"


def image_kinds(save: Iterable[str]) -> tuple[str, ...]:
    """The image outputs behind ``save``: a video's ``frames`` are its cut-outs."""
    return tuple(dict.fromkeys("cutout" if kind == "frames" else kind for kind in save))


#: What a photo in which no face is found is told: the matte is the engine's idea of a
#: person (MediaPipe's segmentation scores 91% of a cat photo as person), so it may be none.
NO_FACE_WARNING = ("no face found: if there is no person in it, the result is whatever the engine took for one "
                   "(review it)")


#: The face search behind the warning runs on a copy at most this long (its time grows
#: with the area: 1.5 s at 12 megapixels at full size).
WARNING_SEARCH_SIZE = 1600


def person_warning(image: np.ndarray) -> str:
    """``NO_FACE_WARNING`` when BlazeFace finds no face in ``image`` (searched at most
    ``WARNING_SEARCH_SIZE`` px long); "" when it finds one, or without the face models
    (nothing is checked then)."""
    from p3m.weights.default_model import face_models_installed

    if not face_models_installed():
        return ""
    import cv2

    from p3m.privacy.blazeface import any_face

    height, width = image.shape[:2]
    scale = WARNING_SEARCH_SIZE / max(height, width)
    if scale < 1:  # every side at least a pixel: a 20000 x 1 strip must not shrink to nothing
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return "" if any_face(image) else NO_FACE_WARNING


def matte_image(engine: MattingEngine, image: np.ndarray, options: MatteOptions | None = None,
                kinds: Iterable[str] | None = None, *, alpha: np.ndarray | None = None,
                look_for_a_face: bool = True, **faces: Any) -> ImageResult:
    """The outputs (``kinds``, default ``options.save``) of one RGB uint8 image.

    ``alpha`` is the engine's matte when the caller ran the engine already (a batch, a
    video's frames); otherwise the engine runs here. With ``options.anonymize`` the
    outputs show the image with every face blurred, or the result is held back;
    ``faces`` passes ``faces``, ``regions`` and ``find_faces`` on to
    :func:`p3m.privacy.anonymize.anonymize` (a video's frames: faces found upright, and
    carried from the neighbouring frames). Otherwise, with ``look_for_a_face`` (not for
    a video's frames), a photo without a face found gets a ``warning``
    (:func:`person_warning`).
    """
    options = options or MatteOptions()
    kinds = image_kinds(kinds if kinds is not None else options.save)
    if alpha is None:
        alpha = engine.predict([image])[0]
    if not np.isfinite(alpha).all():
        raise ImageError("the engine produced non-finite alpha values (NaN or infinity); are its weights damaged?")
    privacy = None
    if options.anonymize is not None:
        # The transition pixels kept are those of the alpha as it is written (8 or 16 bits),
        # as when p3m anonymize --alpha reads the mattes p3m matte wrote: 0.999 is opaque.
        privacy = anonymize(image, written_alpha(alpha, options.alpha_16bit), options.anonymize, **faces)
        if not privacy.written:
            return ImageResult(alpha, {}, privacy)
        image = privacy.image
        plate = private_background(options) if "composite" in kinds else None
        if plate is not None:
            if not plate.written:
                return ImageResult(alpha, {}, privacy, plate)
            options = dataclasses.replace(options, background=plate.image)
        return ImageResult(alpha, render_outputs(image, alpha, kinds, options), privacy, plate)
    return ImageResult(alpha, render_outputs(image, alpha, kinds, options),
                       warning=person_warning(image) if look_for_a_face else "")


def private_background(options: MatteOptions) -> AnonymizeResult | None:
    """A background image's faces anonymized too (a private composite must not show one
    on its backdrop); None for a colour or 'blur' (the anonymized photo, blurred). A
    backdrop without faces passes through; one with a face that stays identifiable is
    held back like the photo."""
    spec = options.background
    if isinstance(spec, str):
        return _private_background_file(spec, options.anonymize)
    plate = background_of(spec).image if spec is not None else None
    if plate is None:
        return None
    return anonymize(plate, None, dataclasses.replace(options.anonymize, allow_no_face=True))


@lru_cache(maxsize=4)
def _private_background_file(spec: str, faces: FaceBlurOptions) -> AnonymizeResult | None:
    plate = background_of(spec).image  # None for a colour or 'blur'
    return None if plate is None else anonymize(plate, None, dataclasses.replace(faces, allow_no_face=True))


def render_outputs(image: np.ndarray, alpha: np.ndarray, kinds: Iterable[str],
                   options: MatteOptions) -> dict[str, np.ndarray]:
    """The arrays of the asked outputs: alpha (uint8, or uint16 with ``alpha_16bit``),
    cutout (RGBA) and composite (RGB on ``options.background``, white by default)."""
    kinds = tuple(kinds)
    needs_fg = "composite" in kinds or ("cutout" in kinds and not options.premultiplied)
    fg = estimate_foreground(image, alpha) if needs_fg else None
    arrays = {}
    if "alpha" in kinds:
        arrays["alpha"] = written_alpha(alpha, options.alpha_16bit)
    if "cutout" in kinds:
        arrays["cutout"] = cutout_rgba(image, alpha, foreground=fg, premultiplied=options.premultiplied)
    if "composite" in kinds:
        plate = background_of(options.background).for_image(image) if options.background is not None \
            else np.full_like(image, 255)
        arrays["composite"] = composite(image, alpha, plate, foreground=fg)
    return arrays


def written_alpha(alpha: np.ndarray, bits16: bool = False) -> np.ndarray:
    """The alpha as it is written: uint8, or uint16 with ``bits16``."""
    scale, dtype = (65535.0, np.uint16) if bits16 else (255.0, np.uint8)
    return np.round(np.clip(alpha, 0, 1) * scale).astype(dtype)


def background_of(spec) -> Background:
    """The Background of a spec; a text spec is read once (a file is not loaded per frame)."""
    if isinstance(spec, Background):
        return spec
    return _background_from_text(spec) if isinstance(spec, str) else Background(spec)


@lru_cache(maxsize=8)
def _background_from_text(spec: str) -> Background:
    return Background(spec)
