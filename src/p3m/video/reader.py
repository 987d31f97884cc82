"""Reading a video as a stream of upright RGB frames (PyAV), with what a writer must keep.

Frames are decoded one at a time, so memory does not grow with the length of a video.
Each frame keeps its presentation time: a variable frame rate survives matting. A
rotated phone video (display-matrix side data) is turned upright for matting, so the
network sees people the right way up; writers turn the results back and keep the
display matrix, as the input had it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from p3m.errors import VideoError
from p3m.utils.optional import require


def import_av():
    return require("av", "video", "reading and writing video")


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as the writers need it (sizes are of the upright frames)."""

    path: Path
    width: int
    height: int
    frames: int  # from the container; 0 when it does not say
    rate: Fraction  # average frame rate
    time_base: Fraction
    rotation: int  # degrees counter-clockwise the stored frames are turned for display
    color_range: int  # 1 limited (MPEG), 2 full (JPEG), 0 unspecified
    codec: str
    pix_fmt: str
    has_audio: bool

    @property
    def seconds(self) -> float:
        return float(self.frames / self.rate) if self.rate else 0.0


class VideoReader:
    """An open video file: ``info`` and ``frames()``; use as a context manager."""

    def __init__(self, path: str | os.PathLike, *, max_pixels: int | None = None) -> None:
        """``max_pixels``: refuse frames larger than this, as an image of that size is refused."""
        av = import_av()
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        try:
            self.container = av.open(os.fspath(self.path), "r")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoError(f"{self.path}: not a readable video ({_reason(exc)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{self.path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        width, height = self.stream.codec_context.width or 0, self.stream.codec_context.height or 0
        if max_pixels is not None and width * height > max_pixels:
            self.container.close()
            raise VideoError(f"{self.path}: frames of {width}x{height} = {width * height / 1e6:.3g} megapixels exceed "
                             f"the limit of {max_pixels / 1e6:g} (raise it with --max-pixels)")
        self.info = self._probe()

    def _probe(self) -> VideoInfo:
        stream, context = self.stream, self.stream.codec_context
        if not context.width or not context.height:
            raise VideoError(f"{self.path}: the video stream has no frame size (damaged header?)")
        self._decoded = self._decode()
        self._first = next(self._decoded, None)  # the rotation is known from the first frame
        if self._first is None:
            raise VideoError(f"{self.path}: no frame could be decoded")
        rotation = int(round((self._first.rotation or 0) / 90.0)) % 4 * 90
        width, height = self._first.width, self._first.height
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(self.path, width, height, int(stream.frames or 0), Fraction(rate),
                         Fraction(stream.time_base or Fraction(1, 90000)), rotation,
                         int(self._first.color_range or context.color_range or 0), context.name,
                         self._first.format.name, bool(self.container.streams.audio))

    def _decode(self):
        av = import_av()
        index = 0
        try:
            for frame in self.container.decode(self.stream):
                yield frame
                index += 1
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot decode frame {index} ({_reason(exc)})") from None

    def frames(self) -> Iterator[tuple[int | None, np.ndarray]]:
        """(presentation time in ``info.time_base`` units, upright RGB uint8 H x W x 3), in order."""
        first, self._first = self._first, None
        if first is None:
            raise VideoError(f"{self.path}: frames() reads a video once")
        start = last = None
        for frame in _chain(first, self._decoded):
            start = frame.pts if start is None else start
            last = frame.pts if frame.pts is not None else last
            yield frame.pts, upright(frame.to_ndarray(format="rgb24"), self.info.rotation)
        self._check_whole(start, last)

    def _check_whole(self, start: int | None, last: int | None) -> None:
        """A file cut short decodes without an error, only fewer frames: compare the time the
        frames reached with the duration the container declares, so it is not taken as done."""
        declared = self.container.duration  # in microseconds (FFmpeg's AV_TIME_BASE), or None
        if not declared or start is None or last is None:
            return
        reached = float((last - start) * self.info.time_base) + float(1 / self.info.rate)
        if reached < 0.9 * declared / 1e6 - 0.1:
            raise VideoError(f"{self.path}: truncated or damaged: its frames reach {reached:.2f} s of the "
                             f"{declared / 1e6:.2f} s the file declares; nothing is written for it")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _chain(first, rest):
    yield first
    yield from rest


def upright(array: np.ndarray, rotation: int) -> np.ndarray:
    """A stored frame turned for display: ``rotation`` degrees counter-clockwise (as
    PyAV's ``VideoFrame.rotation`` reads FFmpeg's display matrix)."""
    if rotation == 0:
        return array
    return np.ascontiguousarray(np.rot90(array, k=rotation // 90))


def stored(array: np.ndarray, rotation: int) -> np.ndarray:
    """The inverse of :func:`upright`: back to the orientation frames are stored in."""
    if rotation == 0:
        return array
    return np.ascontiguousarray(np.rot90(array, k=-(rotation // 90)))


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '", 1)[0].strip() or type(exc).__name__
