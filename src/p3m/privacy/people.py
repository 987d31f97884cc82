"""People whose face is not found: their heads, from the person segmentation p3m ships.

A face detector finds faces; it says nothing of a person seen from behind, a bystander
out of focus, or a face it simply missed. MediaPipe's selfie segmentation (the default
engine's network) says where people are: a sizeable silhouette (``MIN_PERSON`` of the
photo) whose top part meets no found face is a person without a face, and that top part
is taken for the head.

Without the segmentation model (``p3m weights fetch default``) nothing is found here,
and :func:`people_note` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from p3m.privacy.audit import boxes_overlap
from p3m.privacy.blazeface import tiles

#: Person probability above this is a person.
PERSON_THRESHOLD = 0.5
#: A silhouette at least this fraction of the photo is a person (smaller: noise, a hand).
MIN_PERSON = 0.02
#: A silhouette whose top part (this fraction of its height, at most HEAD_WIDTH of its
#: width: a standing figure is tall and narrow) meets no found face is a person without
#: one; that top part is its head, grown by HEAD_GROW of its width (hair, ears).
HEAD_BAND = 0.5
HEAD_WIDTH = 0.8
HEAD_GROW = 0.05
#: The segmentation's input side (MediaPipe's selfie segmentation, general model).
SIZE = 256


@dataclass
class Head:
    """The head of a person whose face was not found."""

    mask: np.ndarray                        # bool H x W, in the photo
    box: tuple[int, int, int, int]          # left, top, right, bottom
    width: int                              # the head's width: the blur's scale, as a face's width


def heads_without_faces(image: np.ndarray, face_boxes: list[tuple]) -> list[Head]:
    """The heads of the people in ``image`` (sizeable silhouettes) whose top part meets none
    of ``face_boxes``. Two people whose silhouettes touch are one silhouette here: one face
    found on it counts for both (a limit of reading people from a segmentation)."""
    model = _segmentation()
    if model is None:
        return []
    height, width = image.shape[:2]
    person = (person_probability(model, image) > PERSON_THRESHOLD).astype(np.uint8)
    sy, sx = height / person.shape[0], width / person.shape[1]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    heads = []
    for label in range(1, count):
        left, top, w, h, area = stats[label]
        if area < MIN_PERSON * person.size:
            continue
        band = max(1, round(min(HEAD_BAND * h, HEAD_WIDTH * w)))
        part = np.zeros_like(person)
        part[top:top + band] = labels[top:top + band] == label
        rows, cols = np.nonzero(part)
        box = (int(cols.min() * sx), int(rows.min() * sy), int(np.ceil((cols.max() + 1) * sx)),
               int(np.ceil((rows.max() + 1) * sy)))
        if any(boxes_overlap(box, face) for face in face_boxes):
            continue
        grow = max(1, round(HEAD_GROW * w * sx))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(cv2.resize(part, (width, height), interpolation=cv2.INTER_NEAREST), kernel).astype(bool)
        heads.append(Head(mask, box, max(1, box[2] - box[0])))
    return heads


#: The person map's longest side (pixels); square windows of the short side are searched too.
MAP_SIZE = 512


def person_probability(model, image: np.ndarray) -> np.ndarray:
    """Person probability over ``image`` at ``MAP_SIZE`` (its longest side): the network on
    the whole photo, and on square windows of its short side with half overlap (the
    network sees one square; a wide photo squeezed into it loses its side people), the
    greatest probability kept."""
    height, width = image.shape[:2]
    scale = MAP_SIZE / max(height, width)
    mh, mw = max(1, round(height * scale)), max(1, round(width * scale))
    small = cv2.resize(image, (mw, mh), interpolation=cv2.INTER_AREA)

    def run(window: np.ndarray) -> np.ndarray:
        x = cv2.resize(window, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        out = np.clip(model(x[None])[0][0, ..., 0], 0, 1)
        return cv2.resize(out, (window.shape[1], window.shape[0]), interpolation=cv2.INTER_LINEAR)

    probability = run(small)
    side = min(mh, mw)
    if max(mh, mw) > 1.2 * side:
        for left, top, right, bottom in tiles(mh, mw, side):
            window = (slice(top, bottom), slice(left, right))
            np.maximum(probability[window], run(small[window]), out=probability[window])
    return probability


def people_note() -> str | None:
    """A warning line when people without a found face cannot be looked for."""
    if _segmentation() is not None:
        return None
    return ("person segmentation not installed: people whose face is not found (back views, bystanders out of "
            "focus) are not looked for; run: p3m weights fetch default")


def _segmentation():
    """The selfie-segmentation network (callable from any thread), or None when it is not
    installed in this P3M_HOME."""
    from p3m.weights.default_model import SELFIE_SEGMENTATION

    path = SELFIE_SEGMENTATION.path()
    return _model_at(path) if path.is_file() else None


@lru_cache(maxsize=4)
def _model_at(path):
    from p3m.utils.litert import PerThreadModel
    from p3m.weights.default_model import check_default_model

    return PerThreadModel(check_default_model(path))  # verified once per file
