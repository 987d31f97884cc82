"""Matting a set of inputs: resumable, atomic, never stopped by one bad image.

Loading and writing (with foreground estimation, the slow part of a cut-out) run in
a thread pool while the engine works on the next images. An image whose outputs all
exist is skipped, so an interrupted run resumes where it stopped. Videos among the
inputs are matted after the images, one at a time, frames streamed
(:mod:`p3m.video.matte`). Each image goes through the one per-image pipeline,
:func:`p3m.pipeline.matte_image`, locally and in cluster actors alike; with
``options.anonymize`` an image whose faces cannot be anonymized is held back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from p3m.errors import HeldBackError, OptionError, OutputError
from p3m.inference.engine import MattingEngine
from p3m.io.discovery import InputItem, collect_images, is_video
from p3m.io.images import read_image_file
from p3m.io.outputs import OutputPlan, exclusive, output_folder, withdraw
from p3m.io.writers import write_image
from p3m.jobs.progress import FrameCount, Progress
from p3m.jobs.results import ItemRecord, JobResult, Status, failure_reason, images_and_videos
from p3m.options import OUTPUT_KINDS, ClusterOptions, MatteOptions
from p3m.pipeline import ImageResult, matte_image
from p3m.privacy.anonymize import prepared
from p3m.utils.files import atomic_path


@dataclass
class MatteRecord(ItemRecord):
    privacy: dict | None = None  # with anonymize: the outcome and audit (AnonymizeResult.to_dict)


#: OUT/<this file> records the settings the outputs were made with.
SETTINGS_FILE = ".p3m-matte.json"


def output_paths(plan: OutputPlan, item: InputItem, save: tuple[str, ...], video_cutout: str = "webm"
                 ) -> dict[str, Path]:
    """OUT/<kind>/<relative path of the input, suffix .png>, checked by the plan.

    A video's are OUT/alpha/KEY.mp4, OUT/composite/KEY.mp4, OUT/cutout/KEY.webm (or .mov)
    and OUT/frames/KEY/ (see :func:`p3m.video.matte.video_output_path`); an image has no frames.
    """
    if is_video(item.path):
        from p3m.video.matte import video_output_path

        return {kind: video_output_path(plan.path(kind, item.key), kind, video_cutout) for kind in save}
    return {kind: plan.path(kind, item.key.with_suffix(".png")) for kind in save if kind != "frames"}


def write_outputs(result: ImageResult, paths: dict[str, Path]) -> None:
    """Every output of one image, computed already: written one by one, atomically."""
    for kind, array in result.outputs.items():
        write_image(paths[kind], array)


def image_record(name: str, result: ImageResult, paths: dict[str, Path]) -> MatteRecord:
    """Write one image's outputs (or nothing, when it is held back) and say what happened."""
    privacy = result.privacy_dict()
    if result.held_back:
        withdraw(paths)
        return MatteRecord(name, Status.HELD_BACK, held_back_line(result.cause, result.reason), privacy=privacy)
    write_outputs(result, paths)
    return MatteRecord(name, Status.DONE, outputs=_strings(paths), privacy=privacy, warning=result.warning)


def held_back_line(cause, reason: str) -> str:
    """A held-back image's line in the words of ``p3m anonymize``: its status, then why
    (``cause``: the AnonymizeResult that held it back)."""
    return cause.status.said(reason) if cause is not None else reason


def engine_identity(engine: MattingEngine, _=None) -> tuple[str, str]:
    """(description, weights): what the settings file records of an engine."""
    return engine.description, str(engine.weights or "")


def _settings(identity: tuple[str, str], options: MatteOptions) -> dict[str, str]:
    return {"engine": identity[0], "weights": identity[1],
            "background": _spec(options.background),
            "premultiplied": str(options.premultiplied), "alpha_bits": "16" if options.alpha_16bit else "8",
            "temporal": options.temporal,  # a video's mattes depend on it
            "anonymize": repr(options.anonymize.values()) if options.anonymize is not None else "no"}


def _check_settings(out: Path, settings: dict[str, str], overwrite: bool) -> None:
    """Existing outputs made with other settings are not silently kept: refuse, or (with
    overwrite) take the new settings. With anonymize, outputs whose settings are not
    known to match (no settings file, an unreadable one, or one from before anonymize
    was recorded) are never taken as private; and when overwrite makes a folder private
    (or private in another way), every earlier output in it is removed first, so none
    made without the blur stays beside the new ones (of kinds this run does not make,
    of inputs it does not reach, or after it is interrupted)."""
    path = out / SETTINGS_FILE
    try:
        before = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        before = {}
    changed = [f"{k} {before[k]!r} -> {v!r}" for k, v in settings.items() if k in before and before[k] != v]
    earlier = [out / kind for kind in OUTPUT_KINDS if (out / kind).exists()]
    relabelled = settings["anonymize"] != "no" and before.get("anonymize") != settings["anonymize"] and earlier
    if relabelled and "anonymize" not in before:
        changed.append(f"anonymize unknown -> {settings['anonymize']!r}")
    if changed and not overwrite:
        raise OutputError(f"{out}: its outputs were made with other settings ({'; '.join(changed)}); "
                          "pass --overwrite to remake them, or choose another -o")
    if relabelled:
        withdraw({kind.name: kind for kind in earlier})
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
    With ``options.anonymize``, faces are blurred in every output, failing closed.
    """
    start = time.perf_counter()
    options, progress = options or MatteOptions(), progress or Progress()
    if options.anonymize is not None:
        options = dataclasses.replace(options, anonymize=prepared(options.anonymize))
    out = output_folder(out)
    with contextlib.ExitStack() as stack:  # the folder's lock is let go, and actors stopped, however this ends
        stack.enter_context(exclusive(out))
        items, problems = collect_images([str(i) for i in inputs], exclude=out, videos=True)
        pool = None
        if cluster is not None:
            from p3m.cluster.ray_pool import ActorPool
            from p3m.inference.factory import open_engine

            named = cluster.engine_options.engine
            if named != "auto" and named != str(engine):
                raise OptionError(f"two engines: {engine!r} and cluster engine_options' {named!r}; give one")
            setup = partial(open_engine, engine, **cluster.engine_options.network())
            pool = stack.enter_context(ActorPool(cluster, setup))
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
            paths = output_paths(plan, item, options.save, options.video_cutout)
        except OutputError as exc:
            report(ItemRecord(str(item.path), Status.FAILED, str(exc)))
            continue
        if not paths:
            report(ItemRecord(str(item.path), Status.SKIPPED, "frames are written for videos only"))
        elif not options.overwrite and _up_to_date(item.path, paths):
            report(ItemRecord(str(item.path), Status.SKIPPED, "outputs exist", _strings(paths)))
        else:
            (videos if is_video(item.path) else todo).append((item, paths))
    if pool is not None:
        for record in pool.map(matte_item, [(item, paths, options) for item, paths in todo + videos], failed=_lost):
            report(record)
    else:
        _run(engine, todo, options, report)
        for item, paths in videos:
            report(_matte_one_video(engine, item, paths, options, progress))
    return records


def _up_to_date(source: Path, paths: dict[str, Path]) -> bool:
    """Every output exists and none is older than its input: an input replaced (or
    touched) since its outputs were written is done again, as make would."""
    try:
        made = source.stat().st_mtime_ns
        return all(path.stat().st_mtime_ns >= made for path in paths.values())
    except OSError:  # an output missing (or the input gone: the run will say why)
        return False


def matte_item(engine: MattingEngine, job: tuple[InputItem, dict[str, Path], MatteOptions]) -> ItemRecord:
    """One image or video, start to finish (what a cluster actor runs per item)."""
    item, paths, options = job
    if is_video(item.path):
        return _matte_one_video(engine, item, paths, options, None)
    try:
        image = read_image_file(item.path, max_pixels=options.max_pixels)
    except Exception as exc:  # one bad image never stops the batch
        return ItemRecord(str(item.path), Status.FAILED, failure_reason(exc))
    try:
        alpha = engine.predict([image])[0]
    except Exception as exc:
        return ItemRecord(str(item.path), Status.FAILED, f"matting failed: {failure_reason(exc)}")
    return _finish(str(item.path), image, alpha, paths, options, engine)


def _finish(name: str, image: np.ndarray, alpha: np.ndarray, paths: dict[str, Path], options: MatteOptions,
            engine: MattingEngine) -> ItemRecord:
    """Outputs of one image whose alpha is known, written; never raising."""
    try:
        return image_record(name, matte_image(engine, image, options, paths, alpha=alpha), paths)
    except Exception as exc:  # one bad output never stops the batch
        return ItemRecord(name, Status.FAILED, failure_reason(exc))


def _lost(job: tuple, reason: str) -> MatteRecord:
    """The record of an item no cluster worker could finish (its workers died)."""
    return MatteRecord(str(job[0].path), Status.FAILED, reason)


def _run(engine: MattingEngine, todo: list, options: MatteOptions, report) -> None:
    batch_size = max(1, getattr(engine, "batch_size", 1))
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        # Decode ahead of the engine, but only a few images: memory stays bounded.
        window = max(2, 2 * options.workers, batch_size)
        loads: deque[Future] = deque()
        writes: deque[Future] = deque()

        def prefetch(start: int) -> None:
            while start + len(loads) < len(todo) and len(loads) < window:
                item = todo[start + len(loads)][0]
                loads.append(pool.submit(read_image_file, item.path, max_pixels=options.max_pixels))

        def drain(limit: int) -> None:
            while len(writes) > limit or (writes and writes[0].done()):
                report(writes.popleft().result())

        position = 0
        while position < len(todo):
            chunk = []
            while position < len(todo) and len(chunk) < batch_size:
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
                writes.append(pool.submit(_finish, str(item.path), image, alpha, paths, options, engine))
            drain(limit=2 * max(1, options.workers))
        drain(limit=0)


def _matte_one_video(engine: MattingEngine, item: InputItem, paths: dict[str, Path], options: MatteOptions,
                     progress: Progress) -> ItemRecord:
    from p3m.video.anonymize import VideoAudit
    from p3m.video.matte import matte_video

    audit = VideoAudit() if options.anonymize is not None else None
    counted = FrameCount(progress)
    try:
        written = matte_video(engine, item.path, paths, options, progress=counted, audit=audit)
    except HeldBackError as exc:  # faces that could not be anonymized in a frame: nothing published
        withdraw(paths)
        return MatteRecord(str(item.path), Status.HELD_BACK, held_back_line(exc.privacy, str(exc)),
                           privacy=_video_privacy(audit, exc.privacy))
    except Exception as exc:  # one bad video never stops the batch; nothing of it is published
        return ItemRecord(str(item.path), Status.FAILED, failure_reason(exc))
    return MatteRecord(str(item.path), Status.DONE, outputs=written, privacy=_video_privacy(audit, None),
                       frames=counted.done)


def _video_privacy(audit, cause) -> dict | None:
    """A private video's outcome, in the keys of a photo's (AnonymizeResult.to_dict)."""
    if audit is None:
        return None
    return {"status": cause.status.value if cause is not None else "ok", "faces": audit.faces,
            "sigma_scale": None if audit.sigma_scale is None else round(audit.sigma_scale, 4), "video": audit.line(),
            "audit": {"redetected": 0, "identity_matches": audit.identity_matches, "low_confidence": 0,
                      "min_identity_distance": audit.min_identity_distance}}


def privacy_line(records: Sequence[ItemRecord]) -> str:
    """The privacy outcome of a run with anonymize, in one line (a video's faces are
    detections over its frames)."""
    audited = [r.privacy for r in records if getattr(r, "privacy", None)]
    audits = [p["audit"] for p in audited if p.get("audit")]
    done = [r for r in records if r.status is Status.DONE and getattr(r, "privacy", None)]
    frames = sum(r.frames for r in done if r.frames is not None)
    videos = sum(r.frames is not None for r in done)
    return (f"{sum(r.privacy['faces'] for r in done)} face(s) blurred in "
            f"{images_and_videos(len(done) - videos, videos, frames)}; "
            f"re-detected {sum(a['redetected'] for a in audits)}; identity matches "
            f"{sum(a['identity_matches'] for a in audits)}; not identity-checked (weak detections) "
            f"{sum(a['low_confidence'] for a in audits)}; held back {sum(r.status is Status.HELD_BACK for r in records)}")


def _strings(paths: dict[str, Path]) -> dict[str, str]:
    return {kind: str(path) for kind, path in paths.items()}


def _spec(background) -> str:
    if background is None:
        return "white"
    return background if isinstance(background, str) else \
        ",".join(map(str, background)) if isinstance(background, tuple) else "<image>"
