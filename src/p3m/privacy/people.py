"""People whose face is not found: their heads, from the person segmentation p3m ships.

A face detector finds faces; it says nothing of a person seen from behind, a bystander
out of focus, or a face it simply missed. MediaPipe's selfie segmentation (the default
engine's network) says where people are: a sizeable silhouette (``MIN_PERSON`` of the
photo) whose top part meets no found face is a person without a face, and that top part
is taken for the head (for a silhouette cut by the frame's side, whose width says
nothing of its head, a head's height from the faces found elsewhere).

People who stand close are one silhouette, so a silhouette with a found face may hold
another person whose face was missed (a neighbour cut by the frame's edge, a head behind
a shoulder). Each found face explains its own person: its head and, below its chin, a
body widening downwards (:func:`explained`). What is left of the silhouette, a part of
0.3 face areas and 0.6 face widths at least (0.1 face areas at the frame's edge) and
reaching above the lowest chin, is taken for another person, and its top (two face
widths of the faces beside it, or its own head band if larger) for that person's head.
A found face whose explained head that part borders is named in ``Head.beside``: the
two may be cheek to cheek, so its whole head is covered too
(:func:`p3m.privacy.anonymize.anonymize`).

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
#: What a found face explains of its silhouette, in face widths: its head (the box grown
#: EXPLAIN_SIDE sideways, EXPLAIN_ABOVE above: hair, ears) and its body below the chin,
#: BODY_HALF_WIDTH either side of the face's centre at the chin, widening by BODY_SPREAD
#: per pixel down (shoulders, arms at the sides).
EXPLAIN_SIDE = 0.35
EXPLAIN_ABOVE = 0.9
BODY_HALF_WIDTH = 1.6
BODY_SPREAD = 0.6
#: A part left unexplained is another person's when it holds at least MIN_LEFTOVER face
#: areas (of the faces beside it) after an opening of an eighth of a face width (ragged
#: borders); EDGE_LEFTOVER where it meets the frame's side or top edge (a neighbour cut
#: by the frame shows a strip). Its top HEAD_HEIGHT face widths are the head.
MIN_LEFTOVER = 0.3
EDGE_LEFTOVER = 0.1
#: ... and, away from the frame's edges, at least this many face widths wide: a strip
#: beside a head is its hair (a bun, long hair), not another head.
MIN_OTHER_WIDTH = 0.6
HEAD_HEIGHT = 2.0


@dataclass
class Head:
    """The head of a person whose face was not found."""

    mask: np.ndarray                        # bool H x W, in the photo
    box: tuple[int, int, int, int]          # left, top, right, bottom
    width: int                              # the head's width: the blur's scale, as a face's width
    beside: tuple[int, ...] = ()            # the found faces (indices) whose heads border it, in its silhouette


def heads_without_faces(image: np.ndarray, face_boxes: list[tuple]) -> list[Head]:
    """The heads of the people in ``image`` whose face is not among ``face_boxes``: of
    sizeable silhouettes whose top part meets no face, and of the people a silhouette
    holds beside its faces (:func:`_others`)."""
    model = _segmentation()
    if model is None:
        return []
    height, width = image.shape[:2]
    person = (person_probability(model, image) > PERSON_THRESHOLD).astype(np.uint8)
    sy, sx = height / person.shape[0], width / person.shape[1]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    on_map = [(f[0] / sx, f[1] / sy, f[2] / sx, f[3] / sy) for f in face_boxes]
    heads = []
    for label in range(1, count):
        left, top, w, h, area = stats[label]
        if area < MIN_PERSON * person.size:
            continue
        band = max(1, round(min(HEAD_BAND * h, HEAD_WIDTH * w)))
        part = np.zeros_like(person)
        part[top:top + band] = labels[top:top + band] == label
        box = _box_of(part, sx, sy)
        met = [i for i, face in enumerate(face_boxes) if boxes_overlap(box, face)]
        if met:
            heads += _others(labels == label, on_map, met, (sx, sy), (height, width))
            continue
        size = 0.0
        if (left == 0 or left + w == person.shape[1]) and on_map:  # cut by the frame: its width says nothing;
            size = float(np.median([f[2] - f[0] for f in on_map]))  # the faces' size does
            band = max(band, round(HEAD_HEIGHT * size))
            part[top:top + band] = labels[top:top + band] == label
            box = _box_of(part, sx, sy)
        heads.append(_head(part, box, round(HEAD_GROW * w * sx), (sx, sy), (height, width),
                           max(box[2] - box[0], round(size * sx))))
    return heads


def explained(shape: tuple[int, int], faces: list[tuple]) -> np.ndarray:
    """The part of a person map (``shape``) that the ``faces`` (boxes on the map) explain:
    each face's head and the body below its chin (bool)."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    out = np.zeros(shape, bool)
    for face in faces:
        left, top, right, bottom = _explained_head(face)
        out |= (cols >= left) & (cols < right) & (rows >= top) & (rows < bottom)
        w, centre = max(face[2] - face[0], 1.0), (face[0] + face[2]) / 2
        out |= (rows >= bottom) & (np.abs(cols - centre) <= BODY_HALF_WIDTH * w + BODY_SPREAD * (rows - bottom))
    return out


def _others(silhouette: np.ndarray, faces: list[tuple], met: list[int], scale: tuple[float, float],
            shape: tuple[int, int]) -> list[Head]:
    """The heads of other people in a ``silhouette`` whose top part meets the faces ``met``
    (indices of ``faces``, boxes on the map): parts its own faces (their centres on it;
    else ``met``) do not explain, of a head's size (``MIN_LEFTOVER``, ``EDGE_LEFTOVER``,
    ``MIN_OTHER_WIDTH``) and reaching above the lowest chin; each with the faces whose
    explained heads border it (``Head.beside``)."""
    own = [i for i, f in enumerate(faces) if silhouette[int(np.clip((f[1] + f[3]) / 2, 0, silhouette.shape[0] - 1)),
                                                        int(np.clip((f[0] + f[2]) / 2, 0, silhouette.shape[1] - 1))]]
    own = own or met
    mine = [faces[i] for i in own]
    face_width = float(np.median([f[2] - f[0] for f in mine]))
    chin = max(f[3] for f in mine)
    left = (silhouette & ~explained(silhouette.shape, mine)).astype(np.uint8)
    side = max(1, round(face_width / 8))
    left = cv2.morphologyEx(left, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(left, connectivity=8)
    heads = []
    for label in range(1, count):
        x, top, w, h, area = stats[label]
        at_edge = x == 0 or top == 0 or x + w == left.shape[1]
        if top >= chin or area < (EDGE_LEFTOVER if at_edge else MIN_LEFTOVER) * face_width ** 2 or \
                (not at_edge and w < MIN_OTHER_WIDTH * face_width):
            continue
        part = np.zeros_like(left)
        band = max(1, round(max(HEAD_HEIGHT * face_width, min(HEAD_BAND * h, HEAD_WIDTH * w))))  # beside small
        part[top:top + band] = labels[top:top + band] == label  # faces, a big person's head is its own size
        box = _box_of(part, *scale)
        reach = (x - side, top - side, x + w + side, top + h + side)
        beside = tuple(i for i in own if boxes_overlap(reach, _explained_head(faces[i])))
        heads.append(_head(part, box, round(HEAD_GROW * face_width * scale[0]), scale, shape,
                           max(box[2] - box[0], round(face_width * scale[0])), beside))
    return heads


def _explained_head(face: tuple) -> tuple:
    """The head a found face explains (:func:`explained`): its box grown EXPLAIN_SIDE sideways, EXPLAIN_ABOVE up."""
    left, top, right, bottom = face
    w = max(right - left, 1.0)
    return (left - EXPLAIN_SIDE * w, top - EXPLAIN_ABOVE * w, right + EXPLAIN_SIDE * w, bottom)


def _box_of(part: np.ndarray, sx: float, sy: float) -> tuple[int, int, int, int]:
    """The box of a map's non-zero pixels, in the photo."""
    rows, cols = np.nonzero(part)
    return (int(cols.min() * sx), int(rows.min() * sy), int(np.ceil((cols.max() + 1) * sx)),
            int(np.ceil((rows.max() + 1) * sy)))


def _head(part: np.ndarray, box: tuple, grow: int, scale: tuple[float, float], shape: tuple[int, int],
          width: int, beside: tuple[int, ...] = ()) -> Head:
    """A head from its part of the map: in the photo, grown by ``grow`` pixels."""
    grow = max(1, grow)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    mask = cv2.dilate(cv2.resize(part, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST), kernel).astype(bool)
    return Head(mask, box, max(1, width), beside)


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
