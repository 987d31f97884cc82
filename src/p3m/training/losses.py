"""The published P3M-Net training losses, one function each.

- semantic: cross-entropy of the global logits against the trimap classes, plus the
  same on the three dBFI side outputs: side2 + side1 + side0 + 3 * global.
- local (matting) output: an alpha loss sqrt((p - g)^2 + 1e-12) averaged over the
  unknown region, plus a Laplacian-pyramid loss on the unknown region.
- fusion output: the same two losses over the whole image, plus the composition loss
  sqrt((alpha F + (1 - alpha) B - I)^2 + 1e-12) on normalised colours.
- total = semantic / 6 + 2 * local + 3 * fusion + composition (weights configurable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from p3m.models.outputs import TRANSITION, P3MOutput
from p3m.training.config import LossWeights

EPS = 1e-12


def cross_entropy(logits: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; ``trimap`` holds classes 0/1/2 (N x 1 x H x W or N x H x W)."""
    return F.cross_entropy(logits, trimap.reshape(trimap.shape[0], *logits.shape[2:]).long())


def semantic_loss(output: P3MOutput, trimap: torch.Tensor) -> torch.Tensor:
    """side2 + side1 + side0 + 3 * global (side outputs absent without dBFI)."""
    total = 3 * cross_entropy(output.global_logits, trimap)
    for side in (output.side2, output.side1, output.side0):
        if side is not None:
            total = total + cross_entropy(side, trimap)
    return total


def alpha_loss(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """sqrt((p - g)^2 + 1e-12), averaged over the pixels where ``weight`` is 1 (all if None)."""
    err = torch.sqrt((pred - gt) ** 2 + EPS)
    if weight is None:
        return err.mean()
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


def gaussian_kernel(size: int = 5, sigma: float = 1.0, *, device=None, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def laplacian_pyramid(x: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
    """Band-pass levels (x - blur(x), then halve the blurred image) plus the residual."""
    kernel = gaussian_kernel(device=x.device, dtype=x.dtype)
    pyramid, current = [], x
    for _ in range(levels):
        blurred = F.conv2d(F.pad(current, (2, 2, 2, 2), mode="replicate"), kernel)
        pyramid.append(current - blurred)
        current = F.avg_pool2d(blurred, 2)
    pyramid.append(current)
    return pyramid


def laplacian_loss(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None,
                   levels: int = 5) -> torch.Tensor:
    """Sum over pyramid levels of the mean L1 difference; inputs masked by ``weight``."""
    if weight is not None:
        pred, gt = pred * weight, gt * weight
    return sum(F.l1_loss(a, b) for a, b in zip(laplacian_pyramid(pred, levels), laplacian_pyramid(gt, levels)))


def composition_loss(alpha: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """mean sqrt((alpha F + (1 - alpha) B - I)^2 + 1e-12) over pixels and channels."""
    composite = alpha * fg + (1 - alpha) * bg
    return torch.sqrt((composite - image) ** 2 + EPS).mean()


def p3m_loss(output: P3MOutput, batch: dict, weights: LossWeights | None = None,
             composition: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """The total training loss and each term (for logging); published weights by default."""
    weights = weights or LossWeights()
    alpha, trimap = batch["alpha"], batch["trimap"]
    unknown = (trimap == TRANSITION).float()
    terms = {
        "semantic": semantic_loss(output, trimap),
        "local_alpha": alpha_loss(output.local_alpha, alpha, unknown),
        "local_laplacian": laplacian_loss(output.local_alpha, alpha, unknown),
        "fusion_alpha": alpha_loss(output.fusion_alpha, alpha),
        "fusion_laplacian": laplacian_loss(output.fusion_alpha, alpha),
    }
    total = (weights.semantic * terms["semantic"]
             + weights.local * (terms["local_alpha"] + terms["local_laplacian"])
             + weights.fusion * (terms["fusion_alpha"] + terms["fusion_laplacian"]))
    if composition:
        terms["composition"] = composition_loss(output.fusion_alpha, batch["fg"], batch["bg"], batch["image"])
        total = total + weights.composition * terms["composition"]
    terms["total"] = total
    return total, {k: float(v.detach()) for k, v in terms.items()}
