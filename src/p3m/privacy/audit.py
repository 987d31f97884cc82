"""The privacy outcome of one anonymized image, measured.

- re-detection: does either detector family still find a face overlapping a blurred
  face (searched at the turns the faces were found at);
- identity, of every blurred face that is a face: the distance between dlib's 128-d descriptors of the
  original face and the same face after blurring, and of the blurred face against
  reference photos of the person; a "match" is a distance below 0.6, dlib's usual
  same-person threshold. Both descriptors are taken at the same landmarks, so the
  comparison is of the same region, at several alignments
  (:func:`p3m.privacy.faces.alignments`): the face's own landmarks (fitted in its box
  for a face without them: BlazeFace-only, a profile, a tiny or weak detection), and
  landmarks fitted in the boxes an attacker's detector might draw, clipped to the frame;
  a face counts at its closest, whatever is in the chip there (a face cut by the frame
  is judged by the same rule). Only weak dlib detections that BlazeFace does not confirm
  are left out (:attr:`p3m.privacy.faces.Face.audited`);
- matting integrity: with a matte, the number of changed pixels where 0 < alpha < 1
  (must be 0); and the share of changed pixels outside the face masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from p3m.io.images import matte_to_float
from p3m.privacy.blur import transition_pixels
from p3m.privacy.faces import Face, alignments, clipped, descriptor_at, detect_faces, face_descriptor

MATCH_THRESHOLD = 0.6


@dataclass
class AuditResult:
    faces: int
    low_confidence: int = 0                                          # weak dlib detections: blurred, not audited
    distances: list[float] = field(default_factory=list)           # original vs anonymized, closest alignment
    views: list[list[float]] = field(default_factory=list)         # per audited face, per alignment
    cut_by_frame: list[bool] = field(default_factory=list)         # per audited face: it crosses the frame's edge
    boxes: list[tuple] = field(default_factory=list)               # per audited face: its box (left, top, right, bottom)
    redetected_boxes: list[tuple] = field(default_factory=list)    # the boxes of the faces still found
    reference_distances: list[float] = field(default_factory=list)  # anonymized vs references (min per face)
    changed_transition_pixels: int | None = None
    changed_outside_fraction: float | None = None

    @property
    def redetected(self) -> int:
        """Blurred faces (and regions) a detector still finds."""
        return len(self.redetected_boxes)

    @property
    def identity_matches(self) -> int:
        """Faces recognised at one of their views, and reference photos matched."""
        return sum(min(views) < MATCH_THRESHOLD for views in self.views) + \
            sum(d < MATCH_THRESHOLD for d in self.reference_distances)

    def nearest(self) -> float:
        """The closest identity distance: over every view of every face, and every reference."""
        return min([d for views in self.views for d in views] + self.reference_distances, default=float("inf"))

    def _closest(self) -> int | None:
        """The index of the audited face that gives :meth:`nearest`: closest to its original
        or to a reference photo (None: no face audited)."""
        def closeness(i: int) -> float:
            own = min(self.views[i])
            return min(own, self.reference_distances[i]) if i < len(self.reference_distances) else own

        return min(range(len(self.views)), key=closeness) if self.views else None

    def nearest_is_cut(self) -> bool:
        """The closest face (:meth:`nearest`, references aside) crosses the frame's edge."""
        closest = self._closest()
        return closest is not None and self.cut_by_frame[closest] and min(self.views[closest]) <= self.nearest()

    def nearest_box(self) -> tuple | None:
        """The box of the face that gives :meth:`nearest` (None: no face audited)."""
        closest = self._closest()
        return self.boxes[closest] if closest is not None and closest < len(self.boxes) else None

    def to_dict(self) -> dict:
        """The audit as plain values: the service's JSON and the report's columns."""
        return {"faces": self.faces, "redetected": self.redetected, "identity_matches": self.identity_matches,
                "low_confidence": self.low_confidence,
                "min_identity_distance": round(self.nearest(), 4) if np.isfinite(self.nearest()) else None,
                "distances": [round(d, 4) for d in self.distances],
                "reference_distances": [round(d, 4) for d in self.reference_distances],
                "changed_transition_pixels": self.changed_transition_pixels,
                "changed_outside_fraction": self.changed_outside_fraction}


def boxes_overlap(a: tuple, b: tuple) -> bool:
    """Two (left, top, right, bottom) boxes share some area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def audit_pair(original: np.ndarray, anonymized: np.ndarray, *, faces: list[Face] | None = None,
               alpha: np.ndarray | None = None, face_mask: np.ndarray | None = None,
               references: list[np.ndarray] | None = None, detector: str = "auto",
               after: list[Face] | None = None, also: list[Face] = ()) -> AuditResult:
    """The audit of one anonymized image; ``after``: the faces found in it already (by
    whoever searched it), else it is searched here at the turns the faces were found at.
    ``also``: faces not found in this image but blurred in it (carried from a
    neighbouring video frame), identity-audited only."""
    faces = faces if faces is not None else detect_faces(original, detector=detector)
    if after is None:
        turns = sorted({0} | {face.rotation for face in faces})
        after = detect_faces(anonymized, detector=detector, rotations=turns)
    shape = original.shape[:2]
    still = [clipped(f.box, shape[1], shape[0]) for f in faces if any(boxes_overlap(f.box, g.box) for g in after)]
    result = AuditResult(len(faces), redetected_boxes=still)
    for face in [*faces, *also]:
        if not face.audited:
            result.low_confidence += 1
            continue
        views, nearest = [], float("inf")
        for alignment in alignments(original, face):
            blurred, before = descriptor_at(anonymized, alignment), descriptor_at(original, alignment)
            views.append(float(np.linalg.norm(before - blurred)))
            if references:
                nearest = min(nearest, *(float(np.linalg.norm(blurred - r)) for r in references))
        result.views.append(views)
        result.cut_by_frame.append(crosses_frame(face, original.shape[:2]))
        result.boxes.append(clipped(face.box, shape[1], shape[0]))
        result.distances.append(min(views))
        if references:
            result.reference_distances.append(nearest)
    changed = (original != anonymized).any(axis=2)
    if alpha is not None:
        result.changed_transition_pixels = changed_transition_pixels(original, anonymized, alpha)
    if face_mask is not None:
        result.changed_outside_fraction = float((changed & ~(face_mask > 0)).sum() / changed.size)
    return result


def crosses_frame(face: Face, shape: tuple[int, int]) -> bool:
    """``face`` was found in the mirrored border (of the frame, or of a picture inside
    plain borders), or its box reaches the frame's edge (touching counts: a detector's
    box is clipped to the frame, so a face that touches it may go on beyond)."""
    left, top, right, bottom = face.box
    return bool(face.padding) or face.picture is not None or left <= 0 or top <= 0 or right >= shape[1] or \
        bottom >= shape[0]


def changed_transition_pixels(original: np.ndarray, anonymized: np.ndarray, alpha: np.ndarray) -> int:
    """How many pixels with 0 < alpha < 1 the anonymization changed (it must change none)."""
    changed = (original != anonymized).any(axis=2)
    return int((changed & transition_pixels(matte_to_float(alpha))).sum())


def reference_descriptors(images: list[np.ndarray], detector: str = "auto") -> list[np.ndarray]:
    """Descriptors of the faces found in reference photos (confident detections only: a
    false detection's descriptor would "match" anything)."""
    out = []
    for image in images:
        for face in detect_faces(image, detector=detector):
            if face.confident and face.has_descriptor:
                out.append(face_descriptor(image, face))
    return out


@dataclass
class AuditTotals:
    """The privacy outcome of many images; the same keys for ``p3m anonymize`` and
    ``p3m privacy-audit``."""

    images: int = 0
    audited_images: int = 0
    faces: int = 0
    redetected: int = 0
    identity_matches: int = 0
    changed_transition_pixels: int = 0

    def add(self, audit: AuditResult | None, changed_transition: int | None = None) -> None:
        """Count one image (its audit, or only its matting integrity)."""
        self.images += 1
        if audit is not None:
            self.audited_images += 1
            self.faces += audit.faces
            self.redetected += audit.redetected
            self.identity_matches += audit.identity_matches
            changed_transition = audit.changed_transition_pixels
        self.changed_transition_pixels += changed_transition or 0

    def line(self) -> str:
        return (f"re-detected {self.redetected}; identity matches {self.identity_matches}; "
                f"changed transition pixels {self.changed_transition_pixels}")
