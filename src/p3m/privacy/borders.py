"""Where the picture lies inside plain borders: a letterboxed video frame, a photo on a
page or a canvas, a scan with its margin.

A face cut by the picture's edge there is as cut as one at the frame's edge, but the
frame's own edge search (:func:`p3m.privacy.faces.detect_faces`, a mirrored border)
mirrors the plain border, not the face: the picture is searched on its own as well.
"""

from __future__ import annotations

import numpy as np

#: A line (row or column) is border when all but BORDER_STRAYS of its pixels (and at
#: most 2% of them) lie within BORDER_TOLERANCE levels, in every channel, of the median
#: colour of that side's outermost line: a compressed black bar is not quite flat, and
#: a wall behind a portrait is flat only where nothing stands in front of it, so its
#: lines end where the top of a head is a few pixels wide.
BORDER_STRAYS = 16
BORDER_SHARE = 0.98
BORDER_TOLERANCE = 10
#: A border thinner than this (pixels) is no border: a frame's edge line, codec ringing.
MIN_BORDER = 4

Box = tuple[int, int, int, int]
Sides = tuple[bool, bool, bool, bool]


def picture_box(image: np.ndarray) -> tuple[Box, Sides] | None:
    """The picture's box (left, top, right, bottom) in ``image`` (RGB, or one channel)
    inside plain borders, and which of its sides (left, top, right, bottom) meet one;
    None when no side does (the picture is the frame) or nothing but border is left."""
    image = image[..., None] if image.ndim == 2 else image
    height, width = image.shape[:2]
    columns = image.transpose(1, 0, 2)
    left, right = _border(columns, reverse=False), _border(columns, reverse=True)
    top, bottom = _border(image, reverse=False), _border(image, reverse=True)
    sides = (left >= MIN_BORDER, top >= MIN_BORDER, right >= MIN_BORDER, bottom >= MIN_BORDER)
    if not any(sides):
        return None
    box = (left if sides[0] else 0, top if sides[1] else 0, width - right if sides[2] else width,
           height - bottom if sides[3] else height)
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return None
    return box, sides


def _border(lines: np.ndarray, reverse: bool) -> int:
    """How many of ``lines`` (its rows; from the last when ``reverse``) are plain border:
    read a few lines at a time, as most frames have none and stop at the first."""
    scanned = lines[::-1] if reverse else lines
    reference = np.median(scanned[0], axis=0)
    count, step = 0, MIN_BORDER
    while count < scanned.shape[0]:
        chunk = scanned[count:count + step].astype(np.int32)
        strays = (np.abs(chunk - reference) > BORDER_TOLERANCE).any(axis=2).sum(axis=1)
        plain = strays <= min(BORDER_STRAYS, (1 - BORDER_SHARE) * scanned.shape[1])
        if not plain.all():
            return count + int(np.argmin(plain))
        count, step = count + len(chunk), 2 * step
    return count
