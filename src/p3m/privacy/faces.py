"""Faces in an image: detection boxes, 68 landmarks, identity descriptors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p3m.privacy import dlib_models


@dataclass
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom
    landmarks: np.ndarray           # 68 x 2 (x, y), the iBUG 300-W scheme
    score: float = 0.0              # detector confidence (HOG margin / CNN confidence)
    _shape: object = None           # dlib's full_object_detection, for descriptors

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


def detect_faces(image: np.ndarray, *, detector: str = "hog", upsample: int = 1) -> list[Face]:
    """Faces with landmarks in an RGB uint8 image (HOG by default; ``cnn`` is 50-500x slower)."""
    image = np.ascontiguousarray(image)  # dlib refuses strided views (crops, flips)
    if detector == "hog":
        rects, scores, _ = dlib_models.detector("hog").run(image, upsample, 0.0)
    else:
        found = dlib_models.detector(detector)(image, upsample)
        rects, scores = [d.rect for d in found], [d.confidence for d in found]
    faces = []
    for rect, score in zip(rects, scores):
        shape = dlib_models.shape_predictor()(image, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int32)
        faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), points, float(score), shape))
    return faces


def face_descriptor(image: np.ndarray, face: Face) -> np.ndarray:
    """dlib's 128-d identity descriptor (same person: distance below about 0.6)."""
    return np.array(dlib_models.face_recognizer().compute_face_descriptor(np.ascontiguousarray(image), face._shape))
