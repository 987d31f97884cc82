"""One interface for everything that turns portraits into alpha mattes.

The command line and the benchmark talk to a :class:`MattingEngine` and never ask
which kind it is; a P3M network with a test strategy is one kind
(:class:`NetworkEngine`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from typing import Sequence

import numpy as np
import torch
from torch import nn

from p3m.inference.strategies import StrategyRunner
from p3m.io.images import DEFAULT_MAX_PIXELS, ImageLike, load_image
from p3m.utils.device import resolve_device


class MattingEngine(ABC):
    """Predicts float32 H x W alpha mattes in [0, 1] for RGB uint8 images."""

    #: Human-readable description: what runs and with which weights.
    description: str = "matting engine"

    @abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One alpha per image, each the size of its image."""


class NetworkEngine(MattingEngine):
    """A P3M-style network run with RESIZE or HYBRID; same-size images share a forward pass."""

    def __init__(self, model: nn.Module, *, method: str = "hybrid", max_size: int = 1600,
                 sizing: str = "aspect", device=None, precision: str = "fp32",
                 batch_size: int = 1, description: str | None = None) -> None:
        if device is not None:
            model = model.to(resolve_device(device))
        self.runner = StrategyRunner(model.eval(), method=method, max_size=max_size, sizing=sizing,
                                     precision=precision)
        self.batch_size = max(1, batch_size)
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


def predict_alpha(model: nn.Module | MattingEngine, image: ImageLike, *, method: str = "hybrid", max_size: int = 1600,
                  sizing: str = "aspect", device: str | torch.device | None = None,
                  precision: str = "fp32", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Alpha matte (float32 H x W in [0, 1], the image's size) of one portrait.

    ``image``: H x W x 3 uint8 RGB array, PIL image or path. ``model``: any network
    following the P3M-Net output convention, or any :class:`MattingEngine` (such as the
    default engine). ``device=None`` keeps the model where it is; otherwise the model
    is moved there.
    """
    rgb = load_image(image, max_pixels=max_pixels)
    if isinstance(model, MattingEngine):
        return model.predict([rgb])[0]
    engine = NetworkEngine(model, method=method, max_size=max_size, sizing=sizing, device=device,
                           precision=precision)
    return engine.predict([rgb])[0]
