"""Matting a set of inputs: resumable, atomic, never stopped by one bad image.

Loading and writing (with foreground estimation, the slow part of a cut-out) run in
a thread pool while the engine works on the next images. An image whose outputs all
exist is skipped, so an interrupted run resumes where it stopped. Videos among the
inputs are matted after the images, one at a time, frames streamed
(:mod:`p3m.video.matte`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from p3m.errors import ImageError, OutputError
from p3m.inference.compose import Background, composite, cutout_rgba, estimate_foreground
from p3m.inference.engine import MattingEngine
from p3m.io.discovery import InputItem, collect_images, is_video
from p3m.io.images import DEFAULT_MAX_PIXELS, read_image_file
from p3m.io.outputs import OutputPlan, output_folder
from p3m.io.writers import write_image
from p3m.jobs.progress import Progress
from p3m.jobs.results import ItemRecord, JobResult, Status, failure_reason
from p3m.utils.files import atomic_path

if TYPE_CHECKING:
    from p3m.cluster.ray_pool import ClusterOptions

OUTPUT_KINDS = ("alpha", "cutout", "composite", "frames")  # frames: a video's RGBA PNG sequence


@dataclass
class MatteOptions:
    save: tuple[str, ...] = ("alpha",)
    background: Background | None = None
    premultiplied: bool = False
    alpha_16bit: bool = False
    overwrite: bool = False
    workers: int = 2
    batch_size: int = 1
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    stabilise: bool = True  # videos: steadier edges between frames (p3m.video.stabilise)


#: OUT/<this file> records the settings the outputs were made with.
SETTINGS_FILE = ".p3m-matte.json"


def output_paths(plan: OutputPlan, item: InputItem, save: tuple[str, ...]) -> dict[str, Path]:
    """OUT/<kind>/<relative path of the input, suffix .png>, checked by the plan.

    A video's are OUT/alpha/KEY.mp4, OUT/composite/KEY.mp4, OUT/cutout/KEY.webm and
    OUT/frames/KEY/ (see :func:`p3m.video.matte.video_output_path`); an image has no frames.
    """
    if is_video(item.path):
        from p3m.video.matte import video_output_path

        return {kind: video_output_path(plan.path(kind, item.key), kind) for kind in save}
    return {kind: plan.path(kind, item.key.with_suffix(".png")) for kind in save if kind != "frames"}


def render_outputs(image: np.ndarray, alpha: np.ndarray, kinds, options: MatteOptions) -> dict[str, np.ndarray]:
    """The arrays of the asked outputs of one image: alpha (uint8, or uint16 with
    ``alpha_16bit``), cutout (RGBA) and composite (RGB)."""
    if not np.isfinite(alpha).all():
        raise ImageError("the engine produced non-finite alpha values (NaN or infinity); are its weights damaged?")
    needs_fg = "composite" in kinds or ("cutout" in kinds and not options.premultiplied)
    fg = estimate_foreground(image, alpha) if needs_fg else None
    arrays = {}
    if "alpha" in kinds:
        scale, dtype = (65535.0, np.uint16) if options.alpha_16bit else (255.0, np.uint8)
        arrays["alpha"] = np.round(np.clip(alpha, 0, 1) * scale).astype(dtype)
    if "cutout" in kinds:
        arrays["cutout"] = cutout_rgba(image, alpha, foreground=fg, premultiplied=options.premultiplied)
    if "composite" in kinds:
        background = options.background.for_image(image) if options.background else np.full_like(image, 255)
        arrays["composite"] = composite(image, alpha, background, foreground=fg)
    return arrays


def write_outputs(image: np.ndarray, alpha: np.ndarray, paths: dict[str, Path], options: MatteOptions) -> None:
    """Every output of one image, computed first and then written: a failure leaves none."""
    for kind, array in render_outputs(image, alpha, paths, options).items():
        write_image(paths[kind], array)


def engine_identity(engine: MattingEngine, _=None) -> tuple[str, str]:
    """(description, weights): what the settings file records of an engine."""
    return engine.description, str(engine.weights or "")


def _settings(identity: tuple[str, str], options: MatteOptions) -> dict[str, str]:
    return {"engine": identity[0], "weights": identity[1],
            "background": options.background.spec if options.background else "white",
            "premultiplied": str(options.premultiplied), "alpha_bits": "16" if options.alpha_16bit else "8"}


def _check_settings(out: Path, settings: dict[str, str], overwrite: bool) -> None:
    """Existing outputs made with other settings are not silently kept: refuse, or (with
    overwrite) take the new settings."""
    path = out / SETTINGS_FILE
    try:
        before = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        before = {}
    changed = [f"{k} {before[k]!r} -> {v!r}" for k, v in settings.items() if k in before and before[k] != v]
    if changed and not overwrite:
        raise OutputError(f"{out}: its outputs were made with other settings ({'; '.join(changed)}); "
                          "pass --overwrite to remake them, or choose another -o")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2) + "\n")


def matte_files(engine: MattingEngine | str | Path, inputs: Sequence[str | Path], out: str | Path,
                options: MatteOptions | None = None, *, progress: Progress | None = None,
                cluster: ClusterOptions | None = None) -> JobResult:
    """Alpha mattes (and cut-outs, composites) of every image that ``inputs`` (files,
    folders, globs) name, under ``out``/<kind>/ mirroring the input tree.

    With ``cluster``, ``engine`` is a spec (what :func:`p3m.open_engine` takes, opened
    with ``cluster.engine_options`` once in each Ray actor) and the items are spread
    over the actors; outputs, skips and records are those of a single-machine run.
    """
    start = time.perf_counter()
    options, progress = options or MatteOptions(), progress or Progress()
    out = output_folder(out)
    items, problems = collect_images([str(i) for i in inputs], exclude=out, videos=True)
    with contextlib.ExitStack() as stack:  # actors, if any, are stopped however this ends
        pool = None
        if cluster is not None:
            from p3m.cluster.ray_pool import ActorPool
            from p3m.inference.factory import open_engine

            pool = stack.enter_context(ActorPool(cluster, partial(open_engine, engine, **cluster.engine_options)))
            identity = pool.first(engine_identity)
        else:
            identity = engine_identity(engine)
        records = _matte_planned(engine, pool, identity, items, problems, out, options, progress)
    progress.close()
    return JobResult(records, time.perf_counter() - start)


def _matte_planned(engine, pool, identity: tuple[str, str], items: list[InputItem], problems: list,
                   out: Path, options: MatteOptions, progress: Progress) -> list[ItemRecord]:
    """Check the settings, skip what is done, and matte the rest locally or on ``pool``."""
    _check_settings(out, _settings(identity, options), options.overwrite)
    plan = OutputPlan(out, [item.path for item in items])
    records: list[ItemRecord] = []
    progress.start(len(items) + len(problems), "matte")

    def report(record: ItemRecord) -> None:
        records.append(record)
        progress.record(record)

    for spec, reason in problems:
        report(ItemRecord(spec, Status.FAILED, reason))
    todo, videos = [], []
    for item in items:
        try:
            paths = output_paths(plan, item, options.save)
        except OutputError as exc:
            report(ItemRecord(str(item.path), Status.FAILED, str(exc)))
            continue
        if not paths:
            report(ItemRecord(str(item.path), Status.SKIPPED, "frames are written for videos only"))
        elif not options.overwrite and all(p.exists() for p in paths.values()):
            report(ItemRecord(str(item.path), Status.SKIPPED, "outputs exist", _strings(paths)))
        else:
            (videos if is_video(item.path) else todo).append((item, paths))
    if pool is not None:
        for record in pool.map(matte_item, [(item, paths, options) for item, paths in todo + videos]):
            report(record)
    else:
        _run(engine, todo, options, report)
        for item, paths in videos:
            report(_matte_one_video(engine, item, paths, options, progress))
    return records


def matte_item(engine: MattingEngine, job: tuple[InputItem, dict[str, Path], MatteOptions]) -> ItemRecord:
    """One image or video, start to finish (what a cluster actor runs per item)."""
    item, paths, options = job
    if is_video(item.path):
        return _matte_one_video(engine, item, paths, options, None)
    failed = partial(ItemRecord, str(item.path), Status.FAILED)  # the reasons of the single-machine run
    try:
        image = read_image_file(item.path, max_pixels=options.max_pixels)
    except Exception as exc:  # one bad image never stops the batch
        return failed(failure_reason(exc))
    try:
        alpha = engine.predict([image])[0]
    except Exception as exc:
        return failed(f"matting failed: {failure_reason(exc)}")
    try:
        write_outputs(image, alpha, paths, options)
    except Exception as exc:
        return failed(failure_reason(exc))
    return ItemRecord(str(item.path), Status.DONE, outputs=_strings(paths))


def _run(engine: MattingEngine, todo: list, options: MatteOptions, report) -> None:
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        # Decode ahead of the engine, but only a few images: memory stays bounded.
        window = max(2, 2 * options.workers, options.batch_size)
        loads: deque[Future] = deque()
        writes: deque[tuple[str, dict, Future]] = deque()

        def prefetch(start: int) -> None:
            while start + len(loads) < len(todo) and len(loads) < window:
                item = todo[start + len(loads)][0]
                loads.append(pool.submit(read_image_file, item.path, max_pixels=options.max_pixels))

        def drain(limit: int) -> None:
            while len(writes) > limit or (writes and writes[0][2].done()):
                name, paths, future = writes.popleft()
                try:
                    future.result()
                    report(ItemRecord(name, Status.DONE, outputs=_strings(paths)))
                except Exception as exc:  # one bad output never stops the batch
                    report(ItemRecord(name, Status.FAILED, failure_reason(exc)))

        position = 0
        while position < len(todo):
            chunk = []
            while position < len(todo) and len(chunk) < options.batch_size:
                prefetch(position)
                (item, paths), future = todo[position], loads.popleft()
                position += 1
                try:
                    chunk.append((item, paths, future.result()))
                except Exception as exc:
                    report(ItemRecord(str(item.path), Status.FAILED, failure_reason(exc)))
            if not chunk:
                continue
            try:
                alphas = engine.predict([image for _, _, image in chunk])
            except Exception as exc:
                for item, _, _ in chunk:
                    report(ItemRecord(str(item.path), Status.FAILED, f"matting failed: {failure_reason(exc)}"))
                continue
            for (item, paths, image), alpha in zip(chunk, alphas):
                writes.append((str(item.path), paths, pool.submit(write_outputs, image, alpha, paths, options)))
            drain(limit=2 * max(1, options.workers))
        drain(limit=0)


def _matte_one_video(engine: MattingEngine, item: InputItem, paths: dict[str, Path], options: MatteOptions,
                     progress: Progress) -> ItemRecord:
    from p3m.video.matte import matte_video

    try:
        written = matte_video(engine, item.path, paths, options, progress=progress)
    except Exception as exc:  # one bad video never stops the batch; nothing of it is published
        return ItemRecord(str(item.path), Status.FAILED, failure_reason(exc))
    return ItemRecord(str(item.path), Status.DONE, outputs=written)


def _strings(paths: dict[str, Path]) -> dict[str, str]:
    return {kind: str(path) for kind, path in paths.items()}
