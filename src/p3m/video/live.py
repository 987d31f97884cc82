"""Live in Python: a camera, a stream or any frames in, mattes out as they come.

    import p3m
    for frame in p3m.live(0, save=("composite",), background="blur"):   # camera 0
        show(frame.outputs["composite"])                                 # RGB uint8

A source is an OpenCV camera index (``int``), a video file or stream URL (``str`` or a
path; read by PyAV when it is installed, else by OpenCV), or any iterable of frames
(RGB uint8 H x W x 3 arrays, or PIL images). The options are :class:`p3m.options.MatteOptions`,
the same as for files: ``save`` (alpha, cutout, composite), ``background``,
``premultiplied``, ``temporal`` (flow by default, as for videos), ``max_pixels``;
``anonymize`` runs the fail-closed blur on every frame (about a second a frame: not
live). Frames are matted one at a time in the caller's thread and never stored. A
frame that cannot be used raises :class:`p3m.errors.ImageError` naming it; with
``anonymize``, a frame held back is yielded with ``held_back`` set and no outputs.
The camera or file is released when the generator ends or is closed: leaving a loop
early, close it (``contextlib.closing(p3m.live(0))``) rather than wait for the
garbage collector.
"""

from __future__ import annotations

import numbers
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from p3m.errors import ImageError, VideoError
from p3m.options import MatteOptions

#: The camera indices tried (OpenCV takes an index per device).
MAX_CAMERA_INDEX = 255


@dataclass
class LiveFrame:
    """One matted frame."""

    index: int
    rgb: np.ndarray                  # the frame, RGB uint8
    alpha: np.ndarray                # float32 H x W in [0, 1], after the temporal step
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # options.save: alpha, cutout, composite
    seconds: float = 0.0             # matting and rendering this frame took
    held_back: str = ""              # with anonymize: why this frame was not rendered


def frames_from(source: Any) -> Iterator[np.ndarray]:
    """RGB uint8 frames from a camera index, a file or URL, or an iterable of frames."""
    if isinstance(source, bool):
        raise VideoError(f"not a frame source: {source!r}")
    if isinstance(source, numbers.Integral):
        index = int(source)
        if not 0 <= index <= MAX_CAMERA_INDEX:  # OpenCV crashed on -1, and raised its own error on 10**20
            raise VideoError(f"camera {index}: a camera index is 0 to {MAX_CAMERA_INDEX}")
        return _capture(index, f"camera {index}")
    if isinstance(source, (str, os.PathLike)):
        return _file_frames(source)
    if isinstance(source, np.ndarray) and source.ndim == 3 and source.shape[-1] in (3, 4):
        raise VideoError("one image is not a frame source: pass a list of frames, or use p3m.remove")
    try:
        frames = iter(source)
    except TypeError:
        raise VideoError(f"not a frame source: {type(source).__name__} (a camera index, a file or URL, or an "
                         "iterable of frames)") from None
    return _checked(frames)


def _checked(frames: Iterator[Any]) -> Iterator[np.ndarray]:
    from p3m.io.images import load_image

    for index, frame in enumerate(frames):
        try:
            yield load_image(frame)
        except ImageError as exc:
            raise ImageError(f"frame {index}: {exc}") from None


def _file_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    text = os.fspath(path)
    if "://" in text:  # a stream (rtsp://, http://...): OpenCV's FFmpeg reads it as it comes
        return _capture(text, text)
    if not os.path.isfile(text):
        raise VideoError(f"{text}: no such file")
    try:
        from p3m.video.reader import VideoReader, import_av

        import_av()
    except Exception:  # no PyAV: OpenCV reads files and streams too
        return _capture(text, text)
    return _reader_frames(VideoReader, text)


def _reader_frames(reader_type, path: str) -> Iterator[np.ndarray]:
    with reader_type(path) as reader:
        for _, rgb in reader.frames():
            yield rgb


def _capture(device: int | str, name: str) -> Iterator[np.ndarray]:
    import cv2

    quiet = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our one line, not OpenCV's warnings
    try:
        capture = cv2.VideoCapture(device)
    except cv2.error as exc:
        raise VideoError(f"{name}: cannot be opened ({' '.join(str(exc).split())[:200]})") from None
    finally:
        cv2.utils.logging.setLogLevel(quiet)
    if not capture.isOpened():
        capture.release()
        raise VideoError(f"{name}: cannot be opened (no such camera or stream, or no permission)")
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def live(source: Any, *, engine: Any = "live", options: MatteOptions | None = None,
         **values: Any) -> Iterator[LiveFrame]:
    """Matted frames of ``source`` as they come (a generator). ``engine`` is any engine
    spec (``"live"`` by default: segmentation + guided filter at frame rate; ``"auto"``
    for P3M-Net); ``values`` are MatteOptions by name (or pass ``options``)."""
    from p3m.inference.factory import open_engine
    from p3m.pipeline import image_kinds, matte_image
    from p3m.video.temporal import temporal_filter

    if options is None:
        options = MatteOptions.from_values(values, "python")
    elif values:
        raise TypeError(f"give {', '.join(values)} in the MatteOptions, not beside them")
    matting = open_engine(engine)  # an open engine is used as it is
    kinds = image_kinds(options.save)
    step = temporal_filter(options.temporal)
    for index, rgb in enumerate(frames_from(source)):
        if rgb.shape[0] * rgb.shape[1] > options.max_pixels:
            raise ImageError(f"frame {index}: {rgb.shape[1]} x {rgb.shape[0]} is over the limit of "
                             f"{options.max_pixels} pixels")
        started = time.perf_counter()
        alpha = step(rgb, matting.predict([rgb])[0])
        result = matte_image(matting, rgb, options, kinds, alpha=alpha, look_for_a_face=False)
        yield LiveFrame(index, rgb, alpha, result.outputs, time.perf_counter() - started,
                        result.reason if result.held_back else "")


def live_alphas(source: Any, *, engine: Any = "live", temporal: str = "flow") -> Iterator[np.ndarray]:
    """Only the alphas of ``source``'s frames (float32), as :func:`p3m.video.matte_frames` gives a file's."""
    from p3m.inference.factory import open_engine
    from p3m.video.matte import matte_frames

    yield from matte_frames(open_engine(engine), frames_from(source), temporal=temporal)
