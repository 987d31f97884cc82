"""Anonymizing one image, failing closed: the one rule behind ``p3m anonymize``,
private cut-outs (``p3m matte --anonymize``), the service and the Python API.

Faces are blurred (:func:`p3m.privacy.blur.blur_faces`), then the blurred image is
searched again. A face found only now, away from every blurred region, is blurred too
(the blur changed what a detector sees nearby). Then the result is audited
(:func:`p3m.privacy.audit.audit_pair`: re-detection by both detector families, and the
identity descriptor at the original landmarks). While a blurred face is still detected
or recognised, or recognisable within ``IDENTITY_MARGIN`` of the threshold, the blur is
made stronger (x ``STRENGTHEN``, up to ``MAX_SIGMA_SCALE`` x the face width), and at the
strongest blur it covers each face's whole head once (what identifies a profile or a
cut face may lie outside its outline). An image still identifiable then, or with a face
still within the margin, is held back: its result carries no image. So is an image in
which no face is found (unless ``allow_no_face``; a hand-drawn mask is used where
given). A person seen (:mod:`p3m.privacy.people`) whose head meets no face gets the head
blurred where other faces were found (and a found face beside it in one silhouette its
whole head: :attr:`p3m.privacy.faces.Face.whole_head`), and holds the image back where
none were (``person-without-face``; with ``allow_no_face`` the heads are blurred). With
``hold_unaudited``, an image in which anything blurred escapes the identity audit (such a
head, a weak detection no second opinion calls a face) is held back (``unaudited``). Video
frames go through the same rule, with the faces carried from neighbouring frames as
extra regions (:mod:`p3m.video.anonymize`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

import numpy as np

from p3m.errors import OptionError
from p3m.io.images import load_image, load_image_with_alpha
from p3m.options import STRENGTHS, FaceBlurOptions
from p3m.privacy.audit import MATCH_THRESHOLD, AuditResult, audit_pair, boxes_overlap
from p3m.privacy.blur import FaceDetail, Region, blur_faces, head_mask
from p3m.privacy.faces import Face, after_blur, clipped, detect_faces, resolve_detector
from p3m.privacy.people import heads_without_faces

__all__ = ["STRENGTHS", "AnonymizeResult", "Outcome", "anonymize"]

#: When the audit still finds a blurred face or its identity, sigma grows by this factor
#: and the image is blurred again, up to MAX_SIGMA_SCALE; beyond, it is held back.
STRENGTHEN = 1.5
MAX_SIGMA_SCALE = 0.40
#: The blur is made stronger while a face's identity distance is below the match
#: threshold plus this margin; at the strongest blur, a face still within it holds the image back.
IDENTITY_MARGIN = 0.05
#: Rounds that blur faces found only after blurring; faces still found new after them
#: count as leaks (the blur is then made stronger, up to MAX_SIGMA_SCALE, as for any leak).
MAX_NEW_FACE_ROUNDS = 8


class Outcome(str, Enum):
    """What happened to one image; the report's ``status`` column."""

    OK = "ok"                          # faces detected and blurred
    HAND_MASK = "hand-mask"            # blurred inside a hand-drawn mask
    NO_FACE = "no-face"                # nothing found: held back (fail closed)
    NO_FACE_COPIED = "no-face-copied"  # nothing found, copied through as asked (allow_no_face)
    IDENTIFIABLE = "identifiable"      # still re-detected or recognised at the strongest blur: held back
    PERSON_WITHOUT_FACE = "person-without-face"  # a person seen, no face found: held back
    HEADS_COVERED = "heads-covered"    # no face found, the heads of the people seen blurred (allow_no_face)
    UNAUDITED = "unaudited"            # something blurred the audit cannot check: held back (hold_unaudited)
    MISSING_MATTE = "missing-matte"    # --alpha given but no matte for this image
    ERROR = "error"                    # unreadable input, mismatched matte, ...
    SKIPPED = "skipped"                # already anonymized (resume)

    def __str__(self) -> str:
        return self.value

    def said(self, reason: str) -> str:
        """The line every report gives an image: this status, then why."""
        return f"{self.value}: {reason}"

    @property
    def written(self) -> bool:
        """An anonymized image exists after this outcome."""
        return self in (Outcome.OK, Outcome.HAND_MASK, Outcome.NO_FACE_COPIED, Outcome.HEADS_COVERED)

    @property
    def held_back(self) -> bool:
        """Deliberately not written (fail closed), for review."""
        return self in (Outcome.NO_FACE, Outcome.IDENTIFIABLE, Outcome.PERSON_WITHOUT_FACE, Outcome.UNAUDITED)


@dataclass
class AnonymizeResult:
    status: Outcome                 # written: OK, HAND_MASK, NO_FACE_COPIED, HEADS_COVERED; else held back
    image: np.ndarray | None        # the anonymized copy (RGBA for an RGBA input); None when held back
    mask: np.ndarray                # uint8 0/255: the pixels that changed (P3M-10k's facemask)
    faces: list[FaceDetail] = field(default_factory=list)
    detected: list[Face] = field(default_factory=list)
    audit: AuditResult | None = None
    sigma_scale: float | None = None  # the blur finally used, x face width
    strengthened: int = 0             # rounds blurred again because a face was still found or recognised
    found_after_blur: int = 0         # faces found only in a blurred round (blurred too)
    whole_heads: bool = False         # whole heads blurred (the faces' outlines were not enough)
    people: int = 0                   # people whose face was not found: their heads blurred
    unaudited: list[tuple] = field(default_factory=list)  # (box, what) blurred but not identity-audited

    @property
    def written(self) -> bool:
        return self.status.written

    @property
    def reason(self) -> str:
        """Why the image was held back ("" when it was not), in the words every front end shows."""
        if self.status is Outcome.NO_FACE:
            return "no face found: not anonymized (fail closed; review it, supply a face mask, or allow_no_face " \
                   "for back views)"
        if self.status is Outcome.PERSON_WITHOUT_FACE:
            return (f"{self.people} person(s) seen but no face found (a back view, a face out of focus or missed): "
                    "not anonymized (fail closed; review it, supply a face mask, or allow_no_face to blur their "
                    "heads)")
        if self.status is Outcome.UNAUDITED:
            box, what = self.unaudited[0]
            return (f"{len(self.unaudited)} blurred region(s) the identity audit cannot check, the first {what} at x "
                    f"{box[0]}-{box[2]}, y {box[1]}-{box[3]}: held back as asked (hold_unaudited; review it)")
        if self.status is Outcome.IDENTIFIABLE:
            audit = self.audit
            where = None
            if audit is not None and audit.redetected:
                how, where = "re-detected", audit.redetected_boxes[0] if audit.redetected_boxes else None
            elif audit is not None and audit.identity_matches:
                how, where = "recognised", audit.nearest_box()
            else:
                closest = audit.nearest() if audit is not None else float("nan")
                how = (f"within the identity margin (distance {closest:.3f}, under "
                       f"{MATCH_THRESHOLD + IDENTITY_MARGIN:.2f})")
                where = audit.nearest_box() if audit is not None else None
            which = "a face" if where is None else f"the face at x {where[0]}-{where[2]}, y {where[1]}-{where[3]}"
            line = f"{which} is still {how} at the strongest blur (sigma {MAX_SIGMA_SCALE} x face width, whole " \
                   "heads): not anonymized (fail closed)"
            if self.held_by_cut_face:
                line += ("; it is cut by the frame (or by the edge of a picture in plain borders), where a "
                         "recogniser's view is mostly that edge, which no "
                         "blur changes: crop the face out, or review it")
            return line
        return ""

    @property
    def held_by_cut_face(self) -> bool:
        """Held back because a face cut by the frame stays recognised or within the margin
        (not re-detected): no blur changes what a recogniser sees of it."""
        audit = self.audit
        return (self.status is Outcome.IDENTIFIABLE and audit is not None and not audit.redetected
                and _within_margin(audit) and audit.nearest_is_cut())

    def line(self) -> str:
        """One line for people: what was blurred and how the check came out."""
        if not self.written:
            return self.reason
        if self.audit is None:
            return f"{self.status.value}: {len(self.faces)} region(s) blurred, not audited"
        audit = self.audit
        low = audit.nearest() if np.isfinite(audit.nearest()) else None  # over every view
        return (f"{len(self.faces)} face(s) blurred (sigma {self.sigma_scale:.3g} x face width"
                f"{', whole heads' if self.whole_heads else ''}); "
                + (f"heads of {self.people} people without a found face blurred; " if self.people else "")
                + "re-detected "
                f"{audit.redetected}; identity matches {audit.identity_matches}"
                + (f"; closest identity distance {low:.3f}" if low is not None else "")
                + (f"; not identity-checked (weak detections) {audit.low_confidence}" if audit.low_confidence else ""))

    def to_dict(self) -> dict[str, Any]:
        """The outcome and audit as plain values (the service's JSON, a record's fields)."""
        return {"status": self.status.value, "faces": len(self.faces),
                "sigma_scale": None if self.sigma_scale is None else round(self.sigma_scale, 4),
                "whole_heads": self.whole_heads, "people_without_face": self.people,
                "unaudited": [{"box": list(box), "what": what} for box, what in self.unaudited],
                "audit": None if self.audit is None else self.audit.to_dict()}


def prepared(options: FaceBlurOptions) -> FaceBlurOptions:
    """``options`` ready for a job of many images: dlib and its model files checked before
    any work (nothing loaded), and ``auto`` resolved to the detector families once, not per
    image (the same subclass comes back)."""
    from p3m.privacy.dlib_models import check_installed

    check_installed()
    return dataclasses.replace(options, detector=resolve_detector(options.detector))


def anonymize(image, alpha=None, options: FaceBlurOptions | None = None, *, hand_mask: np.ndarray | None = None,
              faces: list[Face] | None = None, regions: list[Region] = (),
              find_faces: Callable[[np.ndarray], list[Face]] | None = None, **face_options: Any) -> AnonymizeResult:
    """Blur every face of ``image`` (path, PIL or array), keeping the transition pixels of
    ``alpha``; search and audit; blur harder while a face is still found or recognised;
    fail closed. An image with an alpha channel is searched in its colours as stored
    (what lies under transparent pixels is still in the file) and comes back with its
    alpha channel as it was.

    ``options`` (or its fields as keywords: ``strength``, ``sigma_scale``, ``detector``,
    ...) say how. ``hand_mask`` (H x W, non-zero = face, or its file) is blurred where no
    face is found, as the authors' hand-drawn masks were. ``faces`` skips detection; ``regions``
    are blurred beside them (faces carried from other frames); ``find_faces`` searches a
    blurred image (default: dlib and BlazeFace (:func:`p3m.privacy.faces.after_blur`) at the
    turns the faces were found at).
    """
    if options is not None and face_options:
        raise OptionError(f"give {', '.join(face_options)} in the options, not beside them")
    options = options if options is not None else FaceBlurOptions(**face_options)
    rgb, transparency = load_image_with_alpha(image)
    result = _anonymize(rgb, alpha, options, hand_mask, faces, regions, find_faces)
    if transparency is not None and result.image is not None:
        result.image = np.dstack([result.image, transparency])
    return result


def _anonymize(rgb: np.ndarray, alpha, options: FaceBlurOptions, hand_mask, faces, regions,
               find_faces) -> AnonymizeResult:
    detector = resolve_detector(options.detector)
    recheck = after_blur(detector)  # the families that search the blurred image
    scale, strengthened, found_late = options.scale, 0, 0
    kwargs = dict(forehead=options.forehead, detector=detector, protect_dilation=options.protect_dilation)
    people = 0
    if hand_mask is None:  # the faces (found here unless given), and the people whose face is not among them
        faces = faces if faces is not None else detect_faces(rgb, detector=detector)
        found = heads_without_faces(rgb, [f.box for f in faces] + [r.box for r in regions])
        if found and not faces and not regions and not options.allow_no_face:
            return AnonymizeResult(Outcome.PERSON_WITHOUT_FACE, None, np.zeros(rgb.shape[:2], np.uint8),
                                   people=len(found))
        faces, regions = _beside_people(found, faces, regions, rgb.shape[:2])
        regions, people = [*regions, *(Region(h.mask, h.width, h.box, head=True) for h in found)], len(found)
    written = Outcome.OK if faces or not people else Outcome.HEADS_COVERED
    rounds, head = 0, False
    while True:  # ends: new-face rounds are bounded, the blur grows to MAX_SIGMA_SCALE, then covers heads once
        blurred = blur_faces(rgb, alpha, sigma_scale=scale, faces=faces, regions=regions, head=head, **kwargs)
        if blurred.image is None:
            return _no_face(rgb, alpha, options, hand_mask, scale, kwargs)
        faces = blurred.detected  # detect once; only the blur changes
        turns = sorted({0} | {face.rotation for face in faces})
        after = find_faces(blurred.image) if find_faces else detect_faces(blurred.image, detector=recheck,
                                                                            rotations=turns)
        covered = [face.box for face in faces] + [region.box for region in regions]
        new = [face for face in after if not any(boxes_overlap(face.box, box) for box in covered)]
        if new and rounds < MAX_NEW_FACE_ROUNDS:
            faces, found_late, rounds = faces + new, found_late + len(new), rounds + 1
            continue
        audit = audit_pair(rgb, blurred.image, faces=faces, alpha=alpha, face_mask=blurred.mask,
                           detector=recheck, after=after, also=[r.face for r in regions if r.face is not None])
        still = [clipped(box, rgb.shape[1], rgb.shape[0]) for box in [face.box for face in new]
                 + [r.box for r in regions if any(boxes_overlap(f.box, r.box) for f in after)]]
        audit.redetected_boxes += still
        narrow = _within_margin(audit)
        leaks = bool(audit.redetected or audit.identity_matches)
        if not (leaks or narrow):
            unchecked = _unaudited(faces, regions, rgb.shape[:2]) if options.hold_unaudited else []
            return AnonymizeResult(Outcome.UNAUDITED if unchecked else written, None if unchecked else blurred.image,
                                   blurred.mask, blurred.faces, faces, audit, scale, strengthened, found_late, head,
                                   people, unchecked)
        if scale >= MAX_SIGMA_SCALE and head:
            return AnonymizeResult(Outcome.IDENTIFIABLE, None, blurred.mask, blurred.faces, faces, audit, scale,
                                   strengthened, found_late, head, people)
        if scale >= MAX_SIGMA_SCALE:  # what identifies a face may lie outside its outline (a profile, a cut face)
            head = True
        scale, strengthened = min(MAX_SIGMA_SCALE, scale * STRENGTHEN), strengthened + 1


def _beside_people(found: list, faces: list[Face], regions: list[Region],
                   shape: tuple[int, int]) -> tuple[list[Face], list[Region]]:
    """``faces`` and ``regions`` with the whole heads covered of those beside a person
    whose face is not found, in one silhouette (``Head.beside`` of ``found``, from
    :func:`p3m.privacy.people.heads_without_faces`; indices into faces, then regions).
    People that close may be cheek to cheek: the other's face may lie inside the margin
    the found face's own hair and ears explain, which neither head band reaches."""
    beside = {i for h in found for i in h.beside}
    faces = [dataclasses.replace(f, whole_head=True) if i in beside else f for i, f in enumerate(faces)]
    regions = list(regions)
    for index in sorted(i - len(faces) for i in beside if i >= len(faces)):
        region = regions[index]  # a face carried from a neighbouring frame: its head there
        face = region.face if region.face is not None else Face(region.box, None)
        regions[index] = dataclasses.replace(region, mask=region.mask | head_mask(face, shape))
    return faces, regions


def _unaudited(faces: list[Face], regions: list[Region], shape: tuple[int, int]) -> list[tuple]:
    """(box, what it is) of each region blurred whose identity the audit does not check: faces not
    :attr:`~p3m.privacy.faces.Face.audited` (weak ones no second opinion calls a face, found
    here or carried from a video's neighbouring frame), and the heads of people whose face
    was not found. dlib's distance means nothing on what is not a face: a blurred shoulder
    stays "close" to itself, so these cannot be shown unlinkable, only held back
    (``hold_unaudited``). A region carried from where its face has gone (``face`` None,
    not a head) was checked already: unblurred, it is not that face
    (:func:`p3m.video.anonymize._still_there`)."""
    width, height = shape[1], shape[0]
    weak = [(clipped(f.box, width, height), f"a weak {f.source} detection ({f.score:.2f})")
            for f in [*faces, *(r.face for r in regions if r.face is not None)] if not f.audited]
    return weak + [(clipped(r.box, width, height), "the head of a person whose face was not found")
                   for r in regions if r.head]


def _within_margin(audit: AuditResult) -> bool:
    """A face (at any of its views) or a reference photo stays within the identity margin."""
    return audit.nearest() < MATCH_THRESHOLD + IDENTITY_MARGIN


def _no_face(rgb, alpha, options: FaceBlurOptions, hand_mask, scale: float, kwargs) -> AnonymizeResult:
    if hand_mask is not None:
        if not isinstance(hand_mask, np.ndarray):  # a file: read only now that it is needed
            hand_mask = load_image(hand_mask)[..., 0]
        drawn = blur_faces(rgb, alpha, sigma_scale=scale, facemask=hand_mask, **kwargs)
        return AnonymizeResult(Outcome.HAND_MASK, drawn.image, drawn.mask, drawn.faces, [], None, scale)
    nothing = np.zeros(rgb.shape[:2], np.uint8)
    if options.allow_no_face:
        return AnonymizeResult(Outcome.NO_FACE_COPIED, rgb, nothing)
    return AnonymizeResult(Outcome.NO_FACE, None, nothing)
