"""A fixture network whose global prediction is a given trimap.

The fixture weights are untrained: their global output is noise, unknown in scattered
pixels all over the image, where a trained P3M-Net leaves a compact band around the
person. HYBRID's second pass depends on that band (its last layers run only there), so
tests and benchmarks that want to see HYBRID as it runs with trained weights wrap the
fixture network in :class:`GivenTrimap`: every layer still runs, only the values of
the global logits are replaced.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from p3m.models.classes import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND
from p3m.models.outputs import BACKGROUND, FOREGROUND, TRANSITION, fuse_global_local


class GivenTrimap(nn.Module):
    """``model`` with its global classes taken from ``trimap`` (H x W, 0/128/255)."""

    def __init__(self, model: nn.Module, trimap: np.ndarray) -> None:
        super().__init__()
        self.model = model
        classes = np.full(trimap.shape, TRANSITION, np.int64)
        classes[trimap == TRIMAP_BACKGROUND] = BACKGROUND
        classes[trimap == TRIMAP_FOREGROUND] = FOREGROUND
        self.register_buffer("classes", torch.from_numpy(classes), persistent=False)

    def _logits(self, like: torch.Tensor) -> torch.Tensor:
        """Logits of the trimap's classes at ``like``'s size (nearest), with ``like``'s cost already paid."""
        n, c, h, w = like.shape
        classes = F.interpolate(self.classes[None, None].float(), size=(h, w), mode="nearest")[:, 0].long()
        return F.one_hot(classes, c).permute(0, 3, 1, 2).to(like.dtype).expand(n, -1, -1, -1) * 10.0

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        logits = self._logits(out[0])
        return (logits, out[1], fuse_global_local(logits, out[1]), *out[3:])

    def forward_global(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(self.model.forward_global(x))

    def forward_local(self, x: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.forward_local(x, region=region)


def ellipse_trimap(height: int, width: int, band: int) -> np.ndarray:
    """A compact trimap (0/128/255): a foreground ellipse in an unknown band ``band`` px wide."""
    yy, xx = np.mgrid[0:height, 0:width]
    radius = 0.3 * min(height, width)
    r = np.hypot((yy - height * 0.45) / (height * 0.3), (xx - width * 0.5) / (width * 0.3)) * radius
    return np.where(r < radius - band, 255, np.where(r < radius + band, 128, 0)).astype(np.uint8)
