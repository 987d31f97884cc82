"""MediaPipe's 468-point face mesh: the outline of a face dlib cannot place its 68
landmarks on (profile, rotated, very small).

As in MediaPipe's face-landmark graph: the region of interest is the BlazeFace box
made square, 1.5 x its longer side, rotated so that the eyes lie level (keypoints 0 and
1); it is warped to 192 x 192 in [0, 1]; the network returns 468 (x, y, z) points in
that crop and a face-presence logit (sigmoid). Points are mapped back to the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from p3m.privacy.blazeface import FETCH_FACES, Detection
from p3m.utils.litert import PerThreadModel
from p3m.weights.default_model import FACE_MESH, check_model

SIZE = 192
ROI_SCALE = 1.5
#: Below this presence the mesh is not trusted and the padded ellipse is used instead.
MIN_PRESENCE = 0.5


@dataclass
class Mesh:
    points: np.ndarray  # 468 x 2 (x, y) in image pixels
    presence: float     # the network's face-presence probability


def roi_transform(detection: Detection) -> np.ndarray:
    """The 2 x 3 affine map from the image to the 192 x 192 crop of the face."""
    box, eyes = detection.box, detection.keypoints[:2]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    size = ROI_SCALE * max(box[2] - box[0], box[3] - box[1], 1.0)
    angle = np.arctan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0])  # the eye line, image axes
    cos, sin = np.cos(angle), np.sin(angle)
    linear = (SIZE / size) * np.array([[cos, sin], [-sin, cos]])  # rotate the eye line onto the x axis
    return np.hstack([linear, (SIZE / 2 - linear @ centre)[:, None]])


class FaceMesh:
    def __init__(self) -> None:
        self.model = PerThreadModel(check_model(FACE_MESH, fetch_command=FETCH_FACES))

    def __call__(self, image: np.ndarray, detection: Detection) -> Mesh:
        forward = roi_transform(detection)
        crop = cv2.warpAffine(image, forward, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        outputs = self.model((crop.astype(np.float32) / 255.0)[None])
        points = next(o for o in outputs if o.size == 468 * 3).reshape(468, 3)[:, :2]
        logit = float(next(o for o in outputs if o.size == 1).ravel()[0])
        back = cv2.invertAffineTransform(forward)
        points = points @ back[:, :2].T + back[:, 2]
        return Mesh(points.astype(np.float32), float(1 / (1 + np.exp(-np.clip(logit, -80, 80)))))


def face_mesh() -> FaceMesh:
    """The face mesh, loaded once per model file (the file of this P3M_HOME)."""
    return _face_mesh_at(FACE_MESH.path())


@lru_cache(maxsize=4)
def _face_mesh_at(path) -> FaceMesh:
    return FaceMesh()
