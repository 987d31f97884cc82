"""Anonymising a video: every frame's faces blurred by the one fail-closed rule of a
photo, detections carried across frames, a per-video audit.

Each frame is searched for faces (the photo tool's detectors and landmarks, upright)
and goes through :func:`p3m.privacy.anonymize.anonymize`, as a photo does: blurred,
searched again (a face found only now is blurred too), audited (re-detection and
identity), blurred harder while a face is still found or recognised. A detector misses
a face now and then (motion blur, a turn of the head). So a face found up to ``carry``
frames before or after a frame, with no detection overlapping it in that frame, is
blurred there too, as an extra region widened by ``CARRY_MARGIN`` of the face width per
frame of distance, for movement. A frame still identifiable at the strongest blur is
uncovered and the video is not written (fail closed). A video in which no frame has a
face is held back like a photo without one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from p3m.options import FaceBlurOptions
from p3m.privacy.anonymize import Outcome, anonymize
from p3m.privacy.audit import boxes_overlap
from p3m.privacy.blur import Region, face_region_of
from p3m.privacy.faces import Face, detect_faces, resolve_detector
from p3m.video.reader import VideoReader
from p3m.video.writer import VideoWriter

#: A face found this many frames before or after a frame is blurred in it too.
CARRY_FRAMES = 2
#: A carried region grows by this fraction of the face width per frame of distance.
CARRY_MARGIN = 0.15


@dataclass
class VideoAudit:
    """What happened to one video's faces."""

    frames: int = 0
    faces: int = 0                 # detections over all frames
    frames_with_faces: int = 0     # frames with at least one region blurred (detected or carried)
    carried: int = 0               # regions blurred in a frame whose detector missed them, from neighbours
    strengthened: int = 0          # frames blurred again because a face was still found
    found_after_blur: int = 0      # faces the detector found only in a blurred frame (blurred too)
    identity_matches: int = 0      # faces still recognised (in uncovered frames only: others were blurred more)
    min_identity_distance: float | None = None  # over every audited face of every frame
    uncovered: list[int] = field(default_factory=list)  # frames with a face found even at the strongest blur

    def line(self) -> str:
        return (f"{self.frames} frames, {self.faces} face detections, {self.frames_with_faces} frames blurred, "
                f"{self.carried} carried from neighbouring frames, {self.found_after_blur} found after blurring, "
                f"{self.strengthened} blurred again, "
                + (f"closest identity distance {self.min_identity_distance:.3f}, "
                   if self.min_identity_distance is not None else "")
                + f"{len(self.uncovered)} uncovered")


class _FrameBlur:
    """Blurs one frame given its own faces and its neighbours' (distance, faces)."""

    def __init__(self, options: FaceBlurOptions, find_faces, audit: VideoAudit) -> None:
        self.options, self.find_faces, self.audit = options, find_faces, audit

    def carried(self, shape, own: list[Face], neighbours: list[tuple[int, list[Face]]]) -> list[Region]:
        """The faces of neighbouring frames that no face of this frame overlaps, widened."""
        boxes, regions = [face.box for face in own], []
        for distance, faces in sorted(neighbours, key=lambda item: item[0]):
            for face in faces:
                if any(boxes_overlap(face.box, box) for box in boxes):
                    continue  # detected here, or already carried from a nearer frame
                region = face_region_of(face, shape, self.options.forehead,
                                        int(round(CARRY_MARGIN * face.width * distance)))
                regions.append(region)
                boxes.append(region.box)
                self.audit.carried += 1
        return regions

    def __call__(self, index: int, rgb: np.ndarray, own: list[Face], carried: list[Region]) -> np.ndarray:
        if not own and not carried:
            return rgb
        self.audit.frames_with_faces += 1
        result = anonymize(rgb, None, self.options, faces=own, regions=carried, find_faces=self.find_faces)
        self.audit.strengthened += result.strengthened
        self.audit.found_after_blur += result.found_after_blur
        if result.audit is not None and result.audit.distances:
            low = min(result.audit.distances)
            self.audit.min_identity_distance = min(low, self.audit.min_identity_distance or low)
        if result.written:
            return result.image
        self.audit.uncovered.append(index)
        self.audit.identity_matches += result.audit.identity_matches if result.audit else 0
        return np.zeros_like(rgb)  # never published: the video is abandoned


def anonymize_video(path: Path, target: Path, options: FaceBlurOptions | None = None, *, carry: int = CARRY_FRAMES,
                    progress=None, find_faces: Callable[[np.ndarray], list[Face]] | None = None,
                    **face_options) -> tuple[Outcome, VideoAudit]:
    """Blur every frame's faces of the video at ``path`` into ``target`` (MP4, with the audio).

    Returns the outcome (``OK``, ``NO_FACE``, ``NO_FACE_COPIED`` or ``IDENTIFIABLE``) and
    the audit. Only ``OK`` and ``NO_FACE_COPIED`` publish ``target``. ``find_faces``
    (default: ``detect_faces`` with ``detector``) finds faces before and after blurring.
    """
    options = options if options is not None else FaceBlurOptions(**face_options)
    detector = resolve_detector(options.detector)
    # Upright only: a video's frames are turned upright from its display matrix already,
    # and three more searches of every frame without a face would triple the cost.
    find_faces = find_faces or (lambda rgb: detect_faces(rgb, detector=detector, rotations=(0,)))
    audit = VideoAudit()
    start = time.perf_counter()
    with VideoReader(path) as reader:
        info = reader.info
        writer = VideoWriter(target, "composite", info)
        blur = _FrameBlur(options, find_faces, audit)
        past: deque[list[Face]] = deque(maxlen=carry)
        pending: deque[tuple[int, int | None, np.ndarray, list[Face]]] = deque()

        def process_first() -> None:
            index, pts, rgb, own = pending.popleft()
            neighbours = [(d + 1, faces) for d, faces in enumerate(reversed(past))]
            neighbours += [(d + 1, entry[3]) for d, entry in enumerate(list(pending)[:carry])]
            writer.write(blur(index, rgb, own, blur.carried(rgb.shape[:2], own, neighbours)), pts)
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
        if audit.uncovered or (audit.faces == 0 and not options.allow_no_face):
            writer.abandon()
            return (Outcome.IDENTIFIABLE if audit.uncovered else Outcome.NO_FACE), audit
        writer.close()
    return (Outcome.OK if audit.faces else Outcome.NO_FACE_COPIED), audit
