"""A synthetic P3M-10k: procedural portraits with real matting structure.

Each portrait has head, neck and shoulders with anti-aliased edges, hair with thin
semi-transparent strands reaching past the head, a face with eyes, brows, nose and
mouth, and a textured background. The alpha matte, foreground and background are
known exactly, and the composite is ``alpha * F + (1 - alpha) * B``. The face-blurred
version differs from the normal one only inside the face region, outside the
transition pixels, as in P3M-10k. Deterministic for a seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from p3m.data.layout import SPLIT_FACES, SYNTHETIC_MARKER, TestSplit, TrainLayout
from p3m.data.trimap import trimap_from_alpha
from p3m.io.writers import write_image, write_matte

SUPERSAMPLE = 4


@dataclass
class Portrait:
    image: np.ndarray       # uint8 RGB, normal face
    blurred: np.ndarray     # uint8 RGB, face blurred
    alpha: np.ndarray       # float32 in [0, 1]
    foreground: np.ndarray  # uint8 RGB
    background: np.ndarray  # uint8 RGB
    facemask: np.ndarray    # uint8 0/255, the blurred region


def _colour(rng, low=30, high=230) -> np.ndarray:
    return rng.integers(low, high, 3).astype(np.float32)


def _background(rng, h: int, w: int) -> np.ndarray:
    """Gradient + blurred blobs + stripes + noise: texture that is not trivially separable."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = _colour(rng), _colour(rng)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(rng.integers(4, 10)):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(w // 12, w // 3)), int(rng.integers(h // 12, h // 3)))
        blob = np.zeros((h, w), np.float32)
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), max(h, w) / 40)
        bg = bg * (1 - 0.7 * blob[..., None]) + _colour(rng) * 0.7 * blob[..., None]
    period = rng.uniform(8, 30)
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle + 1) + yy * np.sin(angle + 1)) / period)
    bg += (stripes[..., None] - 0.5) * rng.uniform(10, 40)
    bg += rng.normal(0, 6, bg.shape)
    return np.clip(bg, 0, 255).astype(np.uint8)


def _person(rng, h: int, w: int):
    """Alpha layers (supersampled then area-averaged) and the foreground colours."""
    s = SUPERSAMPLE
    H, W = h * s, w * s
    cx = int(W * rng.uniform(0.4, 0.6))
    head_r = int(min(H, W) * rng.uniform(0.14, 0.2))
    head_cy = int(H * rng.uniform(0.3, 0.42))
    head_axes = (head_r, int(head_r * rng.uniform(1.15, 1.3)))

    body = np.zeros((H, W), np.float32)
    shoulder_y = head_cy + int(head_axes[1] * 1.45)
    half_width = int(W * rng.uniform(0.32, 0.45))
    cv2.ellipse(body, (cx, shoulder_y + int(H * 0.35)), (half_width, int(H * 0.42)), 0, 180, 360, 1.0, -1)
    cv2.rectangle(body, (cx - half_width, shoulder_y + int(H * 0.35)), (cx + half_width, H), 1.0, -1)
    neck = np.zeros_like(body)
    cv2.rectangle(neck, (cx - head_r // 2, head_cy), (cx + head_r // 2, shoulder_y + head_r // 3), 1.0, -1)
    head = np.zeros_like(body)
    cv2.ellipse(head, (cx, head_cy), head_axes, 0, 0, 360, 1.0, -1)

    # Hair: a cap over the top of the head plus thin strands with partial opacity.
    hair = np.zeros_like(body)
    cap_axes = (int(head_axes[0] * 1.12), int(head_axes[1] * 1.1))
    cv2.ellipse(hair, (cx, head_cy - head_r // 6), cap_axes, 0, 180, 360, 1.0, -1)
    strands = np.zeros_like(body)
    for _ in range(rng.integers(60, 120)):
        angle = rng.uniform(np.pi * 1.05, np.pi * 1.95)
        start = (cx + cap_axes[0] * np.cos(angle) * rng.uniform(0.6, 1.0),
                 head_cy - head_r // 6 + cap_axes[1] * np.sin(angle) * rng.uniform(0.6, 1.0))
        length = head_r * rng.uniform(0.3, 1.1)
        bend = rng.uniform(-0.6, 0.6)
        pts = []
        for k in range(8):
            a = angle + bend * k / 7
            pts.append((start[0] + np.cos(a) * length * k / 7, start[1] + np.sin(a) * length * k / 7))
        pts = np.round(np.array(pts)).astype(np.int32)
        cv2.polylines(strands, [pts], False, float(rng.uniform(0.4, 1.0)), thickness=max(1, s // 2), lineType=cv2.LINE_AA)
    hair = np.maximum(hair, strands)

    def down(x):
        return cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)

    body, neck, head, hair = down(body), down(neck), down(head), down(hair)
    alpha = np.clip(np.maximum.reduce([body, neck, head, hair]), 0, 1)

    skin = np.array([rng.uniform(150, 235), rng.uniform(110, 190), rng.uniform(80, 160)], np.float32)
    cloth, hair_colour = _colour(rng), _colour(rng, 10, 120)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fg = np.empty((h, w, 3), np.float32)
    fg[:] = cloth + 25 * np.sin(xx / rng.uniform(3, 9))[..., None] * np.cos(yy / rng.uniform(5, 12))[..., None]
    skin_w = np.clip(np.maximum(neck, head) - 0.0, 0, 1)[..., None]
    fg = fg * (1 - skin_w) + skin * skin_w
    hair_w = hair[..., None]
    fg = fg * (1 - hair_w) + (hair_colour + rng.normal(0, 10, (h, w, 3))) * hair_w

    # Face features on the skin, in the lower part of the head ellipse.
    fcx, fcy, fr = cx / s, head_cy / s, head_r / s
    eye_y = int(fcy + fr * 0.05)
    for side in (-1, 1):
        ex = int(fcx + side * fr * 0.38)
        cv2.ellipse(fg, (ex, eye_y), (max(2, int(fr * 0.14)), max(1, int(fr * 0.07))), 0, 0, 360,
                    (250, 250, 250), -1, cv2.LINE_AA)
        cv2.circle(fg, (ex, eye_y), max(1, int(fr * 0.06)), (40, 30, 20), -1, cv2.LINE_AA)
        cv2.line(fg, (ex - int(fr * 0.18), eye_y - int(fr * 0.2)), (ex + int(fr * 0.18), eye_y - int(fr * 0.24)),
                 tuple(float(v) for v in hair_colour), max(1, int(fr * 0.05)), cv2.LINE_AA)
    cv2.line(fg, (int(fcx), eye_y + int(fr * 0.1)), (int(fcx - fr * 0.05), eye_y + int(fr * 0.42)),
             tuple(float(v) for v in skin * 0.7), max(1, int(fr * 0.04)), cv2.LINE_AA)
    cv2.ellipse(fg, (int(fcx), eye_y + int(fr * 0.62)), (max(2, int(fr * 0.25)), max(1, int(fr * 0.1))), 0, 0, 180,
                (150, 40, 50), max(1, int(fr * 0.05)), cv2.LINE_AA)
    facemask = np.zeros((h, w), np.uint8)
    cv2.ellipse(facemask, (int(fcx), int(fcy + fr * 0.25)), (int(fr * 0.8), int(fr * 0.95)), 0, 0, 360, 255, -1)
    return alpha.astype(np.float32), np.clip(fg, 0, 255).astype(np.uint8), facemask


def make_portrait(rng: np.random.Generator, height: int, width: int) -> Portrait:
    background = _background(rng, height, width)
    alpha, foreground, facemask = _person(rng, height, width)
    a = alpha[..., None]
    image = np.clip(np.round(a * foreground + (1 - a) * background), 0, 255).astype(np.uint8)
    # Face blur as in P3M-10k: inside the face region, never on transition pixels.
    region = (facemask > 0) & ~((alpha > 0) & (alpha < 1))
    sigma = max(2.0, 0.12 * width * 0.2)
    blurred = image.copy()
    blurred[region] = cv2.GaussianBlur(image, (0, 0), sigma)[region]
    return Portrait(image, blurred, alpha, foreground, background, (region * 255).astype(np.uint8))


def write_synthetic_dataset(out: str | Path, *, train: int = 8, val: int = 4, size: tuple[int, int] = (256, 192),
                            seed: int = 0, progress=None) -> Path:
    """Write a P3M-10k-layout dataset of ``train`` training and ``val`` test portraits per split."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SYNTHETIC_MARKER).write_text(json.dumps(
        {"generator": "p3m synth", "train": train, "val": val, "size": list(size), "seed": seed,
         "note": "procedural portraits, not P3M-10k: numbers measured here are not comparable with published ones"},
        indent=2) + "\n")
    h, w = size
    trimap_width = max(3, min(h, w) // 40)
    layout = TrainLayout(out)
    for i in range(train):
        p = make_portrait(np.random.default_rng([seed, 0, i]), h, w)
        stem = f"p_train_{i:05d}"
        write_image(layout.image_dir("blurred") / f"{stem}.jpg", p.blurred)
        write_image(layout.image_dir("original") / f"{stem}.jpg", p.image)
        write_matte(layout.mask_dir / f"{stem}.png", p.alpha)
        write_image(layout.fg_dir / f"{stem}.jpg", p.foreground)
        write_image(layout.bg_dir / f"{stem}.jpg", p.background)
        write_image(layout.facemask_dir / f"{stem}.png", p.facemask)
        if progress:
            progress()
    for split_id, (name, prefix) in enumerate((("P3M-500-P", "p"), ("P3M-500-NP", "np")), start=1):
        split = TestSplit(name, out / "validation" / name)
        for i in range(val):
            p = make_portrait(np.random.default_rng([seed, split_id, i]), h, w)
            stem = f"{prefix}_{i:05d}"
            write_image(split.image_dir / f"{stem}.jpg", p.blurred if SPLIT_FACES[name] == "B" else p.image)
            write_matte(split.mask_dir / f"{stem}.png", p.alpha)
            write_image(split.trimap_dir / f"{stem}.png", trimap_from_alpha(p.alpha, trimap_width))
            if SPLIT_FACES[name] == "B":
                write_image(split.facemask_dir / f"{stem}.png", p.facemask)
            if progress:
                progress()
    return out
