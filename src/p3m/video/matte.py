"""Matting a video: frames streamed through an engine, written as alpha, composite,
transparent video and PNG frames.

Memory is bounded by one batch of frames whatever the length of the video. Every
output is written under a temporary name and published only when the whole video is
done; a failure part-way publishes nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from p3m.errors import HeldBackError, VideoError
from p3m.inference.engine import MattingEngine
from p3m.io.writers import write_image
from p3m.options import MatteOptions
from p3m.pipeline import image_kinds, matte_image
from p3m.video.reader import VideoReader
from p3m.video.temporal import temporal_filter
from p3m.video.writer import FORMATS, VideoWriter, output_suffix

if TYPE_CHECKING:
    from p3m.video.anonymize import VideoAudit


def video_output_path(folder: Path, kind: str, video_cutout: str = "webm") -> Path:
    """OUT/<kind>/<key> -> the file (or, for frames, the folder) a video's output goes to."""
    return folder if kind == "frames" else folder.with_name(folder.name + output_suffix(kind, video_cutout))


def matte_frames(engine: MattingEngine, frames: Iterable[np.ndarray], *, batch_size: int = 1,
                 temporal: str = "flow") -> Iterator[np.ndarray]:
    """Alphas (float32 H x W) of RGB frames, in order, ``batch_size`` frames per engine call.

    ``frames`` is any iterable (a decoded file, a camera, a generator); ``temporal`` is
    :attr:`p3m.options.MatteOptions.temporal`, the same consistency step as for files.
    """
    step = temporal_filter(temporal)
    for chunk in _batches(frames, batch_size):
        for rgb, alpha in zip(chunk, engine.predict(chunk)):
            yield step(rgb, alpha)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= max(1, size):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def matte_video(engine: MattingEngine, path: Path, outputs: dict[str, Path], options: MatteOptions, *,
                progress=None, audit: VideoAudit | None = None) -> dict[str, str]:
    """Write the ``outputs`` (kind -> path from :func:`video_output_path`) of the video at ``path``.

    Every frame goes through :func:`p3m.pipeline.matte_image`. With ``options.anonymize``
    each frame is anonymized by the photo rule with the faces of its neighbouring frames
    carried in (:class:`p3m.video.anonymize.FaceCarrier`, as ``p3m anonymize`` does for a
    video), counted in ``audit``; a frame that cannot be anonymized (no face found in it
    or its neighbours, a face still identifiable, ...: the photo rule's held-back outcomes) raises HeldBackError, and nothing
    of the video is published.
    """
    options = dataclasses.replace(options, alpha_16bit=False)  # video alpha is 8-bit
    kinds = image_kinds(outputs)
    start = time.perf_counter()
    with VideoReader(path, max_pixels=options.max_pixels) as reader:
        info = reader.info
        writers, frames_dir = {}, None
        try:
            for kind, target in outputs.items():
                if kind in FORMATS:
                    writers[kind] = VideoWriter(target, kind, info, video_cutout=options.video_cutout)
            if "frames" in outputs:
                frames_dir = _partial_folder(outputs["frames"])
            stream, faces = _frames_with_faces(reader.frames(), options, audit)
            # Two views of one stream: tee holds at most the batch matte_frames has read ahead.
            frames, for_engine = itertools.tee(stream)
            alphas = matte_frames(engine, (entry[1] for entry in for_engine),
                                  batch_size=getattr(engine, "batch_size", 1), temporal=options.temporal)
            for done, ((pts, rgb, *found), alpha) in enumerate(zip(frames, alphas)):
                if not np.isfinite(alpha).all():
                    raise VideoError(f"{path}: frame {done}: the engine produced non-finite alpha values")
                result = matte_image(engine, rgb, options, kinds, alpha=alpha, look_for_a_face=False, **faces(*found))
                if result.privacy is not None and audit is not None:
                    audit.add(done, result.privacy)
                if result.held_back:
                    raise HeldBackError(f"frame {done}: {result.reason}; the video is not written", result.cause)
                arrays = result.outputs
                for kind, writer in writers.items():
                    writer.write(arrays[kind], pts)
                if frames_dir is not None:
                    write_image(frames_dir / f"{done:06d}.png", arrays["cutout"])
                if progress is not None:
                    progress.frames(str(path), done + 1, info.frames, time.perf_counter() - start)
            written = {kind: str(writer.close()) for kind, writer in writers.items()}
            if frames_dir is not None:
                written["frames"] = str(_publish_folder(frames_dir, outputs["frames"]))
        except BaseException:
            for writer in writers.values():
                writer.abandon()
            if frames_dir is not None:
                shutil.rmtree(frames_dir, ignore_errors=True)
            raise
    return written


def _frames_with_faces(frames, options: MatteOptions, audit: VideoAudit | None):
    """(stream of (pts, rgb, *found), found -> matte_image's face keywords): with
    anonymize, each frame's own faces and those carried from its neighbours."""
    if options.anonymize is None:
        return frames, lambda: {}
    from p3m.video.anonymize import FaceCarrier, VideoAudit, upright_finder

    finder = upright_finder(options.anonymize)
    carrier = FaceCarrier(options.anonymize, finder, audit if audit is not None else VideoAudit())
    stream = ((pts, rgb, own, carried) for _, pts, rgb, own, carried in carrier(frames))
    return stream, lambda own, carried: {"faces": own, "regions": carried, "find_faces": finder}


def _partial_folder(target: Path) -> Path:
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def _publish_folder(partial: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    return target
