"""Showing a job's progress: a bar with ETA on a terminal, plain lines otherwise.

Jobs report each finished item to a :class:`Progress`; the library's default shows
nothing, the command line passes a :class:`TerminalProgress`. Failures always get
their own line with the reason.
"""

from __future__ import annotations

import sys
import time

from p3m.jobs.results import ItemRecord, Status
from p3m.utils.progress import progress_bar

#: Seconds between two "frame N/M, F frames/s, ETA" lines of a video.
FRAMES_LINE_SECONDS = 5.0


class Progress:
    """Receives a job's items as they finish; shows nothing."""

    def start(self, total: int, desc: str) -> None:
        pass

    def record(self, item: ItemRecord) -> None:
        pass

    def frames(self, name: str, done: int, total: int, seconds: float) -> None:
        """Within one video: ``done`` frames of ``total`` (0: unknown) in ``seconds``."""

    def close(self) -> None:
        pass


class TerminalProgress(Progress):
    """A bar (or a line per item off a terminal), a line per failure; ``quiet``: the
    failures' lines only."""

    def __init__(self, stream=None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._bar = None
        self.total = self.count = 0
        self._last_frames_line = time.monotonic()

    def start(self, total: int, desc: str) -> None:
        self.total, self.count = total, 0
        bar = None if self.quiet else progress_bar(total, desc, "item", self.stream)
        self._bar = None if bar is None or bar.disable else bar

    def _emit(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def record(self, item: ItemRecord) -> None:
        self.count += 1
        if item.status in (Status.FAILED, Status.HELD_BACK):
            reason = item.reason
            self._emit(f"p3m: {item.status}: {reason}" if reason.startswith(item.name)
                       else f"p3m: {item.status}: {item.name}: {reason}")
        elif item.warning:  # written, but worth a look: shown even when quiet
            self._emit(f"p3m: warning: {item.name}: {item.warning}")
        if self._bar is not None:
            self._bar.update(1)
        elif item.status not in (Status.FAILED, Status.HELD_BACK) and not self.quiet:
            label = "skipped (exists)" if item.status == Status.SKIPPED else str(item.status)
            self._emit(f"[{self.count}/{self.total}] {label} {item.name}")

    def frames(self, name: str, done: int, total: int, seconds: float) -> None:
        """A status line every few seconds: frames, frames/s and the time left."""
        now = time.monotonic()
        if self.quiet or now - self._last_frames_line < FRAMES_LINE_SECONDS:
            return
        self._last_frames_line = now
        rate = done / seconds if seconds > 0 else 0.0
        of = f"/{total} ({done / total:.0%})" if total else ""
        eta = f", ETA {max(0.0, (total - done) / rate):.0f} s" if total and rate else ""
        self._emit(f"p3m: {name}: frame {done}{of}, {rate:.1f} frames/s{eta}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class FrameCount(Progress):
    """Passes everything on to ``inner`` and keeps the frames done of the current video."""

    def __init__(self, inner: Progress | None) -> None:
        self.inner, self.done = inner, 0

    def start(self, total: int, desc: str) -> None:
        if self.inner is not None:
            self.inner.start(total, desc)

    def record(self, item: ItemRecord) -> None:
        if self.inner is not None:
            self.inner.record(item)

    def frames(self, name: str, done: int, total: int, seconds: float) -> None:
        self.done = done
        if self.inner is not None:
            self.inner.frames(name, done, total, seconds)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
