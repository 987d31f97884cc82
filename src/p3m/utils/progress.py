"""Progress for batch commands: a bar with ETA on a terminal, plain lines otherwise,
and the closing summary (done, skipped, failed, time per image)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.done if self.done else 0.0

    def line(self) -> str:
        return (f"{self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s"
                + (f" ({self.seconds_per_image:.2f} s per image)" if self.done else ""))


class BatchProgress:
    """Counts outcomes and shows them; failures always get their own line."""

    def __init__(self, total: int, desc: str, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.summary = BatchSummary()
        self._start = time.perf_counter()
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="img", file=self.stream, dynamic_ncols=True)

    def _emit(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def _advance(self, name: str, status: str) -> None:
        count = self.summary.done + self.summary.skipped + self.summary.failed
        if self._bar is not None:
            self._bar.update(1)
        elif status != "failed":
            self._emit(f"[{count}/{self.total}] {status} {name}")

    def done(self, name: str) -> None:
        self.summary.done += 1
        self._advance(name, "done")

    def skipped(self, name: str) -> None:
        self.summary.skipped += 1
        self._advance(name, "skipped (exists)")

    def failed(self, name: str, reason: str, *, counted: bool = True) -> None:
        """Report a failure; ``counted=False`` for inputs outside the total (bad specs)."""
        self.summary.failed += 1
        self.summary.failures.append((name, reason))
        self._emit(f"p3m: failed: {reason}" if reason.startswith(name) else f"p3m: failed: {name}: {reason}")
        if counted:
            self._advance(name, "failed")

    def close(self) -> BatchSummary:
        if self._bar is not None:
            self._bar.close()
        self.summary.seconds = time.perf_counter() - self._start
        return self.summary
