"""MTCNN (Zhang et al., 2016), a third face detector family beside dlib and BlazeFace.

A cascade of three small networks: P-Net proposes windows over an image pyramid,
R-Net and O-Net re-score them on 24 and 48 px crops. It finds faces the other two
families miss: half-hidden faces, faces at 15-30 px, faces cut by the frame (searched
in a mirrored border, :func:`p3m.privacy.faces.detect_faces`). The weights are
facenet-pytorch 2.6.0's (MIT; ``p3m weights fetch faces``), read without PyTorch
(:mod:`p3m.weights.torch_pickle`); the cascade is facenet-pytorch's ``detect_face``
in numpy, step for step (area resampling, the three suppressions, box regression,
squaring), so it finds what that code finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from p3m.weights.default_model import MTCNN_MODELS, check_model

#: The smallest face searched for (pixels), the pyramid's step, and each stage's minimum score.
MIN_FACE = 20
FACTOR = 0.709
THRESHOLDS = (0.6, 0.7, 0.7)
#: Rows of a convolution's output computed at once (bounds the memory of a large photo).
BAND_ROWS = 256


@dataclass
class Detection:
    box: np.ndarray     # left, top, right, bottom in image pixels (float)
    points: np.ndarray  # 5 x 2 (x, y): the eyes (the subject's right first), nose tip, mouth corners
    score: float        # O-Net's face probability


def networks() -> tuple[dict, dict, dict]:
    """P-Net's, R-Net's and O-Net's weights: the verified files of this P3M_HOME, loaded
    once per process and home (as BlazeFace and the face mesh are)."""
    return _networks_at(tuple(model.path() for model in MTCNN_MODELS))


@lru_cache(maxsize=4)
def _networks_at(paths: tuple) -> tuple[dict, dict, dict]:
    from p3m.weights.torch_pickle import read_legacy_state_dict

    return tuple(read_legacy_state_dict(check_model(model, path, fetch_command="p3m weights fetch faces"))
                 for model, path in zip(MTCNN_MODELS, paths))


def detect_mtcnn(image: np.ndarray, min_face: int = MIN_FACE, thresholds: tuple = THRESHOLDS) -> list[Detection]:
    """Faces of an RGB uint8 image (H x W x 3)."""
    pnet, rnet, onet = networks()
    table = _AreaTable(np.asarray(image))
    boxes = _proposals(table, pnet, min_face, thresholds[0])
    if len(boxes):
        crops = _crops(table, boxes, 24)
        reg, prob = _rnet(rnet, crops)
        keep = prob > thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, None]], axis=1)
        reg = reg[keep]
        pick = _nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[pick], reg[pick]))
    detections = []
    if len(boxes):
        crops = _crops(table, boxes, 48)
        reg, points, prob = _onet(onet, crops)
        keep = prob > thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, None]], axis=1)
        reg, points = reg[keep], points[keep]
        size = boxes[:, 2:4] - boxes[:, 0:2] + 1
        xs = size[:, :1] * points[:, :5] + boxes[:, :1] - 1
        ys = size[:, 1:2] * points[:, 5:] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, reg)
        for i in _nms(boxes[:, :4], boxes[:, 4], 0.7, by_min=True):
            detections.append(Detection(boxes[i, :4].copy(), np.stack([xs[i], ys[i]], axis=1), float(boxes[i, 4])))
    return detections


def _proposals(table: _AreaTable, pnet: dict, min_face: int, threshold: float) -> np.ndarray:
    """P-Net over the pyramid: candidate boxes (N x 5, with scores), regressed and squared."""
    height, width = table.shape
    scale, side, scales = 12.0 / min_face, min(height, width) * 12.0 / min_face, []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * FACTOR, side * FACTOR
    found = []
    for scale in scales:
        level = table.whole(int(height * scale + 1), int(width * scale + 1))
        reg, prob = _pnet(pnet, (level - 127.5) * 0.0078125)
        rows, cols = np.nonzero(prob >= threshold)
        if not rows.size:
            continue
        corner = np.stack([cols, rows], axis=1).astype(np.float32)
        boxes = np.concatenate([np.floor((2 * corner + 1) / scale), np.floor((2 * corner + 12) / scale),
                                prob[rows, cols, None], reg[rows, cols]], axis=1)
        found.append(boxes[_nms(boxes[:, :4], boxes[:, 4], 0.5)])
    if not found:
        return np.zeros((0, 5), np.float32)
    boxes = np.concatenate(found)
    boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7)]
    size = boxes[:, 2:4] - boxes[:, 0:2]
    corners = np.concatenate([boxes[:, 0:2] + boxes[:, 5:7] * size, boxes[:, 2:4] + boxes[:, 7:9] * size], axis=1)
    return _square(np.concatenate([corners, boxes[:, 4:5]], axis=1))


def _crops(table: _AreaTable, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box's pixels (clipped to the image, as facenet-pytorch's ``pad``), resized to
    size x size and normalised; an empty crop stays black (no face there)."""
    height, width = table.shape
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    x0, y0 = np.maximum(corners[:, 0], 1) - 1, np.maximum(corners[:, 1], 1) - 1
    x1, y1 = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
    empty = (x1 <= x0) | (y1 <= y0)
    x1, y1 = np.where(empty, x0 + 1, x1), np.where(empty, y0 + 1, y1)
    out = table.resize((y0, y1), (x0, x1), size, size)
    out[empty] = 0.0
    return (out - 127.5) * 0.0078125


class _AreaTable:
    """``torch.nn.functional.interpolate(mode="area")`` of any window of one image: each
    output pixel the mean of the input pixels from floor(i * n / m) to ceil((i + 1) * n / m)
    on each axis, read from the image's summed-area table (exact: the pixels are integers)."""

    def __init__(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]
        self.sums = cv2.integral(np.ascontiguousarray(image), sdepth=cv2.CV_64F)  # (H + 1) x (W + 1) x C

    def resize(self, rows: tuple, cols: tuple, height: int, width: int) -> np.ndarray:
        """Windows [rows[0]:rows[1], cols[0]:cols[1]] (arrays, one per window) resized to height x width."""
        top, bottom = self._bins(*rows, height)
        left, right = self._bins(*cols, width)
        s = self.sums
        total = (s[bottom[:, :, None], right[:, None, :]] - s[top[:, :, None], right[:, None, :]]
                 - s[bottom[:, :, None], left[:, None, :]] + s[top[:, :, None], left[:, None, :]])
        count = ((bottom - top)[:, :, None] * (right - left)[:, None, :])[..., None]
        return (total / count).astype(np.float32)

    def whole(self, height: int, width: int) -> np.ndarray:
        """The whole image resized (rows first, then columns: two smaller gathers than :meth:`resize`'s)."""
        (top, bottom), (left, right) = (self._bins(np.array([0]), np.array([n]), size)
                                        for n, size in zip(self.shape, (height, width)))
        rows = self.sums[bottom[0]] - self.sums[top[0]]
        total = rows[:, right[0]] - rows[:, left[0]]
        return (total / ((bottom - top)[0][:, None, None] * (right - left)[0][None, :, None])).astype(np.float32)

    @staticmethod
    def _bins(start: np.ndarray, end: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Each window's output bins as input index ranges (windows x size)."""
        n, index = (end - start)[:, None], np.arange(size)[None, :]
        return start[:, None] + index * n // size, start[:, None] - ((-(index + 1) * n) // size)


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A valid convolution of N x H x W x C by PyTorch weights (O x C x kh x kw): one
    matrix product per kernel tap, each over the image flattened to pixels and shifted
    by the tap (no copy of the windows; the columns past each row's end are dropped).
    A tall image goes in bands of ``BAND_ROWS`` output rows, to bound the memory."""
    n, h, w, c = x.shape
    out_channels, _, kh, kw = weight.shape
    if n == 1 and h - kh + 1 > BAND_ROWS:
        return np.concatenate([_conv(x[:, top:top + BAND_ROWS + kh - 1], weight, bias)
                               for top in range(0, h - kh + 1, BAND_ROWS)], axis=1)
    flat = np.ascontiguousarray(x, np.float32).reshape(n * h * w, c)
    rows = n * h * w - (kh - 1) * w - (kw - 1)
    taps = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))  # kh x kw x C x O
    out = np.zeros((n * h * w, out_channels), np.float32)
    product = np.empty((rows, out_channels), np.float32)
    for dy in range(kh):
        for dx in range(kw):
            shift = dy * w + dx
            np.matmul(flat[shift:shift + rows], taps[dy, dx], out=product)
            out[:rows] += product
    return out.reshape(n, h, w, out_channels)[:, :h - kh + 1, :w - kw + 1] + bias


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """max(x, 0) + slope * min(x, 0), in place."""
    negative = np.minimum(x, 0.0)
    np.maximum(x, 0.0, out=x)
    negative *= slope
    x += negative
    return x


def _max_pool(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """PyTorch's max pooling with ``ceil_mode=True`` (the last window may hang over the
    edge), one axis at a time: the maximum of ``kernel`` strided slices."""
    def out_size(n: int) -> int:
        size = -(-(n - kernel) // stride) + 1
        return size - 1 if (size - 1) * stride >= n else size

    h, w = out_size(x.shape[1]), out_size(x.shape[2])
    padded = np.full((x.shape[0], (h - 1) * stride + kernel, (w - 1) * stride + kernel, x.shape[3]), -np.inf,
                     np.float32)
    padded[:, :x.shape[1], :x.shape[2]] = x
    rows = padded[:, 0:(h - 1) * stride + 1:stride].copy()
    for offset in range(1, kernel):
        np.maximum(rows, padded[:, offset:offset + (h - 1) * stride + 1:stride], out=rows)
    out = rows[:, :, 0:(w - 1) * stride + 1:stride].copy()
    for offset in range(1, kernel):
        np.maximum(out, rows[:, :, offset:offset + (w - 1) * stride + 1:stride], out=out)
    return out


def _face_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax over (not face, face), the face's share."""
    return 1.0 / (1.0 + np.exp(logits[..., 0] - logits[..., 1]))


def _block(x: np.ndarray, net: dict, name: str, pool: tuple | None = None) -> np.ndarray:
    x = _prelu(_conv(x, net[f"conv{name}.weight"], net[f"conv{name}.bias"]), net[f"prelu{name}.weight"])
    return _max_pool(x, *pool) if pool else x


def _dense(x: np.ndarray, net: dict, name: str) -> np.ndarray:
    return x @ net[f"{name}.weight"].T + net[f"{name}.bias"]


def _pnet(net: dict, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P-Net on one normalised image: box offsets (H' x W' x 4) and face probability (H' x W')."""
    x = _block(image[None], net, "1", (2, 2))
    x = _block(_block(x, net, "2"), net, "3")
    return _conv(x, net["conv4_2.weight"], net["conv4_2.bias"])[0], \
        _face_probability(_conv(x, net["conv4_1.weight"], net["conv4_1.bias"]))[0]


def _flatten(x: np.ndarray) -> np.ndarray:
    """N x H x W x C flattened as PyTorch's ``permute(0, 3, 2, 1)`` then ``view`` does."""
    return x.transpose(0, 2, 1, 3).reshape(len(x), -1)


def _rnet(net: dict, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _block(_block(crops, net, "1", (3, 2)), net, "2", (3, 2))
    x = _prelu(_dense(_flatten(_block(x, net, "3")), net, "dense4"), net["prelu4.weight"])
    return _dense(x, net, "dense5_2"), _face_probability(_dense(x, net, "dense5_1"))


def _onet(net: dict, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _block(_block(_block(crops, net, "1", (3, 2)), net, "2", (3, 2)), net, "3", (2, 2))
    x = _prelu(_dense(_flatten(_block(x, net, "4")), net, "dense5"), net["prelu5.weight"])
    return _dense(x, net, "dense6_2"), _dense(x, net, "dense6_3"), _face_probability(_dense(x, net, "dense6_1"))


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes moved by the network's offsets (fractions of the box's inclusive size)."""
    out = boxes.copy()
    size = boxes[:, 2:4] - boxes[:, 0:2] + 1
    out[:, 0:2] = boxes[:, 0:2] + reg[:, 0:2] * size
    out[:, 2:4] = boxes[:, 2:4] + reg[:, 2:4] * size
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes made square about their centre (side: the longer one)."""
    out = boxes.copy()
    size = boxes[:, 2:4] - boxes[:, 0:2]
    side = size.max(axis=1)
    out[:, 0:2] = boxes[:, 0:2] + size * 0.5 - side[:, None] * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy suppression, best first: torchvision's (IoU of plain areas), or
    with ``by_min`` facenet-pytorch's last one (overlap over the smaller box, inclusive sizes)."""
    extra = 1.0 if by_min else 0.0
    areas = (boxes[:, 2] - boxes[:, 0] + extra) * (boxes[:, 3] - boxes[:, 1] + extra)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0])
                       + extra)
        h = np.maximum(0.0, np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1])
                       + extra)
        inter = w * h
        overlap = inter / np.minimum(areas[best], areas[rest]) if by_min else \
            inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, np.int64)
