"""``p3m matte`` over many files: resumable, atomic, never stopped by one bad image.

Loading and writing (with foreground estimation, the slow part of a cut-out) run in
a thread pool while the network works on the next images. An image whose outputs all
exist is skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p3m.errors import P3MError
from p3m.inference.compose import Background, composite, cutout_rgba, estimate_foreground
from p3m.inference.engine import MattingEngine
from p3m.io.discovery import InputItem
from p3m.io.images import DEFAULT_MAX_PIXELS, read_image_file
from p3m.io.writers import write_image, write_matte
from p3m.utils.progress import BatchProgress, BatchSummary

OUTPUT_KINDS = ("alpha", "cutout", "composite")


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


def output_paths(outdir: Path, item: InputItem, save: tuple[str, ...]) -> dict[str, Path]:
    """OUT/<kind>/<relative path of the input, suffix .png>."""
    return {kind: outdir / kind / item.key.with_suffix(".png") for kind in save}


def write_outputs(image: np.ndarray, alpha: np.ndarray, paths: dict[str, Path], options: MatteOptions) -> None:
    if "alpha" in paths:
        write_matte(paths["alpha"], alpha, bits=16 if options.alpha_16bit else 8)
    needs_fg = "composite" in paths or ("cutout" in paths and not options.premultiplied)
    fg = estimate_foreground(image, alpha) if needs_fg else None
    if "cutout" in paths:
        write_image(paths["cutout"], cutout_rgba(image, alpha, foreground=fg, premultiplied=options.premultiplied))
    if "composite" in paths:
        background = options.background.for_image(image) if options.background else np.full_like(image, 255)
        write_image(paths["composite"], composite(image, alpha, background, foreground=fg))


def run_matting(engine: MattingEngine, items: list[InputItem], outdir: Path, options: MatteOptions,
                progress: BatchProgress) -> BatchSummary:
    todo = []
    for item in items:
        paths = output_paths(outdir, item, options.save)
        if not options.overwrite and all(p.exists() for p in paths.values()):
            progress.skipped(str(item.path))
        else:
            todo.append((item, paths))

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        # Decode ahead of the network, but only a few images: memory stays bounded.
        window = max(2, 2 * options.workers, options.batch_size)
        loads: deque[Future] = deque()
        writes: deque[tuple[str, Future]] = deque()

        def prefetch(start: int) -> None:
            while start + len(loads) < len(todo) and len(loads) < window:
                item = todo[start + len(loads)][0]
                loads.append(pool.submit(read_image_file, item.path, max_pixels=options.max_pixels))

        def drain(limit: int) -> None:
            while len(writes) > limit or (writes and writes[0][1].done()):
                name, future = writes.popleft()
                try:
                    future.result()
                    progress.done(name)
                except Exception as exc:  # one bad output never stops the batch
                    progress.failed(name, _reason(exc))

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
                    progress.failed(str(item.path), _reason(exc))
            if not chunk:
                continue
            try:
                alphas = engine.predict([image for _, _, image in chunk])
            except Exception as exc:
                for item, _, _ in chunk:
                    progress.failed(str(item.path), f"matting failed: {_reason(exc)}")
                continue
            for (item, paths, image), alpha in zip(chunk, alphas):
                writes.append((str(item.path), pool.submit(write_outputs, image, alpha, paths, options)))
            drain(limit=2 * max(1, options.workers))
        drain(limit=0)
    return progress.close()


def _reason(exc: Exception) -> str:
    if isinstance(exc, P3MError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
