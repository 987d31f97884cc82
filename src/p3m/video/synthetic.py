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
