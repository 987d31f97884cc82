"""A P3M network run with the published RESIZE or HYBRID strategy, as a matting engine."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from torch import nn

from p3m.inference.engine import MattingEngine
from p3m.inference.strategies import StrategyRunner
from p3m.utils.device import resolve_device


class NetworkEngine(MattingEngine):
    """A P3M-style network run with RESIZE or HYBRID; same-size images share a forward pass."""

    def __init__(self, model: nn.Module, *, method: str = "hybrid", max_size: int = 1600,
                 sizing: str = "aspect", device=None, precision: str = "fp32",
                 batch_size: int = 1, description: str | None = None, weights=None) -> None:
        if device is not None:
            model = model.to(resolve_device(device))
        self.runner = StrategyRunner(model.eval(), method=method, max_size=max_size, sizing=sizing,
                                     precision=precision)
        self.batch_size = max(1, batch_size)
        self.weights = weights
        arch = getattr(model, "arch_config", {}).get("arch", type(model).__name__)
        self.description = description or f"{arch} ({method.upper()}, {sizing} sizing, {self.runner.device})"

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        by_size: dict[tuple, list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_size[image.shape].append(i)
        alphas: list[np.ndarray | None] = [None] * len(images)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                for i, alpha in zip(chunk, self.runner.run(np.stack([images[i] for i in chunk]))):
                    alphas[i] = alpha
        return alphas  # type: ignore[return-value]

