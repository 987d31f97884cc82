"""The face blur of P3M-10k, once and unchecked.

1. Faces from three detector families (dlib, BlazeFace and MTCNN,
   :mod:`p3m.privacy.faces`), with dlib's 68 landmarks where they fit.
2. The face mask: the convex hull of the jaw/cheek contour (points 0-16) and of the
   eyebrows (17-26), the brows lifted by ``forehead`` x the face height so the mask
   reaches above them. A face without dlib's landmarks (profile, rotated, very small)
   gets the hull of its 468-point face mesh, or a padded ellipse around its box.
3. Transition pixels of the alpha matte (0 < alpha < 1, optionally dilated) are taken
   out of the mask, so hair over the face and the cheek edge keep their exact values.
4. A Gaussian blur, sigma = ``sigma_scale`` x face width, blended with a feathered
   weight that stays inside the mask: no pixel outside the mask changes.

:func:`p3m.privacy.anonymize.anonymize` runs this, checks the result and fails closed;
call that, not this, to anonymize.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from p3m.errors import ImageError
from p3m.io.images import load_image, matte_to_float
from p3m.options import FaceBlurOptions
from p3m.privacy.faces import Face, detect_faces, turn_box, turn_points, turned_shape

DEFAULT_FOREHEAD = FaceBlurOptions.default("forehead")


@dataclass
class FaceDetail:
    box: tuple[int, int, int, int]
    width: int
    sigma: float
    mask_pixels: int
    score: float | None = None  # detector confidence; None for a hand-drawn mask


@dataclass
class BlurResult:
    """Faces blurred once, unchecked (:func:`p3m.privacy.anonymize.anonymize` checks)."""

    image: np.ndarray | None        # the blurred copy (None when no face was found)
    mask: np.ndarray                # uint8 0/255: the pixels that changed (P3M-10k's facemask)
    faces: list[FaceDetail] = field(default_factory=list)
    detected: list[Face] = field(default_factory=list)


def face_region(landmarks: np.ndarray, shape: tuple[int, int], forehead: float = DEFAULT_FOREHEAD) -> np.ndarray:
    """Boolean mask of one face: hull of the jaw contour and the (lifted) eyebrows."""
    jaw, brows = landmarks[0:17].astype(np.float64), landmarks[17:27].astype(np.float64)
    height = jaw[:, 1].max() - brows[:, 1].min()
    lifted = brows.copy()
    lifted[:, 1] -= forehead * height
    hull = cv2.convexHull(np.round(np.concatenate([jaw, brows, lifted])).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [hull], 1)
    return mask.astype(bool)


#: A face-mesh outline is widened by this fraction of the face width.
MESH_MARGIN = 0.05
#: A face with neither landmarks nor mesh: an ellipse this many times its box, raised
#: by ELLIPSE_RAISE of its height to take in the forehead.
ELLIPSE_PAD = 1.3
ELLIPSE_RAISE = 0.1


#: The head around a face: an ellipse this many times its box, raised by HEAD_RAISE of
#: its height (hair, ears, jaw line: what still identifies a profile or a tiny face).
HEAD_PAD = 1.6
HEAD_RAISE = 0.2
#: Faces narrower than this (pixels) get their head covered: their outline is unreliable.
SMALL_FACE = 40


def face_mask(face: Face, shape: tuple[int, int], forehead: float = DEFAULT_FOREHEAD, *,
              head: bool = False) -> np.ndarray:
    """Boolean mask of one detected face: from dlib's landmarks, else the face mesh, else an
    ellipse; with the whole head (:func:`head_mask`) when ``head`` or the face's
    ``whole_head``, and always for a face whose outline is not its own landmarks (a
    profile, a three-quarter view) or that is under ``SMALL_FACE`` px; only inside the
    picture for a face cut by the edge of a picture inside plain borders.

    A face found in the photo turned (``face.rotation`` quarter turns) gets its landmark
    region drawn in that turned frame, where it is upright, so the forehead lift goes up
    the face, not up the photo.
    """
    mask = _outline_mask(face, shape, forehead)
    if head or face.whole_head or face.landmarks is None or face.width < SMALL_FACE:
        mask |= head_mask(face, shape)
    if face.picture is not None:  # cut by a picture's edge: the plain border beyond holds nothing of it
        left, top, right, bottom = face.picture
        inside = np.zeros_like(mask)
        inside[top:bottom, left:right] = True
        mask &= inside
    return mask


def head_mask(face: Face, shape: tuple[int, int]) -> np.ndarray:
    """The head around ``face``: an ellipse ``HEAD_PAD`` times its box, raised up the face
    (in the frame it was found in, so up the face of a turned photo too)."""
    turned = turned_shape(shape, face.rotation)
    left, top, right, bottom = turn_box(face.box, face.rotation, shape)
    mask = np.zeros(turned, np.uint8)
    centre = (round((left + right) / 2), round((top + bottom) / 2 - HEAD_RAISE * (bottom - top)))
    axes = (max(1, round(HEAD_PAD * (right - left) / 2)), max(1, round(HEAD_PAD * (bottom - top) / 2)))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return np.ascontiguousarray(np.rot90(mask, -face.rotation)).astype(bool)


def _outline_mask(face: Face, shape: tuple[int, int], forehead: float) -> np.ndarray:
    if face.landmarks is not None:
        if face.rotation:
            upright = np.round(turn_points(face.landmarks, face.rotation, shape)).astype(np.int32)
            region = face_region(upright, turned_shape(shape, face.rotation), forehead)
            return np.ascontiguousarray(np.rot90(region, -face.rotation))
        return face_region(face.landmarks, shape, forehead)
    mask = np.zeros(shape, np.uint8)
    if face.mesh is not None:
        cv2.fillPoly(mask, [cv2.convexHull(np.round(face.mesh).astype(np.int32))], 1)
        return dilate(mask, max(1, round(MESH_MARGIN * face.width)))
    left, top, right, bottom = face.box
    centre = (round((left + right) / 2), round((top + bottom) / 2 - ELLIPSE_RAISE * (bottom - top)))
    axes = (round(ELLIPSE_PAD * (right - left) / 2), round(ELLIPSE_PAD * (bottom - top) / 2))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask.astype(bool)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by a disc of ``radius`` pixels (as booleans; unchanged for radius 0)."""
    if radius <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def transition_pixels(alpha: np.ndarray, dilation: int = 0) -> np.ndarray:
    """0 < alpha < 1, optionally dilated by ``dilation`` pixels."""
    return dilate((alpha > 0) & (alpha < 1), dilation)


def _as_alpha(alpha, shape) -> np.ndarray:
    alpha = matte_to_float(alpha)
    if alpha.shape != shape:
        raise ImageError(f"alpha matte is {alpha.shape[1]}x{alpha.shape[0]}, image is {shape[1]}x{shape[0]}")
    return alpha.astype(np.float32)


def _blend(image: np.ndarray, mask: np.ndarray, sigma: float, keep: np.ndarray | None) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    feather = max(1.0, sigma / 4)
    weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=feather, sigmaY=feather)
    weight = np.clip(weight * 2, 0, 1) * mask  # soft inside the edge, zero outside the mask
    if keep is not None:
        weight[keep] = 0
    out = image.astype(np.float32) * (1 - weight[..., None]) + blurred.astype(np.float32) * weight[..., None]
    out = np.round(out).astype(np.uint8)
    out[weight == 0] = image[weight == 0]
    return out


def blur_inside(image: np.ndarray, mask: np.ndarray, sigma: float, keep: np.ndarray | None = None) -> np.ndarray:
    """Gaussian-blur ``image`` inside ``mask`` with a feathered weight that never leaves
    the mask; pixels in ``keep`` are left exactly as they are.

    Only the mask's bounding box, padded by the kernels' reach (OpenCV's kernels span
    4 sigma, 3 for uint8), is filtered: the same values as blurring the whole image,
    at a fraction of the cost for a face in a large photo.
    """
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return image.copy()
    pad = int(np.ceil(4 * sigma)) + 2
    top, bottom = max(0, rows[0] - pad), min(image.shape[0], rows[-1] + 1 + pad)
    left, right = max(0, cols[0] - pad), min(image.shape[1], cols[-1] + 1 + pad)
    box = (slice(top, bottom), slice(left, right))
    out = image.copy()
    out[box] = _blend(image[box], mask[box], sigma, None if keep is None else keep[box])
    return out


@dataclass
class Region:
    """A region to blur that is not a face found in this image: a face carried from a
    neighbouring video frame, say. ``width`` sets its blur as a face's width does; a
    carried face is identity-audited in this image at its landmarks and boxes there."""

    mask: np.ndarray                 # bool H x W
    width: int
    box: tuple[int, int, int, int]   # (left, top, right, bottom), for overlap tests
    face: Face | None = None         # the face it was carried from: identity-audited here too
    head: bool = False               # a person's head from the people search: no face in it to audit


def face_region_of(face: Face, shape: tuple[int, int], forehead: float = DEFAULT_FOREHEAD, grow: int = 0) -> Region:
    """The Region of a detected face, grown by ``grow`` pixels (for movement)."""
    mask = dilate(face_mask(face, shape, forehead), grow)
    left, top, right, bottom = face.box
    return Region(mask, max(face.width, 1), (left - grow, top - grow, right + grow, bottom + grow), face)


def blur_faces(image, alpha=None, *, sigma_scale: float, forehead: float = DEFAULT_FOREHEAD, detector: str = "auto",
               protect_dilation: int = 0, facemask: np.ndarray | None = None,
               faces: list[Face] | None = None, regions: list[Region] = (), head: bool = False) -> BlurResult:
    """Blur every face of ``image`` (path, PIL or array) once, and the extra ``regions``,
    keeping alpha's transition pixels; no check of the result (that is
    :func:`p3m.privacy.anonymize.anonymize`). ``head``: blur each face's whole head.

    ``facemask`` (H x W, non-zero = face) replaces detection, as the authors' hand-drawn
    masks did; without faces, regions and mask there is no image.
    """
    rgb = load_image(image)
    shape = rgb.shape[:2]
    scale = sigma_scale
    keep = transition_pixels(_as_alpha(alpha, shape), protect_dilation) if alpha is not None else None
    out = rgb.copy()
    changed = np.zeros(shape, bool)
    details = []
    if facemask is not None:
        region = np.asarray(facemask)
        region = (region[..., 0] if region.ndim == 3 else region) > 0
        if region.shape != shape:
            raise ImageError(f"face mask is {region.shape[1]}x{region.shape[0]}, image is {shape[1]}x{shape[0]}")
        ys, xs = np.nonzero(region)
        width = int(xs.max() - xs.min() + 1) if xs.size else 0
        if width:
            out = blur_inside(out, region, scale * width, keep)
            changed |= (out != rgb).any(axis=2)
            details.append(FaceDetail((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                                      width, scale * width, int(region.sum())))
        detected = []
    else:
        detected = faces if faces is not None else detect_faces(rgb, detector=detector)
        if not detected and not regions:
            return BlurResult(None, np.zeros(shape, np.uint8))
        for face in detected:
            region = face_mask(face, shape, forehead, head=head)
            sigma = scale * max(face.width, 1)
            before = out
            out = blur_inside(out, region, sigma, keep)
            changed |= (out != before).any(axis=2)
            details.append(FaceDetail(face.box, face.width, sigma, int(region.sum()), face.score))
        for extra in regions:
            before = out
            out = blur_inside(out, extra.mask, scale * extra.width, keep)
            changed |= (out != before).any(axis=2)
    return BlurResult(out, (changed * 255).astype(np.uint8), details, detected)
