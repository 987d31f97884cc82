"""Writing small test clips: a still or moving portrait, with the properties real
videos have (noise, audio, a rotation, a variable frame rate, 10-bit, odd sizes).

The tests and ``benchmarks/video.py`` make their clips here, so nothing is downloaded.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np

from p3m.video.reader import import_av, stored


def write_clip(path: str | os.PathLike, frames: Iterable[np.ndarray], *, rate: int = 25, codec: str = "libx264",
               pix_fmt: str = "yuv420p", rotation: int = 0, audio: bool = False, pts: Sequence[int] | None = None,
               time_base: Fraction | None = None, crf: int = 18) -> None:
    """Encode upright RGB ``frames``; ``rotation`` stores them turned, with a display matrix;
    ``pts`` (in ``time_base``, default 1/rate) gives a variable frame rate; ``audio`` adds a
    440 Hz AAC tone as long as the clip."""
    av = import_av()
    frames = list(frames)
    time_base = time_base or Fraction(1, rate)
    with av.open(os.fspath(path), "w") as container:
        options = {"crf": str(crf)} if codec == "libx264" else {}
        stream = container.add_stream(codec, rate=rate, options=options)
        h, w = frames[0].shape[:2]
        stream.width, stream.height = (h, w) if rotation in (90, 270) else (w, h)
        stream.pix_fmt = pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        tone = container.add_stream("aac", rate=44100) if audio else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored(rgb, rotation)), format="rgb24")
            frame.pts = pts[index] if pts is not None else index
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if tone is not None:
            seconds = (pts[-1] * time_base if pts is not None else Fraction(len(frames), rate))
            _write_tone(av, container, tone, float(seconds))


def _write_tone(av, container, stream, seconds: float, rate: int = 44100) -> None:
    samples = np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate).astype(np.float32) * 0.2
    for start in range(0, samples.size, 1024):
        chunk = samples[start:start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def noisy_still(image: np.ndarray, count: int, *, sigma: float = 4.0, seed: int = 0) -> list[np.ndarray]:
    """``count`` copies of ``image`` with independent Gaussian sensor noise."""
    rng = np.random.default_rng(seed)
    noisy = [image.astype(np.float32) + rng.normal(0, sigma, image.shape) for _ in range(count)]
    return [np.clip(np.round(f), 0, 255).astype(np.uint8) for f in noisy]


def pan_zoom(image: np.ndarray, count: int, size: tuple[int, int], *, zoom: float = 1.15,
             pan: float = 0.08) -> list[np.ndarray]:
    """A slow camera move over ``image``: ``count`` frames of ``size`` (h, w), zooming in by
    ``zoom`` and panning by ``pan`` of the width over the clip."""
    import cv2

    h, w = image.shape[:2]
    out_h, out_w = size
    frames = []
    for i in range(count):
        t = i / max(1, count - 1)
        scale = 1 + (zoom - 1) * t
        crop_h, crop_w = h / scale, w / scale
        x0 = (w - crop_w) / 2 + pan * w * (t - 0.5)
        y0 = (h - crop_h) / 2
        x0 = min(max(x0, 0.0), w - crop_w)
        matrix = np.array([[out_w / crop_w, 0, -x0 * out_w / crop_w], [0, out_h / crop_h, -y0 * out_h / crop_h]])
        frames.append(cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT))
    return frames


#: The parts of a ground-truth clip, in order: what happens in each.
PARTS = ("still", "pan-zoom", "person-moves", "light-change")


def moving_portrait(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray, size: tuple[int, int], *,
                    frames_per_part: int = 12, noise: float = 3.0, seed: int = 0
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A clip with a known alpha in every frame: (RGB uint8 frames, float32 alphas).

    The person layer (``foreground`` colours with ``alpha``, the same size) is composited
    over ``background`` as ``alpha * F + (1 - alpha) * B`` in four parts of
    ``frames_per_part`` frames (:data:`PARTS`): held still; a camera pan and zoom (the
    background moving at 0.6 of the person's rate, as it is further away); the person
    swaying sideways with a slight turn; the light dimming by a quarter. Every frame
    gets independent sensor noise of ``noise`` grey levels. The alpha of a frame is the
    layer's alpha moved exactly as its colours were.
    """
    import cv2

    out_h, out_w = size
    rng = np.random.default_rng(seed)
    layer_h, layer_w = alpha.shape
    fit = 0.85 * out_h / layer_h  # the person fills 0.85 of the height, centred, feet at the bottom
    base = np.array([[fit, 0, (out_w - fit * layer_w) / 2], [0, fit, out_h - fit * layer_h]], np.float64)
    bg_h, bg_w = background.shape[:2]
    cover = max(out_h / bg_h, out_w / bg_w) * 1.25  # room for the pan
    bg_base = np.array([[cover, 0, (out_w - cover * bg_w) / 2], [0, cover, (out_h - cover * bg_h) / 2]])
    n = frames_per_part
    frames, alphas = [], []
    for part in PARTS:
        for i in range(n):
            t = i / max(1, n - 1)
            zoom, shift, sway, turn, light = 1.0, 0.0, 0.0, 0.0, 1.0
            if part == "pan-zoom":
                zoom, shift = 1 + 0.12 * t, -0.06 * out_w * t
            elif part == "person-moves":
                zoom, shift = 1.12, -0.06 * out_w
                sway, turn = 0.08 * out_w * np.sin(np.pi * t), 3.0 * np.sin(np.pi * t)
            elif part == "light-change":
                zoom, shift, light = 1.12, -0.06 * out_w, 1 - 0.25 * t
            camera = _about_centre(zoom, 0.0, shift, out_w, out_h)
            person = camera @ _about_centre(1.0, turn, sway, out_w, out_h) @ _affine3(base)
            scenery = _about_centre(1 + (zoom - 1) * 0.6, 0.0, shift * 0.6, out_w, out_h) @ _affine3(bg_base)
            a = cv2.warpAffine(alpha.astype(np.float32), person[:2], (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderValue=0)
            f = cv2.warpAffine(foreground, person[:2], (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            b = cv2.warpAffine(background, scenery[:2], (out_w, out_h), flags=cv2.INTER_AREA,
                               borderMode=cv2.BORDER_REFLECT).astype(np.float32)
            rgb = (a[..., None] * f + (1 - a[..., None]) * b) * light + rng.normal(0, noise, f.shape)
            frames.append(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
            alphas.append(np.clip(a, 0, 1))
    return frames, alphas


def _affine3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0, 0, 1]])


def _about_centre(zoom: float, degrees: float, shift: float, width: int, height: int) -> np.ndarray:
    """Zoom and turn about the frame's centre, then move ``shift`` pixels sideways (3 x 3)."""
    import cv2

    matrix = _affine3(cv2.getRotationMatrix2D((width / 2, height / 2), degrees, zoom))
    matrix[0, 2] += shift
    return matrix


def write_y4m(path: str | os.PathLike, frames: Iterable[np.ndarray], *, rate: int = 15) -> None:
    """Raw YUV4MPEG2 (4:2:0) of RGB ``frames``: what Chromium's fake camera plays
    (``--use-file-for-fake-video-capture``), looping."""
    import cv2

    frames = list(frames)
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{rate}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420).tobytes())
