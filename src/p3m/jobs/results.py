"""What a job returns: one record per item with a status and a reason, and totals.

The command line prints these, the demo renders them, a service can return them as
JSON (``to_dict``); no layer reads back a file that a job wrote to learn what happened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """The outcome of one item of a job."""

    DONE = "done"            # every output written
    SKIPPED = "skipped"      # outputs existed already (resume)
    FAILED = "failed"        # bad input or an error; the reason says which
    HELD_BACK = "held-back"  # deliberately not written (fail closed), for review

    def __str__(self) -> str:
        return self.value


@dataclass
class ItemRecord:
    name: str                                  # the input as the user named it
    status: Status
    reason: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # kind -> path written
    frames: int | None = None                  # a video's frames done; None for an image
    warning: str = ""                          # done, but worth a look (no face found: maybe no person)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass
class JobResult:
    """Records in input order, and how long the job took."""

    records: list[ItemRecord] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def done(self) -> int:
        return self.count(Status.DONE)

    @property
    def skipped(self) -> int:
        return self.count(Status.SKIPPED)

    @property
    def failed(self) -> int:
        return self.count(Status.FAILED)

    @property
    def held_back(self) -> int:
        return self.count(Status.HELD_BACK)

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing was held back: exit status 0."""
        return not (self.failed or self.held_back)

    @property
    def failures(self) -> list[ItemRecord]:
        return [r for r in self.records if r.status in (Status.FAILED, Status.HELD_BACK)]

    def line(self) -> str:
        held = f", {self.held_back} held back" if self.held_back else ""
        warned = sum(bool(r.warning) for r in self.records if r.status == Status.DONE)
        held += f", {warned} to review (no face found)" if warned else ""
        return (f"{self.done} done, {self.skipped} skipped, {self.failed} failed{held} "
                f"in {self.seconds:.1f} s{self._rate()}")

    def _rate(self) -> str:
        """Seconds per image, frames per second for videos, or what a mixed run held."""
        done = [r for r in self.records if r.status == Status.DONE]
        videos = [r for r in done if r.frames is not None]
        frames = sum(r.frames for r in videos)
        if not done or self.seconds <= 0:
            return ""
        if not videos:
            return f" ({self.seconds / len(done):.2f} s per image)"
        if len(videos) == len(done):
            return f" ({frames} frames, {frames / self.seconds:.1f} frames/s)"
        return f" ({images_and_videos(len(done) - len(videos), len(videos), frames)})"

    def to_dict(self) -> dict[str, Any]:
        return {"totals": {s.value: self.count(s) for s in Status}, "seconds": round(self.seconds, 3),
                "items": [r.to_dict() for r in self.records]}


def images_and_videos(images: int, videos: int, frames: int | None = None) -> str:
    """"N image(s)", "V video(s)" (of F frames), or both: what a run's totals counted."""
    parts = [f"{images} image(s)"] if images or not videos else []
    if videos:
        parts.append(f"{videos} video(s)" + (f" of {frames} frames" if frames is not None else ""))
    return " and ".join(parts)


def _plain(value: Any) -> Any:
    """Enums to their values, recursively, for JSON."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def failure_reason(exc: BaseException) -> str:
    """A bad-input error's own message; anything else with its type, for a bug report."""
    from p3m.errors import P3MError

    return str(exc) if isinstance(exc, P3MError) else f"{type(exc).__name__}: {exc}"
