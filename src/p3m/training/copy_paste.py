"""P3M-CP at image level (IJCV 2023): a face from a normal portrait pasted over the
blurred face of a training sample, so that the network sees identifiable faces
without training on the private ones. Opt-in (``--copy-paste-faces DIR``).

1. Donor faces: each portrait of the folder whose most confident face (dlib HOG,
   68 landmarks) scores at least ``min_score``. Its region is the anonymizer's face
   region (jaw contour and lifted brows, :func:`p3m.privacy.anonymize.face_region`).
2. Alignment: a similarity transform maps the donor's region onto the sample's
   blurred region (``train/facemask``): the donor's eye line turned to the region's
   roll (from its principal axis), centroid onto centroid, scaled by the square root
   of the area ratio. The target's landmarks cannot be used: its face is blurred.
3. Colour: the donor pixels' Lab mean and spread are matched to the blurred region's,
   which keeps the skin tone and light of the original face.
4. Blend: a feathered weight inside donor region ∩ blurred region ∩ (alpha == 1), so
   no transition pixel and nothing outside the face changes. The foreground colours
   get the same paste, keeping alpha F + (1 - alpha) B = I where it held.

The feature-level variant of the paper is not implemented (docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from p3m.data.layout import images_by_stem
from p3m.errors import DatasetError
from p3m.io.images import read_image_file

#: detections below this HOG margin are not used as donors (their landmarks are unreliable)
MIN_SCORE = 0.5
#: a roll beyond this is not trusted from a region's shape
MAX_ROLL = np.deg2rad(30)


@dataclass(frozen=True)
class DonorFace:
    path: Path
    landmarks: np.ndarray  # 68 x 2 (x, y)


@dataclass
class FaceBank:
    """The donor faces of a folder of normal portraits (found once, when training starts)."""

    folder: Path
    faces: list[DonorFace] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_folder(cls, folder: str | Path, *, detector: str = "hog", min_score: float = MIN_SCORE) -> FaceBank:
        from p3m.privacy.faces import detect_faces

        bank = cls(Path(folder))
        if not bank.folder.is_dir():
            raise DatasetError(f"{folder}: no such folder of portraits for copy-paste")
        for path in images_by_stem(bank.folder).values():
            faces = [f for f in detect_faces(read_image_file(path), detector=detector, rotations=(0,))
                     if f.score >= min_score and f.landmarks is not None]  # a donor is pasted by its landmarks
            if faces:
                best = max(faces, key=lambda f: f.score)
                bank.faces.append(DonorFace(path, best.landmarks.astype(np.float64)))
            else:
                bank.skipped.append((str(path), "no confidently detected face"))
        if not bank.faces:
            raise DatasetError(f"{folder}: no portrait with a confidently detected face for copy-paste")
        return bank


def _region_pose(mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centroid (x, y), area and roll (radians, eye-line angle) of a face region."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    centre = np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])
    axis = 0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"])  # the major axis, from +x
    roll = axis - np.sign(axis) * np.pi / 2 if abs(axis) > np.pi / 4 else axis  # a face's major axis is vertical
    return centre, float(m["m00"]), float(np.clip(roll, -MAX_ROLL, MAX_ROLL))


def _eye_line_angle(landmarks: np.ndarray) -> float:
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    return float(np.arctan2(right[1] - left[1], right[0] - left[0]))


def _alignment(donor_centre, donor_area, donor_angle, target_centre, target_area, target_roll) -> np.ndarray:
    scale = np.sqrt(target_area / donor_area)
    turn = target_roll - donor_angle
    rotation = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return np.hstack([rotation, (target_centre - rotation @ donor_centre)[:, None]])


def _match_colours(donor: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``donor`` with its Lab mean and spread inside ``region`` set to ``target``'s there."""
    def lab(x):
        return cv2.cvtColor(x.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)

    d, t = lab(donor), lab(target)
    d_mean, d_std = d[region].mean(axis=0), d[region].std(axis=0) + 1e-6
    t_mean, t_std = t[region].mean(axis=0), t[region].std(axis=0)
    matched = (d - d_mean) / d_std * t_std + t_mean
    rgb = cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def paste_face(image: np.ndarray, facemask: np.ndarray, alpha: np.ndarray, donor_image: np.ndarray,
               donor_landmarks: np.ndarray, *, foreground: np.ndarray | None = None,
               flip: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Paste the donor face over the blurred region; returns (image, foreground, weight).

    ``facemask``: H x W, non-zero on the blurred face; ``alpha``: the matte in [0, 1]
    (or uint8); pixels change only where the returned weight is above zero.
    """
    from p3m.io.images import matte_to_float
    from p3m.privacy.blur import face_region

    h, w = image.shape[:2]
    opaque = matte_to_float(alpha) >= 1.0
    target = (np.asarray(facemask) > 0) & opaque
    if flip:
        donor_image = donor_image[:, ::-1]
        mirrored = donor_landmarks.copy()
        mirrored[:, 0] = donor_image.shape[1] - 1 - mirrored[:, 0]
        # mirroring swaps the sides of the 68-point scheme: keep the eyes in their places
        donor_landmarks = mirrored[_MIRROR]
    if target.sum() < 16:
        return image, foreground, np.zeros((h, w), np.float32)
    donor_region = face_region(np.round(donor_landmarks).astype(np.int32), donor_image.shape[:2])
    d_centre, d_area, _ = _region_pose(donor_region)
    t_centre, t_area, t_roll = _region_pose(target)
    matrix = _alignment(d_centre, d_area, _eye_line_angle(donor_landmarks), t_centre, t_area, t_roll)
    warped = cv2.warpAffine(np.ascontiguousarray(donor_image), matrix, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
    covered = cv2.warpAffine(donor_region.astype(np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR) > 0.5
    region = covered & target
    if region.sum() < 16:
        return image, foreground, np.zeros((h, w), np.float32)
    warped = _match_colours(warped, image, region)
    feather = max(1.0, np.sqrt(region.sum()) / 20)
    weight = cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigmaX=feather, sigmaY=feather)
    weight = np.clip(weight * 2, 0, 1) * region  # soft at the edge, zero outside the region

    def blend(base: np.ndarray) -> np.ndarray:
        out = np.round(base * (1 - weight[..., None]) + warped * weight[..., None]).astype(np.uint8)
        out[weight == 0] = base[weight == 0]
        return out

    return blend(image), None if foreground is None else blend(foreground), weight


# Index map of the 68-point scheme under a horizontal mirror (jaw, brows, nose, eyes, mouth).
_MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48]
    + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] + [67, 66, 65])


@dataclass
class CopyPaste:
    """The augmentation as the dataset applies it: with ``probability``, a random donor
    (mirrored half of the time) over the sample's blurred face."""

    bank: FaceBank
    probability: float = 0.5

    def __call__(self, rng: np.random.Generator, image: np.ndarray, facemask: np.ndarray, alpha: np.ndarray,
                 foreground: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if rng.random() >= self.probability:
            return image, foreground
        donor = self.bank.faces[int(rng.integers(len(self.bank.faces)))]
        flip = bool(rng.random() < 0.5)
        out, fg, _ = paste_face(image, facemask, alpha, read_image_file(donor.path), donor.landmarks,
                                foreground=foreground, flip=flip)
        return out, fg
