"""A P3M network run with the published RESIZE or HYBRID strategy, as a matting engine."""

from __future__ import annotations

import numpy as np
from torch import nn

from p3m.inference.engine import BatchingEngine
from p3m.inference.strategies import StrategyRunner
from p3m.utils.device import resolve_device


class NetworkEngine(BatchingEngine):
    """A P3M-style network run with RESIZE or HYBRID; same-size images share a forward pass.

    On the CPU it sets the process's allocator to keep freed memory for the next image
    (p3m.utils.memory; ``P3M_KEEP_FREED_MEMORY=0`` before opening refuses it).
    """

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
        precision = "" if self.runner.precision == "fp32" else f", {self.runner.precision}"
        self.description = description or f"{arch} ({method.upper()}, {sizing} sizing, {self.runner.device}{precision})"

    def run(self, images: np.ndarray) -> np.ndarray:
        return self.runner.run(images)
