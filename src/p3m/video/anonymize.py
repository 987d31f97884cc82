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
face is held back like a photo without one. A person seen (:mod:`p3m.privacy.people`)
whose face is neither found nor carried gets the head blurred, as in a photo, in a frame
with other faces; a frame with such a person and no face at all (a back view, a face
lost for longer than the carry) holds the video back as ``person-without-face``; with
``allow_no_face`` that person's head is blurred instead. With ``hold_unaudited`` a frame
with a blurred region the identity audit cannot check holds the video back (``unaudited``).

With ``alpha`` (the alpha video ``p3m matte`` wrote for it) the matte's transition
pixels are kept, as for a photo. That video is lossy (H.264), so its values within
``ALPHA_VIDEO_SNAP`` of 0 and 255 are read as 0 and 255 (codec noise, not an edge);
the pixels kept are those strictly between.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from p3m.errors import VideoError
from p3m.options import FaceBlurOptions
from p3m.privacy.anonymize import AnonymizeResult, Outcome, anonymize
from p3m.privacy.audit import boxes_overlap
from p3m.privacy.blur import Region, face_region_of
from p3m.privacy.faces import Face, after_blur, detect_faces, resolve_detector
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
    strengthened: int = 0          # rounds of stronger blur, over all frames, because a face was still found
    found_after_blur: int = 0      # faces the detector found only in a blurred frame (blurred too)
    identity_matches: int = 0      # faces still recognised at the strongest blur (in uncovered frames)
    min_identity_distance: float | None = None  # over every audited face of every frame
    uncovered: list[int] = field(default_factory=list)  # frames still identifiable at the strongest blur
    uncovered_cut: int = 0         # of those, frames whose closest face is cut by the frame's edge
    faceless: list[int] = field(default_factory=list)   # frames with a person but no face found or carried
    unaudited: list[int] = field(default_factory=list)  # frames with a blurred region the audit cannot check
    heads: int = 0                 # heads of people without a found face blurred
    changed_transition_pixels: int = 0  # with an alpha video: matte edge pixels the blur changed (must stay 0)
    sigma_scale: float | None = None   # the strongest blur any frame needed, x face width

    def add(self, index: int, result: AnonymizeResult) -> None:
        """Count one frame's anonymization (``result`` of :func:`p3m.privacy.anonymize.anonymize`)."""
        if result.status is Outcome.PERSON_WITHOUT_FACE:
            self.faceless.append(index)
        if result.status in (Outcome.NO_FACE, Outcome.NO_FACE_COPIED, Outcome.PERSON_WITHOUT_FACE):
            return  # nothing blurred in this frame
        self.frames_with_faces += 1
        self.heads += result.people
        if result.audit is not None and result.audit.changed_transition_pixels is not None:
            self.changed_transition_pixels += result.audit.changed_transition_pixels
        self.strengthened += result.strengthened
        if result.sigma_scale is not None:
            self.sigma_scale = max(result.sigma_scale, self.sigma_scale or 0.0)
        self.found_after_blur += result.found_after_blur
        if result.audit is not None and result.audit.views:
            low = result.audit.nearest()  # over every view (inf: no face audited)
            if np.isfinite(low):
                self.min_identity_distance = low if self.min_identity_distance is None else \
                    min(low, self.min_identity_distance)
        if result.status is Outcome.UNAUDITED:
            self.unaudited.append(index)
        if result.status is Outcome.IDENTIFIABLE:
            self.uncovered.append(index)
            self.uncovered_cut += result.held_by_cut_face
            self.identity_matches += result.audit.identity_matches if result.audit else 0

    def to_dict(self) -> dict:
        """The report's audit columns of a video (its row's other fields come from the job)."""
        return {"identity_matches": self.identity_matches,
                "min_identity_distance": None if self.min_identity_distance is None else
                round(self.min_identity_distance, 4)}

    def line(self) -> str:
        return (f"{self.frames} frames, {self.faces} face detections, {self.frames_with_faces} frames blurred, "
                f"{self.carried} carried from neighbouring frames, {self.found_after_blur} found after blurring, "
                f"{self.strengthened} blurred again, "
                + (f"closest identity distance {self.min_identity_distance:.3f}, "
                   if self.min_identity_distance is not None else "")
                + (f"{self.heads} heads of people without a found face blurred, " if self.heads else "")
                + (f"{len(self.faceless)} frames with a person but no face found, " if self.faceless else "")
                + (f"{len(self.unaudited)} frames with a region the audit cannot check, " if self.unaudited else "")
                + f"{len(self.uncovered)} uncovered"
                + (f" ({self.identity_matches} still recognised)" if self.identity_matches else ""))


def upright_finder(options: FaceBlurOptions, blurred: bool = False) -> Callable[[np.ndarray], list[Face]]:
    """How a video's frames are searched: upright only. The reader turns frames upright
    from the display matrix already, and three more searches of every frame without a
    face would triple the cost. ``blurred``: the search of a blurred frame, with the
    families of :func:`p3m.privacy.faces.after_blur`."""
    detector = (after_blur if blurred else resolve_detector)(options.detector)
    return lambda rgb: detect_faces(rgb, detector=detector, rotations=(0,))


class FaceCarrier:
    """Each frame's own faces, and the faces of up to ``carry`` frames before and after
    it that no face of the frame overlaps, as regions widened for movement. Frames come
    out ``carry`` frames late, so memory holds ``carry`` frames ahead."""

    def __init__(self, options: FaceBlurOptions, find_faces, audit: VideoAudit, carry: int = CARRY_FRAMES) -> None:
        self.forehead, self.find_faces, self.audit, self.carry = options.forehead, find_faces, audit, carry

    def __call__(self, frames: Iterable[tuple[int | None, np.ndarray]]
                 ) -> Iterator[tuple[int, int | None, np.ndarray, list[Face], list[Region]]]:
        """(index, pts, rgb, own faces, carried regions) for every (pts, rgb) frame, in order."""
        past: deque[tuple[np.ndarray, list[Face]]] = deque(maxlen=self.carry)
        pending: deque[tuple[int, int | None, np.ndarray, list[Face]]] = deque()

        def first():
            index, pts, rgb, own = pending.popleft()
            neighbours = [(d + 1, faces, frame) for d, (frame, faces) in enumerate(reversed(past))]
            neighbours += [(d + 1, entry[3], entry[2]) for d, entry in enumerate(list(pending)[:self.carry])]
            past.append((rgb, own))
            return index, pts, rgb, own, self.regions(rgb, own, neighbours)

        for index, (pts, rgb) in enumerate(frames):
            faces = self.find_faces(rgb)
            self.audit.frames += 1
            self.audit.faces += len(faces)
            pending.append((index, pts, rgb, faces))
            if len(pending) > self.carry:
                yield first()
        while pending:
            yield first()

    def regions(self, rgb: np.ndarray, own: list[Face],
                neighbours: list[tuple[int, list[Face], np.ndarray]]) -> list[Region]:
        """The faces of neighbouring frames that no face of this frame overlaps, widened.
        A carried face is identity-audited here only where it still is: its descriptor in
        this frame, at its landmarks, within the match threshold of its descriptor where it
        was found. Where it has gone (a cut, a person walking out), the region is blurred
        all the same, but background at its landmarks is no face to audit (blurred and
        unblurred background look alike to dlib, which would hold the video back)."""
        boxes, regions = [face.box for face in own], []
        for distance, faces, frame in sorted(neighbours, key=lambda item: item[0]):
            for face in faces:
                if any(boxes_overlap(face.box, box) for box in boxes):
                    continue  # detected here, or already carried from a nearer frame
                region = face_region_of(face, rgb.shape[:2], self.forehead,
                                        int(round(CARRY_MARGIN * face.width * distance)))
                if not _still_there(face, frame, rgb):
                    region.face = None
                regions.append(region)
                boxes.append(region.box)
                self.audit.carried += 1
        return regions


def _still_there(face: Face, found_in: np.ndarray, here: np.ndarray) -> bool:
    """``face`` (found in the frame ``found_in``) is the same face at the same place in ``here``:
    dlib's descriptors of both frames at its landmarks are within the match threshold.
    A face without a descriptor (a weak detection, dlib absent) counts as there (audited)."""
    from p3m.privacy.audit import MATCH_THRESHOLD
    from p3m.privacy.faces import descriptor_at, own_alignment

    if not face.audited:
        return True
    own = own_alignment(found_in, face)  # not the attacker's boxes: only where the face was found
    return float(np.linalg.norm(descriptor_at(found_in, own) - descriptor_at(here, own))) < MATCH_THRESHOLD


def anonymize_video(path: Path, target: Path, options: FaceBlurOptions | None = None, *, carry: int = CARRY_FRAMES,
                    progress=None, find_faces: Callable[[np.ndarray], list[Face]] | None = None,
                    max_pixels: int | None = None, alpha: Path | None = None,
                    **face_options) -> tuple[Outcome, VideoAudit]:
    """Blur every frame's faces of the video at ``path`` into ``target`` (MP4, with the audio).

    Returns the outcome (``OK``, ``HEADS_COVERED`` or ``NO_FACE_COPIED``, which publish
    ``target``; held back: ``NO_FACE``, ``PERSON_WITHOUT_FACE``, ``IDENTIFIABLE`` or
    ``UNAUDITED``, with ``hold_unaudited``) and
    the audit. ``find_faces`` (default: :func:`upright_finder`, one finder before blurring
    and one after) finds faces before and after blurring; ``alpha``: the video's alpha video, whose transition pixels are kept.
    """
    options = options if options is not None else FaceBlurOptions(**face_options)
    find_blurred = find_faces or upright_finder(options, blurred=True)
    find_faces = find_faces or upright_finder(options)
    audit = VideoAudit()
    start = time.perf_counter()
    with VideoReader(path, max_pixels=max_pixels) as reader, \
            (VideoReader(alpha, max_pixels=max_pixels) if alpha is not None else contextlib.nullcontext()) as mattes:
        info = reader.info
        if mattes is not None and (mattes.info.width, mattes.info.height) != (info.width, info.height):
            raise VideoError(f"{alpha}: the alpha video is {mattes.info.width}x{mattes.info.height}, "
                             f"the video is {info.width}x{info.height}")
        if mattes is not None and mattes.info.rate != info.rate:
            raise VideoError(f"{alpha}: the alpha video runs at {float(mattes.info.rate):g} frames/s, the video at "
                             f"{float(info.rate):g}: its frames would not be this video's")
        alphas = _alpha_frames(mattes) if mattes is not None else itertools.repeat(None)
        writer = VideoWriter(target, "composite", info)
        try:
            for (index, pts, rgb, own, carried), matte in zip(FaceCarrier(options, find_faces, audit, carry)(
                    reader.frames()), alphas):
                if matte is _ENDED:
                    raise VideoError(f"{alpha}: the alpha video ends at frame {index}, before the video does")
                result = anonymize(rgb, matte, options, faces=own, regions=carried, find_faces=find_blurred)
                audit.add(index, result)
                if result.status is Outcome.NO_FACE:  # no face found or carried, no person seen: as it is
                    writer.write(rgb, pts)
                else:
                    writer.write(result.image if result.written else np.zeros_like(rgb), pts)  # held back: unpublished
                if progress is not None and index % 10 == 9:
                    progress.frames(str(path), index + 1, info.frames, time.perf_counter() - start)
            if mattes is not None and next(alphas) is not _ENDED:
                raise VideoError(f"{alpha}: the alpha video has more frames than the video ({audit.frames}): its "
                                 "frames would not be this video's")
        except BaseException:
            writer.abandon()
            raise
        if audit.uncovered or audit.faceless or audit.unaudited or (audit.faces == 0 and not options.allow_no_face):
            writer.abandon()
            held = Outcome.IDENTIFIABLE if audit.uncovered else \
                Outcome.PERSON_WITHOUT_FACE if audit.faceless else \
                Outcome.UNAUDITED if audit.unaudited else Outcome.NO_FACE
            return held, audit
        writer.close()
    return (Outcome.OK if audit.faces else Outcome.HEADS_COVERED if audit.heads else Outcome.NO_FACE_COPIED), audit


#: An alpha video's values this close to 0 or 255 are read as 0 or 255: H.264 (CRF 16,
#: as ``p3m matte`` writes it) moves flat black and white by at most a few levels
#: (measured in tests/test_video.py), and a pixel it moved is no matte edge.
ALPHA_VIDEO_SNAP = 8
_ENDED = object()


def _alpha_frames(mattes: VideoReader) -> Iterator:
    """The alpha video's frames as uint8 mattes (codec noise near 0 and 255 snapped), then
    ``_ENDED`` for ever: the caller stops at its own last frame."""
    for _, frame in mattes.frames():
        matte = frame[..., 0].copy()
        matte[matte <= ALPHA_VIDEO_SNAP] = 0
        matte[matte >= 255 - ALPHA_VIDEO_SNAP] = 255
        yield matte
    yield from itertools.repeat(_ENDED)
