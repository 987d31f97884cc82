"""The output convention every P3M-Net variant follows, and the fusion rule."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from p3m.models.classes import BACKGROUND, FOREGROUND, TRANSITION

__all__ = ["BACKGROUND", "FOREGROUND", "TRANSITION", "P3MOutput", "fuse_global_local"]


class P3MOutput(NamedTuple):
    """The six outputs of P3M-Net, in the published order (unpacks as a 6-tuple).

    ``side2``/``side1``/``side0`` are ``None`` for a model built without dBFI.
    """

    global_logits: torch.Tensor
    local_alpha: torch.Tensor
    fusion_alpha: torch.Tensor
    side2: Optional[torch.Tensor]
    side1: Optional[torch.Tensor]
    side0: Optional[torch.Tensor]


def fuse_global_local(global_logits: torch.Tensor, local_alpha: torch.Tensor) -> torch.Tensor:
    """Local alpha where the global branch says transition, 1 for foreground, 0 for background."""
    classes = global_logits.argmax(dim=1, keepdim=True)
    fused = torch.where(classes == TRANSITION, local_alpha, torch.zeros_like(local_alpha))
    return torch.where(classes == FOREGROUND, torch.ones_like(local_alpha), fused)
