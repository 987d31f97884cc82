"""BlazeFace, MediaPipe's face detector: a second detector family beside dlib's HOG.

The two networks of the mediapipe 0.10.14 wheel are run by LiteRT and decoded as
MediaPipe's face-detection graph does (``face_detection.pbtxt``):

- the image is letterboxed into the square input (aspect kept, black border) and
  scaled to [-1, 1];
- SSD anchors, fixed size, at the cell centres: short range, 128 x 128 input, strides
  8, 16, 16, 16 (2 anchors per cell per layer, 896 in all); full range, 192 x 192,
  stride 4 (1 anchor, 2304);
- each anchor regresses a box (x, y, w, h) and 6 keypoints (eyes, nose tip, mouth,
  ear tragions) as offsets / input size; its score is a sigmoid of a logit clipped to
  +-100; minimum score 0.5 (short range) and 0.6 (full range);
- weighted non-maximum suppression at IoU 0.3: overlapping boxes are averaged by score.

Faces far smaller than the input's cell size are found by running the full-range
network on overlapping tiles as well (:func:`tiles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from p3m.utils.litert import PerThreadModel
from p3m.weights.default_model import FACE_FULL_RANGE, FACE_SHORT_RANGE, WheelModel, check_model

#: BlazeFace keypoints, in this order (the subject's right eye is on the viewer's left).
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
NMS_IOU = 0.3
SCORE_CLIP = 100.0
FETCH_FACES = "p3m weights fetch faces"


@dataclass(frozen=True)
class BlazeFaceConfig:
    model: WheelModel
    size: int
    strides: tuple[int, ...]
    anchors_per_layer: int   # 2 with the interpolated anchor, else 1
    min_score: float


SHORT_RANGE = BlazeFaceConfig(FACE_SHORT_RANGE, 128, (8, 16, 16, 16), 2, 0.5)
FULL_RANGE = BlazeFaceConfig(FACE_FULL_RANGE, 192, (4,), 1, 0.6)


@dataclass
class Detection:
    box: np.ndarray        # left, top, right, bottom in image pixels (float)
    keypoints: np.ndarray  # 6 x 2 (x, y) in image pixels
    score: float


def anchors(config: BlazeFaceConfig) -> np.ndarray:
    """Anchor centres (N x 2, x and y in [0, 1]) in the network's output order."""
    centres = []
    layer = 0
    while layer < len(config.strides):
        stride, repeats = config.strides[layer], 0
        while layer < len(config.strides) and config.strides[layer] == stride:  # same stride: one grid
            repeats += config.anchors_per_layer
            layer += 1
        cells = int(np.ceil(config.size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """``image`` fitted into size x size (aspect kept, centred, black border) in [-1, 1];
    returns the tensor and the scale and offsets that map it back to the image."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, 3), np.uint8)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas.astype(np.float32) / 127.5 - 1.0, scale, left, top


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted suppression: take the best box, average it with every box
    overlapping it by more than ``iou`` (weights: scores), drop them, repeat."""
    order = np.argsort(-scores)
    kept = []
    while order.size:
        best = order[0]
        overlaps = box_iou(boxes[best], boxes[order])
        group = order[overlaps > iou]
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        points = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        kept.append((box, points, float(scores[best])))
        order = order[overlaps <= iou]
    return kept


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (left, top, right, bottom) box with each of ``boxes``."""
    left, top = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    right, bottom = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def tiles(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Square windows of side ``tile`` covering the image with half-tile overlap
    (left, top, right, bottom); none when the image is not larger than one tile."""
    if max(height, width) <= tile:
        return []

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        count = int(np.ceil((length - tile) / (tile / 2))) + 1
        return [round(i * (length - tile) / (count - 1)) for i in range(count)]

    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)]


class BlazeFace:
    """One BlazeFace network: ``detect(rgb)`` gives the faces of an RGB uint8 image."""

    def __init__(self, config: BlazeFaceConfig) -> None:
        self.config = config
        self.model = PerThreadModel(check_model(config.model, fetch_command=FETCH_FACES))
        self.anchors = anchors(config)

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, keypoints (image pixels) and scores of every anchor above the minimum score."""
        tensor, scale, left, top = letterbox(image, self.config.size)
        regressors, logits = self.model(tensor[None])
        if regressors.shape[-1] != 16:  # the two outputs come in either order
            regressors, logits = logits, regressors
        regressors, logits = regressors[0], logits[0, :, 0]
        scores = 1 / (1 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
        keep = scores >= self.config.min_score
        reg, anchor, size = regressors[keep], self.anchors[keep], self.config.size
        centre = reg[:, 0:2] / size + anchor
        half = reg[:, 2:4] / size / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * size
        points = (reg[:, 4:16].reshape(-1, 6, 2) / size + anchor[:, None, :]) * size
        offset = np.array([left, top], np.float32)
        boxes = (boxes - np.tile(offset, 2)) / scale
        points = (points - offset) / scale
        return boxes, points, scores[keep]

    def detect(self, image: np.ndarray) -> list[Detection]:
        boxes, points, scores = self.raw(image)
        return [Detection(b, k, s) for b, k, s in weighted_nms(boxes, points, scores)]


def _near_edge(tile: tuple, box: tuple, reach: float) -> bool:
    """``tile`` meets the band of width ``2 * reach`` around ``box``'s edge."""
    left, top, right, bottom = box
    outer = (left - reach, top - reach, right + reach, bottom + reach)
    inner = (left + reach, top + reach, right - reach, bottom - reach)
    meets_outer = tile[0] < outer[2] and outer[0] < tile[2] and tile[1] < outer[3] and outer[1] < tile[3]
    within_inner = inner[0] <= tile[0] and inner[1] <= tile[1] and tile[2] <= inner[2] and tile[3] <= inner[3]
    return meets_outer and not within_inner


def blazeface(config: BlazeFaceConfig) -> BlazeFace:
    """The network of ``config``, loaded once per model file (the file of this P3M_HOME)."""
    return _blazeface_at(config, config.model.path())


@lru_cache(maxsize=8)
def _blazeface_at(config: BlazeFaceConfig, path) -> BlazeFace:
    return BlazeFace(config)


def detect_blazeface(image: np.ndarray, *, tile_size: int = 384, ring: tuple | None = None,
                     whole: bool = True) -> list[Detection]:
    """Both networks on the whole image (unless not ``whole``), and the full-range one on
    overlapping tiles of ``tile_size`` px for faces under a third of a tile, merged by
    weighted suppression. ``ring`` (left, top, right, bottom): only tiles that reach
    within a third of a tile of this box's edge are searched (faces crossing that edge;
    the rest were searched)."""
    short, full = blazeface(SHORT_RANGE), blazeface(FULL_RANGE)
    parts = [short.raw(image), full.raw(image)] if whole else []
    for left, top, right, bottom in tiles(*image.shape[:2], tile_size):
        if ring is not None and not _near_edge((left, top, right, bottom), ring, tile_size / 3):
            continue
        boxes, points, scores = full.raw(image[top:bottom, left:right])
        small = (boxes[:, 2] - boxes[:, 0]) < tile_size / 3  # larger faces: the whole-image passes
        boxes, points, scores = boxes[small], points[small], scores[small]
        offset = np.array([left, top], np.float32)
        parts.append((boxes + np.tile(offset, 2), points + offset, scores))
    if not parts:
        return []
    boxes = np.concatenate([p[0] for p in parts])
    points = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    return [Detection(b, k, s) for b, k, s in weighted_nms(boxes, points, scores)]


def any_face(image: np.ndarray, *, tile_size: int = 384) -> bool:
    """Whether :func:`detect_blazeface` would find a face, stopping at the first: the
    whole-image passes, then the tiles one at a time (a presence check, not a search)."""
    short, full = blazeface(SHORT_RANGE), blazeface(FULL_RANGE)
    if len(short.raw(image)[2]) or len(full.raw(image)[2]):
        return True
    for left, top, right, bottom in tiles(*image.shape[:2], tile_size):
        if len(full.raw(image[top:bottom, left:right])[2]):
            return True
    return False
