"""Faces in an image, found by three detector families: dlib (HOG, or its CNN),
MediaPipe's BlazeFace and MTCNN; their landmarks; dlib's identity descriptors.

- The union of the families, merged by overlap: a face both find keeps dlib's box and
  68 landmarks (the P3M-10k mask) and counts as confirmed.
- A face only BlazeFace finds, with a score under ``CONFIDENT["blazeface"]``, is kept
  only if the face mesh's face-presence classifier agrees (a second opinion that rejects
  BlazeFace's weak hits on hands and badges).
- A face only BlazeFace finds gets dlib's 68 landmarks when they fit (the face is at
  least ``MIN_LANDMARK_WIDTH`` wide, its eyes lie within ``MAX_LANDMARK_ROLL`` of level,
  and dlib's eyes land on BlazeFace's); otherwise (profile, rotated, very small) its
  outline comes from the 468-point face mesh, or, if the mesh does not see a face, from
  a padded ellipse around its box (:func:`p3m.privacy.anonymize.face_mask`).
- When nothing is found upright, or only weak detections (none ``confident``), or a face
  BlazeFace finds and dlib does not, or a face on its side, the image is searched again
  turned by 90, 180 and 270 degrees; of two detections of one face the
  surer is kept, with the turn it was found at (``rotation``), for the audit.
- Faces cut by the frame (half a face at the border, a forehead cut off) are what both
  families miss most. The image is searched again with a mirrored border of
  ``EDGE_PAD`` of its short side (a mirrored border completes a cut face enough to be
  found; a constant one does not); a face found there that crosses the frame's edge is
  kept when at least 30% of it lies in the frame, unless it is the mirror image of a
  face inside the frame (its box reflected back across the edge is that face). A
  picture inside plain borders (a letterbox, a photo on a canvas) is searched so too,
  on its own (:mod:`p3m.privacy.borders`): its edge is where its faces are cut.

- MTCNN (:mod:`p3m.privacy.mtcnn`) searches last, once, upright, on the image with its
  mirrored border: a face it finds that no other family found (half hidden behind
  someone, 15-30 px, cut by the frame) is kept as its own (``source="mtcnn"``), with
  no landmarks, so it is covered with its head; a weak one (under
  ``CONFIDENT["mtcnn"]``) is identity-audited only if the face mesh's classifier agrees
  it is a face. Its mirror images, faces with less than ``MIN_IN_FRAME`` in the frame
  and boxes across a corner are dropped.

``detector="auto"`` is all three families when the face models are installed (``p3m
weights fetch faces``) and dlib's HOG alone otherwise, with reduced recall
(:func:`detector_note` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from p3m.errors import choice_error
from p3m.options import DETECTORS  # noqa: F401  (defined with the options; re-exported)
from p3m.privacy import dlib_models
from p3m.privacy.blazeface import box_iou

#: dlib's landmarks are used for a BlazeFace-only face at least this wide (pixels) ...
MIN_LANDMARK_WIDTH = 40
#: ... whose eye line is within this many degrees of level ...
MAX_LANDMARK_ROLL = 20.0
#: ... and whose dlib eye centres are within this fraction of its width of BlazeFace's.
MAX_EYE_OFFSET = 0.2
#: A detection this confident is a face, not a face-like pattern: its identity is audited.
CONFIDENT = {"hog": 0.5, "cnn": 0.5, "blazeface": 0.75, "mtcnn": 0.9}
#: The families dlib runs.
DLIB_FAMILIES = ("hog", "cnn")
#: Two detections whose IoU is at least this, or one's centre inside the other, are one face.
SAME_FACE_IOU = 0.3


@dataclass
class Face:
    box: tuple[int, int, int, int]         # left, top, right, bottom
    landmarks: np.ndarray | None           # 68 x 2 (x, y), the iBUG 300-W scheme; None if dlib's do not fit
    score: float = 0.0                     # its family's confidence (HOG margin, CNN or BlazeFace probability)
    source: str = "hog"                    # the family that found it: hog, cnn, blazeface or mtcnn
    confirmed: bool = False                # found by dlib and BlazeFace
    mesh: np.ndarray | None = None         # 468 x 2 face-mesh points, when the outline comes from them
    keypoints: np.ndarray | None = field(default=None, repr=False)  # BlazeFace's 6 keypoints
    rotation: int = 0                      # quarter turns (np.rot90) of the image it was found in
    padding: int = 0                       # the mirrored border of the image it was found in (a cut face)
    picture: tuple | None = None           # the picture inside plain borders whose edge cuts it (its box there)
    whole_head: bool = False               # its whole head is covered (a person without a found face beside it)
    _shape: object = field(default=None, repr=False)  # dlib's full_object_detection (in the turned image)

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def confident(self) -> bool:
        """A face for sure (dlib and BlazeFace, or a high score): its identity descriptor means something."""
        return self.confirmed or self.score >= CONFIDENT[self.source]

    @property
    def audited(self) -> bool:
        """Its identity is audited: a face for sure (:attr:`confident`), or one BlazeFace
        or MTCNN found that the face mesh's classifier agrees is a face (weak BlazeFace
        detections are kept only then; weak MTCNN ones carry the mesh only then). A weak
        dlib detection that BlazeFace does not confirm (a badge, a pattern) or a weak
        MTCNN box the mesh does not see as a face (a jacket, a hand) is blurred but not
        audited: its blurred self stays "close" to it as a non-face does, which would
        hold back photos for nothing."""
        return self.confident or self.source == "blazeface" or (self.source == "mtcnn" and self.mesh is not None)

    @property
    def has_descriptor(self) -> bool:
        return self._shape is not None


def resolve_detector(detector: str) -> str:
    """``auto`` becomes ``hog+blazeface+mtcnn`` with the face models installed, else ``hog``."""
    if detector not in DETECTORS:
        raise choice_error("face detector", detector, DETECTORS)
    if detector != "auto":
        return detector
    from p3m.weights.default_model import face_models_installed

    return "hog+blazeface+mtcnn" if face_models_installed() else "hog"


def after_blur(detector: str) -> str:
    """The families that search an image again after blurring (new faces, re-detection):
    all but MTCNN, which runs once, on the original, for recall there. Run on every
    round of blurring as well, it made the gallery set's anonymisation take 1.35x the
    time and changed no outcome (docs/privacy.md)."""
    return "+".join(family for family in resolve_detector(detector).split("+") if family != "mtcnn")


def detector_note(detector: str) -> str | None:
    """A warning line when ``detector`` runs without the second family."""
    if "blazeface" in resolve_detector(detector):
        return None
    from p3m.weights.default_model import face_models_installed

    if face_models_installed():  # dlib alone, as asked
        return (f"detector {detector}: dlib alone, so recall is reduced (profile, rotated and small faces are "
                "missed); the default, auto, adds BlazeFace and MTCNN")
    return ("face models not installed: detecting with dlib alone, so recall is reduced (profile, rotated and "
            "small faces are missed); run: p3m weights fetch faces")


def detect_faces(image: np.ndarray, *, detector: str = "auto", upsample: int = 1,
                 rotations: Sequence[int] | None = None, edges: bool = True) -> list[Face]:
    """Faces of an RGB uint8 image. ``rotations``: the quarter turns to search (default:
    upright, and the other three only when nothing is found upright); ``edges``: search
    for faces cut by the frame too (upright, in a mirrored border)."""
    families = resolve_detector(detector).split("+")
    if min(image.shape[:2]) < MIN_SEARCHED_SIDE:
        return []  # no face fits (and dlib raises on a one-pixel-high image)
    faces: list[Face] = []
    for turns in rotations if rotations is not None else (0,):
        faces = _merge(faces, _detect_turned(image, turns % 4, families, upsample))
    if rotations is None and _photo_may_be_turned(faces, families):
        for turns in (1, 2, 3):
            faces = _merge(faces, _detect_turned(image, turns, families, upsample))
    if "blazeface" in families:  # at each turn a small face was found at
        for turns in sorted({face.rotation for face in faces if face.width < SMALL_FACE_HINT}):
            faces = _merge(faces, _detect_turned(image, turns, ["blazeface"], upsample, tile_size=FINE_TILE,
                                                 whole=False))
    if edges:
        faces = _merge(faces, _edge_faces(image, families, upsample, faces))
        faces = _merge(faces, _picture_edge_faces(image, families, upsample, faces))
    if "mtcnn" in families:
        faces += _mtcnn_faces(image, faces, edges)
    return faces


def _mtcnn_faces(image: np.ndarray, known: list[Face], edges: bool) -> list[Face]:
    """Faces MTCNN finds in ``image`` (with its mirrored border when ``edges``) that are not
    among ``known``, nor mirror images of faces inside the frame, nor mostly outside it."""
    from p3m.privacy.mtcnn import detect_mtcnn

    height, width = image.shape[:2]
    pad = _edge_pad(height, width) if edges else 0
    searched = _mirrored(image, pad) if pad else image
    found = []  # (face, its detection on the searched image)
    for detection in detect_mtcnn(searched):
        box = tuple(int(v) - pad for v in np.round(detection.box))
        face = Face(box, None, detection.score, "mtcnn")
        if clipped(box, width, height) != box:
            face.padding = pad
        found.append((face, detection))
    inside = [face.box for face in [*known, *(f for f, _ in found)] if clipped(face.box, width, height) == face.box]
    kept = []
    for face, detection in sorted(found, key=lambda pair: -pair[0].score):
        visible = clipped(face.box, width, height)
        if _area(visible) < MIN_IN_FRAME * _area(face.box) or _at_corner(face.box, width, height):
            continue  # mostly in the mirrored border, or where it is mirrored both ways
        if face.padding and any(same_face(_reflected(face.box, width, height), other) for other in inside):
            continue  # the mirror image of a face inside the frame
        if any(same_face(visible, other.box) for other in [*known, *kept]):
            continue  # found already
        if not face.confident:  # a weak one is a face for the audit if the mesh's face classifier agrees
            _mesh_if_face(face, searched, detection, pad)
        kept.append(face)
    return kept


def _mesh_if_face(face: Face, searched: np.ndarray, detection, pad: int) -> None:
    """Give a weak MTCNN face the face mesh's outline (its points on the photo) when the
    mesh's face classifier agrees it is a face; it is then identity-audited (:attr:`Face.audited`)."""
    from p3m.privacy.blazeface import Detection

    points = _agreeing_mesh(searched, Detection(detection.box, detection.points, detection.score))
    if points is not None:
        face.mesh = points - np.float32(pad)


def _agreeing_mesh(image: np.ndarray, detection) -> np.ndarray | None:
    """The face mesh's 468 points for ``detection`` (a BlazeFace-style box and keypoints) in
    ``image``, when the mesh's own face classifier agrees it is a face; else None: the
    second opinion weak detections of BlazeFace and MTCNN are judged by."""
    from p3m.privacy.face_mesh import MIN_PRESENCE, face_mesh

    mesh = face_mesh()(image, detection)
    return mesh.points if mesh.presence >= MIN_PRESENCE else None


#: A face narrower than SMALL_FACE_HINT (pixels) hints at smaller ones near it (a group
#: far off, a crowd, people in the background): the photo is then searched again (at the
#: turn that face was found at) in tiles of FINE_TILE px, where the full-range network
#: sees faces of 10-64 px at its own scale (its usual tiles show them at half that; a
#: tile keeps faces under a third of its side, the hint). Photos without small faces
#: are not: there the fine tiles would only add false detections and time.
FINE_TILE = 192
SMALL_FACE_HINT = FINE_TILE // 3


#: The mirrored border searched for faces cut by the frame, as a fraction of the short side.
EDGE_PAD = 0.3
#: A box with less than this share of it in the frame shows too little of a face: a face
#: found in the mirrored border (unless it is the mirror image of a face inside the
#: frame) and an attacker's box clipped by the frame need this much in it.
MIN_IN_FRAME = 0.3


def _edge_faces(image: np.ndarray, families: list[str], upsample: int, known: list[Face] = ()) -> list[Face]:
    """Faces that cross the frame's edge, found in ``image`` with a mirrored border;
    ``known``: faces found in the frame already (their mirror images are dropped)."""

    height, width = image.shape[:2]
    pad = _edge_pad(height, width)
    padded = _mirrored(image, pad)
    if "blazeface" in families:  # it finds the cut faces (dlib's landmarks fitted where they fit) at a third of HOG's cost
        found, _ = _blazeface_faces(padded, [], ring=(pad, pad, pad + width, pad + height))
    else:
        found = [face for family in families if family in DLIB_FAMILIES for face in _dlib_faces(padded, family, upsample)]
    for face in found:
        _shift(face, -pad)
        face.padding = pad
    inside = [face.box for face in [*known, *found] if clipped(face.box, width, height) == face.box]
    kept = []
    for face in found:
        box = face.box
        visible = clipped(box, width, height)
        if visible == box or _area(visible) < MIN_IN_FRAME * _area(box):
            continue  # inside the frame (the plain search's to find), or too little of it in the frame
        if any(same_face(_reflected(box, width, height), other) for other in inside):
            continue  # the mirror image of a face inside the frame
        kept.append(face)
    return kept


def _picture_edge_faces(image: np.ndarray, families: list[str], upsample: int, known: list[Face]) -> list[Face]:
    """Faces cut by the edge of a picture inside plain borders (:func:`p3m.privacy.borders.picture_box`:
    a letterbox, a photo on a canvas): the edge search on the picture alone, kept where they
    cross a side that meets a border. Found in a mirror of the picture, not of the frame,
    they keep no landmarks (they are covered with their heads, and audited at landmarks
    fitted in their box on the frame)."""
    from p3m.privacy.borders import picture_box

    found = picture_box(image)
    if found is None:
        return []
    (left, top, right, bottom), sides = found
    if min(right - left, bottom - top) < MIN_SEARCHED_SIDE:
        return []
    picture = np.ascontiguousarray(image[top:bottom, left:right])
    inside = [Face((f.box[0] - left, f.box[1] - top, f.box[2] - left, f.box[3] - top), None) for f in known]
    height, width = image.shape[:2]
    kept = []
    for face in _edge_faces(picture, families, upsample, inside):
        box = face.box
        if not ((sides[0] and box[0] < 0) or (sides[1] and box[1] < 0) or (sides[2] and box[2] > right - left)
                or (sides[3] and box[3] > bottom - top)):
            continue  # cut by the frame's own edge: the frame's edge search has it
        _shift(face, left, top)
        face.box, face.padding, face.landmarks, face._shape = clipped(face.box, width, height), 0, None, None
        face.picture = (left, top, right, bottom)
        kept.append(face)
    return kept


def _edge_pad(height: int, width: int) -> int:
    """The mirrored border searched for faces cut by the frame: ``EDGE_PAD`` of the short side."""
    return max(1, round(EDGE_PAD * min(height, width)))


def _at_corner(box: tuple, width: int, height: int) -> bool:
    """``box`` crosses a side edge and the top or bottom edge: at a corner the border is
    mirrored both ways, and a patch mirrored four-fold has a face's symmetry by
    construction (MTCNN scored the astronaut's top-left corner 0.98)."""
    return (box[0] < 0 or box[2] > width) and (box[1] < 0 or box[3] > height)


def clipped(box: tuple, width: int, height: int) -> tuple:
    """A (left, top, right, bottom) box cut to a ``width`` x ``height`` frame."""
    return (max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3]))


def _reflected(box: tuple, width: int, height: int) -> tuple:
    """The pixels a (left, top, right, bottom) box (right and bottom exclusive) of the
    mirrored border copies, for each edge its centre lies beyond (``BORDER_REFLECT_101``:
    pixel -k copies k, pixel width - 1 + k copies width - 1 - k)."""
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    if cx < 0:
        left, right = 1 - right, 1 - left
    elif cx > width:
        left, right = 2 * width - 1 - right, 2 * width - 1 - left
    if cy < 0:
        top, bottom = 1 - bottom, 1 - top
    elif cy > height:
        top, bottom = 2 * height - 1 - bottom, 2 * height - 1 - top
    return (left, top, right, bottom)


def _shift(face: Face, dx: int, dy: int | None = None) -> None:
    """Move a face's box and points by ``dx`` pixels across and ``dy`` (default: ``dx``) down."""
    dy = dx if dy is None else dy
    left, top, right, bottom = face.box
    face.box = (left + dx, top + dy, right + dx, bottom + dy)
    for name in ("landmarks", "mesh", "keypoints"):
        points = getattr(face, name)
        if points is not None:
            setattr(face, name, points + np.asarray([dx, dy], points.dtype))


#: Images with a side shorter than this hold no face to find.
MIN_SEARCHED_SIDE = 8
#: A face whose eye line is further than this from level hints that the photo is turned.
TURNED_ROLL = 45.0


def _photo_may_be_turned(faces: list[Face], families: list[str]) -> bool:
    """Nothing found for sure upright; or a face lying on its side; or, with both
    families, a face BlazeFace finds that dlib does not (dlib finds upright frontal
    faces, so that face is turned, tilted, in profile or tiny, and its photo may be
    turned: BlazeFace finds some faces on their side, with a wrong eye line)."""
    if not any(face.confident for face in faces):
        return True
    if any(face.keypoints is not None and abs(_roll(face.keypoints)) > TURNED_ROLL for face in faces):
        return True
    return len(families) > 1 and any(face.source == "blazeface" for face in faces)


def _roll(keypoints: np.ndarray) -> float:
    """Degrees of the eye line from level (BlazeFace keypoints: the subject's right eye first)."""
    eyes = keypoints[:2]
    return float(np.degrees(np.arctan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0])))


def face_descriptor(image: np.ndarray, face: Face, shape=None) -> np.ndarray:
    """dlib's 128-d identity descriptor (same person: distance below about 0.6), at
    ``shape`` (default: the face's own landmarks, see :func:`identity_shape`)."""
    shape = shape if shape is not None else face._shape
    if shape is None:
        raise ValueError("this face has no dlib landmarks, so no descriptor")
    return descriptor_at(image, Alignment(face.rotation, face.padding, shape))


#: Besides its own landmarks, a face's identity is audited at dlib's landmarks fitted in
#: these boxes, on the photo as published (no mirrored border): (scale of the face's box,
#: shift down by a fraction of its height). An attacker's own detector frames a face
#: differently from ours, and a blurred profile or cut face that is far from itself at our
#: landmarks can be close at theirs (measured on the gallery set: 0.70 at ours, 0.37 in a
#: box 1.2x as large and lower).
ATTACKER_BOXES = ((1.0, 0.0), (1.25, 0.1))
#: Such a box counts when at least MIN_IN_FRAME of it lies in the frame (a face cut down
#: the middle is framed by an attacker's detector there, and so is a tiny face near the
#: edge, or the eyes and forehead of a face cut at the chin) and no side of it in the
#: frame is under MIN_VIEW_SIDE pixels, or half the box's side for a box under twice
#: that (too few rows or columns for landmarks). Less in the frame is no face to an
#: attacker's detector, nor a false detection in the mirrored border.
MIN_VIEW_SIDE = 8


@dataclass(frozen=True)
class Alignment:
    """Where an identity descriptor is taken: dlib's landmarks (``shape``) on the image
    turned by ``rotation`` quarter turns, with a mirrored border of ``padding``."""

    rotation: int
    padding: int
    shape: object


def alignments(image: np.ndarray, face: Face) -> list[Alignment]:
    """Every alignment ``face``'s identity is audited at: its own landmarks
    (:func:`identity_shape`), then landmarks fitted in each of ``ATTACKER_BOXES`` clipped
    to the frame (the box a detector that does not mirror the border would give), minus
    the one that repeats its own (a dlib face inside the frame)."""
    import dlib

    out = [own_alignment(image, face)]
    turned = _frame(image, face.rotation, 0)
    height, width = turned.shape[:2]
    left, top, right, bottom = turn_box(face.box, face.rotation, image.shape[:2])
    for scale, drop in ATTACKER_BOXES:
        if scale == 1.0 and drop == 0.0 and not face.padding and face.picture is None:
            continue  # its own box on the frame as it is: the first view has it already
        cx, cy = (left + right) / 2, (top + bottom) / 2 + drop * (bottom - top)
        half_w, half_h = scale * (right - left) / 2, scale * (bottom - top) / 2
        whole = (round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h))
        box = clipped(whole, width, height)
        if face.picture is not None:  # framed inside the picture (found upright only: rotation 0, frame axes)
            box = (max(box[0], face.picture[0]), max(box[1], face.picture[1]), min(box[2], face.picture[2]),
                   min(box[3], face.picture[3]))
        floor = min(MIN_VIEW_SIDE, (whole[2] - whole[0]) / 2, (whole[3] - whole[1]) / 2)  # a tiny box: half
        if min(box[2] - box[0], box[3] - box[1]) < floor or _area(box) < MIN_IN_FRAME * _area(whole):
            continue  # too little of a face in the frame for landmarks to mean anything
        out.append(Alignment(face.rotation, 0, dlib_models.shape_predictor()(turned, dlib.rectangle(*box))))
    return out


def own_alignment(image: np.ndarray, face: Face) -> Alignment:
    """``face``'s own landmarks (:func:`identity_shape`), where it was found."""
    return Alignment(face.rotation, face.padding, identity_shape(image, face))


def _area(box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def descriptor_at(image: np.ndarray, alignment: Alignment) -> np.ndarray:
    """dlib's 128-d identity descriptor of ``image`` at ``alignment``."""
    frame = _frame(image, alignment.rotation, alignment.padding)
    return np.array(dlib_models.face_recognizer().compute_face_descriptor(frame, alignment.shape))


def identity_shape(image: np.ndarray, face: Face):
    """dlib's 68 landmarks for ``face``'s identity, as an attacker would take them: its
    own where dlib found or fitted them, else fitted in its box (a BlazeFace-only face,
    a profile, a tiny or weak one), on ``image`` as it was found (turned, with a border)."""
    if face._shape is not None:
        return face._shape
    import dlib

    frame = _search_frame(image, face)
    left, top, right, bottom = turn_box(face.box, face.rotation, image.shape[:2])
    rect = dlib.rectangle(*(int(v) + face.padding for v in (left, top, right, bottom)))
    return dlib_models.shape_predictor()(frame, rect)


def _search_frame(image: np.ndarray, face: Face) -> np.ndarray:
    """``image`` as the face was found in it: turned by its rotation, with its mirrored border."""
    return _frame(image, face.rotation, face.padding)


def _frame(image: np.ndarray, rotation: int, padding: int) -> np.ndarray:
    """``image`` turned by ``rotation`` quarter turns, with a mirrored border of ``padding``
    (contiguous: dlib refuses strided views)."""
    frame = np.ascontiguousarray(np.rot90(image, rotation))
    return _mirrored(frame, padding) if padding else frame


def _mirrored(image: np.ndarray, pad: int) -> np.ndarray:
    """``image`` with a mirrored border of ``pad`` pixels (where faces cut by the frame are found)."""
    import cv2

    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)


def same_face(a: tuple, b: tuple) -> bool:
    """Two (left, top, right, bottom) boxes are one face: IoU >= SAME_FACE_IOU, or one's centre inside the other."""
    def inside(point, box):
        return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]

    def centre(box):
        return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)

    iou = box_iou(np.asarray(a, np.float64), np.asarray([b], np.float64))[0]
    return iou >= SAME_FACE_IOU or inside(centre(a), b) or inside(centre(b), a)


def _rank(face: Face) -> tuple:
    return (face.confirmed, face.confident, face.landmarks is not None, face.score)


def _merge(kept: list[Face], new: list[Face]) -> list[Face]:
    """``kept`` and ``new`` as one list; of two detections of one face, the surer stays."""
    out = list(kept)
    for face in new:
        same = [i for i, k in enumerate(out) if same_face(face.box, k.box)]
        if not same:
            out.append(face)
        elif all(_rank(face) > _rank(out[i]) for i in same):
            out = [k for i, k in enumerate(out) if i not in same] + [face]
    return out


def _dlib_faces(image: np.ndarray, kind: str, upsample: int) -> list[Face]:
    if kind == "hog":
        rects, scores, _ = dlib_models.detector("hog").run(image, upsample, 0.0)
    else:
        found = dlib_models.detector(kind)(image, upsample)
        rects, scores = [d.rect for d in found], [d.confidence for d in found]
    faces = []
    for rect, score in zip(rects, scores):
        shape = dlib_models.shape_predictor()(image, rect)
        faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), _points(shape), float(score), kind,
                          _shape=shape))
    return faces


def _points(shape) -> np.ndarray:
    """dlib's landmarks as an N x 2 array of (x, y)."""
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int32)


def _landmarks_fit(points: np.ndarray, keypoints: np.ndarray, width: float) -> bool:
    """dlib's 68 points agree with BlazeFace's eyes on a face wide and level enough."""
    eyes = keypoints[:2]
    if width < MIN_LANDMARK_WIDTH or abs(_roll(keypoints)) > MAX_LANDMARK_ROLL:
        return False
    dlib_eyes = np.array([points[36:42].mean(0), points[42:48].mean(0)])  # the subject's right eye first
    return bool(np.linalg.norm(dlib_eyes - eyes, axis=1).max() <= MAX_EYE_OFFSET * width)


def _blazeface_faces(image: np.ndarray, known: list[Face], ring: tuple | None = None,
                     **search) -> tuple[list[Face], set[int]]:
    """BlazeFace's faces not among ``known`` (dlib's), and the indices of the known ones it
    confirms; ``ring`` and ``search`` (``tile_size``, ``whole``): see
    :func:`p3m.privacy.blazeface.detect_blazeface`."""
    from p3m.privacy.blazeface import detect_blazeface

    height, width = image.shape[:2]
    new, confirmed = [], set()
    for detection in detect_blazeface(image, ring=ring, **search):
        whole = tuple(int(v) for v in np.round(detection.box))
        box = clipped(whole, width, height)
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        matches = [i for i, face in enumerate(known) if same_face(box, face.box)]
        if matches:
            confirmed.update(matches)
            for i in matches:
                known[i].keypoints = detection.keypoints
            continue
        if any(same_face(box, face.box) for face in new):
            continue  # a second, weaker box on a face already taken (whole image and tile passes)
        face = Face(box, None, float(detection.score), "blazeface", keypoints=detection.keypoints)
        mesh = None
        if not face.confident:  # a weak detection is a face only if the mesh's own face classifier agrees
            mesh = _agreeing_mesh(image, detection)
            if mesh is None:
                continue
        shape = _dlib_shape(image, detection.box)
        if shape is not None and _landmarks_fit(_points(shape), detection.keypoints, whole[2] - whole[0]):
            face.landmarks, face._shape = _points(shape), shape
        if face.landmarks is None:
            face.mesh = mesh if mesh is not None else _agreeing_mesh(image, detection)
        new.append(face)
    return new, confirmed


def _dlib_shape(image: np.ndarray, box: np.ndarray):
    """dlib's 68 landmarks inside ``box``, or None without dlib."""
    try:
        import dlib
    except ImportError:
        return None
    left, top, right, bottom = (int(round(v)) for v in box)
    return dlib_models.shape_predictor()(image, dlib.rectangle(left, top, right, bottom))


def _detect_turned(image: np.ndarray, turns: int, families: list[str], upsample: int, **search) -> list[Face]:
    """Faces of ``image`` turned by ``turns`` quarter turns, in ``image``'s coordinates;
    ``search``: BlazeFace's (:func:`p3m.privacy.blazeface.detect_blazeface`)."""
    turned = _frame(image, turns, 0)
    faces: list[Face] = []
    for family in families:
        if family in DLIB_FAMILIES:
            faces += _dlib_faces(turned, family, upsample)
    if "blazeface" in families:
        found, confirmed = _blazeface_faces(turned, faces, **search)
        for index in confirmed:
            faces[index].confirmed = True
        faces += found
    if turns:
        for face in faces:
            _unturn(face, turns, image.shape[:2])
    return faces


def turned_shape(shape: tuple[int, int], turns: int) -> tuple[int, int]:
    """(height, width) of ``np.rot90`` of an image of ``shape``."""
    return (shape[0], shape[1]) if turns % 2 == 0 else (shape[1], shape[0])


def turn_points(points: np.ndarray, turns: int, shape: tuple[int, int]) -> np.ndarray:
    """Points (x, y) of ``image`` (``shape``: its height, width) in the coordinates of ``np.rot90(image, turns)``."""
    points = np.asarray(points, dtype=np.float64)
    for step in range(turns % 4):  # one counter-clockwise quarter turn at a time: (x, y) -> (y, width - 1 - x)
        width = turned_shape(shape, step)[1]
        points = np.stack([points[:, 1], width - 1 - points[:, 0]], axis=1)
    return points


def unturn_points(points: np.ndarray, turns: int, shape: tuple[int, int]) -> np.ndarray:
    """Points (x, y) of ``np.rot90(image, turns)`` in the coordinates of ``image`` (``shape``: its height, width)."""
    return turn_points(points, -turns % 4, turned_shape(shape, turns))


def turn_box(box: tuple, turns: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A (left, top, right, bottom) box of an image of ``shape`` in ``np.rot90(image, turns)``."""
    left, top, right, bottom = box
    corners = turn_points(np.array([[left, top], [right - 1, bottom - 1]]), turns, shape)
    low, high = corners.min(0), corners.max(0)
    return (int(low[0]), int(low[1]), int(high[0]) + 1, int(high[1]) + 1)


def _unturn(face: Face, turns: int, shape: tuple[int, int]) -> None:
    face.box = turn_box(face.box, -turns % 4, turned_shape(shape, turns))
    if face.landmarks is not None:
        face.landmarks = np.round(unturn_points(face.landmarks, turns, shape)).astype(np.int32)
    if face.mesh is not None:
        face.mesh = unturn_points(face.mesh, turns, shape).astype(np.float32)
    if face.keypoints is not None:
        face.keypoints = unturn_points(face.keypoints, turns, shape).astype(np.float32)
    face.rotation = turns
