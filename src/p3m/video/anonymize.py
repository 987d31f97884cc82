"""Anonymising a video: every frame's faces blurred, detections carried across frames,
a per-video audit, and fail closed.

Each frame is searched for faces (the photo tool's detectors and landmarks, upright) and
blurred inside each face's region, as :mod:`p3m.privacy.anonymize` does for a photo.
A detector misses a face now and then (motion blur, a turn of the head). So a face
found up to ``carry`` frames before or after a frame, with no detection overlapping it
in that frame, is blurred there too. Its region is widened by ``CARRY_MARGIN`` of the
face width per frame of distance, for movement. After blurring, each frame is searched
again. A face found only now (away from every blurred region) is blurred too; a face
still found where it was blurred gets a stronger blur, up to the photo tool's limit.
If a face is still found at the strongest blur, the frame is uncovered and the video
is not written (fail closed). A video in which no frame has a face is held back like a photo
without one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from p3m.privacy.anonymize import MAX_SIGMA_SCALE, STRENGTHEN, Outcome, blur_inside, dilate, face_mask
from p3m.privacy.audit import boxes_overlap
from p3m.privacy.faces import Face, detect_faces, resolve_detector
from p3m.video.reader import VideoReader
from p3m.video.writer import VideoWriter

#: A face found this many frames before or after a frame is blurred in it too.
CARRY_FRAMES = 2
#: A carried region grows by this fraction of the face width per frame of distance.
CARRY_MARGIN = 0.15
#: Blur-and-search rounds per frame before it counts as uncovered.
MAX_PASSES = 8


@dataclass
class VideoAudit:
    """What happened to one video's faces."""

    frames: int = 0
    faces: int = 0                 # detections over all frames
    frames_with_faces: int = 0     # frames with at least one region blurred (detected or carried)
    carried: int = 0               # regions blurred in a frame whose detector missed them, from neighbours
    strengthened: int = 0          # frames blurred again because a face was still found
    found_after_blur: int = 0      # faces the detector found only in a blurred frame (blurred too)
    uncovered: list[int] = field(default_factory=list)  # frames with a face found even at the strongest blur

    def line(self) -> str:
        return (f"{self.frames} frames, {self.faces} face detections, {self.frames_with_faces} frames blurred, "
                f"{self.carried} carried from neighbouring frames, {self.found_after_blur} found after blurring, "
                f"{self.strengthened} blurred again, "
                f"{len(self.uncovered)} uncovered")


@dataclass
class _Region:
    mask: np.ndarray
    width: int
    box: tuple[int, int, int, int]


def _region(face: Face, shape: tuple[int, int], forehead: float, grow: int = 0) -> _Region:
    mask = dilate(face_mask(face, shape, forehead), grow)
    left, top, right, bottom = face.box
    return _Region(mask, max(face.width, 1), (left - grow, top - grow, right + grow, bottom + grow))


class _FrameBlur:
    """Blurs one frame given its own faces and its neighbours' (distance, faces)."""

    def __init__(self, scale: float, forehead: float, find_faces, audit: VideoAudit) -> None:
        self.scale, self.forehead, self.find_faces, self.audit = scale, forehead, find_faces, audit

    def regions(self, shape, own: list[Face], neighbours: list[tuple[int, list[Face]]]) -> list[_Region]:
        regions = [_region(face, shape, self.forehead) for face in own]
        for distance, faces in sorted(neighbours, key=lambda item: item[0]):
            for face in faces:
                if any(boxes_overlap(face.box, r.box) for r in regions):
                    continue  # detected here, or already carried from a nearer frame
                grow = int(round(CARRY_MARGIN * face.width * distance))
                regions.append(_region(face, shape, self.forehead, grow))
                self.audit.carried += 1
        return regions

    def __call__(self, index: int, rgb: np.ndarray, regions: list[_Region]) -> np.ndarray:
        if not regions:
            return rgb
        self.audit.frames_with_faces += 1
        scale, regions = self.scale, list(regions)
        for _ in range(MAX_PASSES):
            out = rgb
            for region in regions:
                out = blur_inside(out, region.mask, scale * region.width)
            found = self.find_faces(out)
            if not found:
                return out
            new = [face for face in found if not any(boxes_overlap(face.box, r.box) for r in regions)]
            if new:  # found only now (the blur changed what the detector sees nearby): blurred too
                regions += [_region(face, rgb.shape[:2], self.forehead) for face in new]
                self.audit.found_after_blur += len(new)
                continue
            if scale >= MAX_SIGMA_SCALE:
                break
            scale = min(MAX_SIGMA_SCALE, scale * STRENGTHEN)
            self.audit.strengthened += 1
        self.audit.uncovered.append(index)
        return out


def anonymize_video(path: Path, target: Path, *, sigma_scale: float, forehead: float, detector: str = "auto",
                    allow_no_face: bool = False, carry: int = CARRY_FRAMES, progress=None,
                    find_faces: Callable[[np.ndarray], list[Face]] | None = None) -> tuple[Outcome, VideoAudit]:
    """Blur every frame's faces of the video at ``path`` into ``target`` (MP4, with the audio).

    Returns the outcome (``OK``, ``NO_FACE``, ``NO_FACE_COPIED`` or ``IDENTIFIABLE``) and
    the audit. Only ``OK`` and ``NO_FACE_COPIED`` publish ``target``. ``find_faces``
    (default: ``detect_faces`` with ``detector``) finds faces before and after blurring.
    """
    detector = resolve_detector(detector)
    # Upright only: a video's frames are turned upright from its display matrix already,
    # and three more searches of every frame without a face would triple the cost.
    find_faces = find_faces or (lambda rgb: detect_faces(rgb, detector=detector, rotations=(0,)))
    audit = VideoAudit()
    start = time.perf_counter()
    with VideoReader(path) as reader:
        info = reader.info
        writer = VideoWriter(target, "composite", info)
        blur = _FrameBlur(sigma_scale, forehead, find_faces, audit)
        past: deque[list[Face]] = deque(maxlen=carry)
        pending: deque[tuple[int, int | None, np.ndarray, list[Face]]] = deque()

        def process_first() -> None:
            index, pts, rgb, own = pending.popleft()
            neighbours = [(d + 1, faces) for d, faces in enumerate(reversed(past))]
            neighbours += [(d + 1, entry[3]) for d, entry in enumerate(list(pending)[:carry])]
            writer.write(blur(index, rgb, blur.regions(rgb.shape[:2], own, neighbours)), pts)
            past.append(own)
            if progress is not None and index % 10 == 9:
                progress.frames(str(path), index + 1, info.frames, time.perf_counter() - start)

        try:
            for index, (pts, rgb) in enumerate(reader.frames()):
                faces = find_faces(rgb)
                audit.frames += 1
                audit.faces += len(faces)
                pending.append((index, pts, rgb, faces))
                if len(pending) > carry:
                    process_first()
            while pending:
                process_first()
        except BaseException:
            writer.abandon()
            raise
        if audit.uncovered or (audit.faces == 0 and not allow_no_face):
            writer.abandon()
            return (Outcome.IDENTIFIABLE if audit.uncovered else Outcome.NO_FACE), audit
        writer.close()
    return (Outcome.OK if audit.faces else Outcome.NO_FACE_COPIED), audit
