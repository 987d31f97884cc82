"""One interface for everything that turns portraits into alpha mattes.

Jobs, the command line and the benchmark talk to a :class:`MattingEngine` and never
ask which kind it is. :func:`p3m.inference.factory.open_engine` is the one place that
decides which engine runs. This module imports no torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np


from p3m.options import METHODS, PRECISIONS  # noqa: F401  (re-exported: the engines check against them)


class MattingEngine(ABC):
    """Predicts float32 H x W alpha mattes in [0, 1] for RGB uint8 images."""

    #: What runs, for people: network, strategy, device.
    description: str = "matting engine"
    #: The weights file it runs, if any.
    weights: Path | None = None
    #: Why the factory picked it (e.g. what "auto" found); empty when asked for by name.
    reason: str = ""

    @abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One alpha per image, each the size of its image."""

    def summary(self, verbose: bool = True) -> str:
        """One line: what runs, from which weights (``verbose``), and why it was picked."""
        text = self.description + (f", weights {self.weights}" if self.weights and verbose else "")
        return f"{text} ({self.reason})" if self.reason else text


class BatchingEngine(MattingEngine):
    """An engine that runs same-size images together, ``batch_size`` at a time."""

    batch_size: int = 1

    @abstractmethod
    def run(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 (one size) -> float32 N x H x W alphas in [0, 1]."""

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        import numpy as np

        by_size: dict[tuple, list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_size[image.shape].append(i)
        alphas: list[np.ndarray | None] = [None] * len(images)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                for i, alpha in zip(chunk, self.run(np.stack([images[i] for i in chunk]))):
                    alphas[i] = alpha
        return alphas  # type: ignore[return-value]
