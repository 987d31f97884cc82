"""The P3M-Net training losses, exactly as the authors' code computes them by default.

Inputs follow the published data: alpha ``A`` and trimap ``T`` in 0..255 (floats, N x 1
x H x W), predictions ``P`` in [0, 1], image/fg/bg normalised.

- semantic: cross-entropy against the trimap's classes (255 -> 2, 0 -> 0, any other
  value > 2 -> 1; 1 and 2 stay themselves), side2 + side1 + side0 + 3 * global.
- local output: the alpha loss on the unknown region (``T == 128`` exactly) and the
  Laplacian loss of prediction and target multiplied by that region.
- fusion output: the alpha and Laplacian losses over the whole image, plus the
  composition loss sqrt((P F + (1 - P) B - I)^2 + 1e-12).
- total = semantic / 6 + 2 * local + 3 * fusion + composition.

The rules where the published code has a quirk (its Laplacian kernel is not a
Gaussian, its epsilon sits under the root for every pixel, its composition loss is
three times a mean) are :class:`~p3m.training.recipe.Recipe` switches; the published
choice is the default. ``tests/test_losses.py`` checks every term, the total and two
gradients against the reference computed with the authors' code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from p3m.models.classes import TRIMAP_FOREGROUND, TRIMAP_UNKNOWN
from p3m.models.outputs import P3MOutput
from p3m.training.config import LossWeights
from p3m.training.recipe import PUBLISHED, Recipe

EPS = 1e-12


def trimap_classes(trimap: torch.Tensor) -> torch.Tensor:
    """The published class rule, in its order: 255 -> 2, then 0 -> 0, then any value
    above 2 -> 1. Values 1 and 2 (from a bilinearly resized trimap) stay 1 and 2."""
    classes = trimap.clone()
    classes[classes == TRIMAP_FOREGROUND] = 2
    classes[classes > 2] = 1
    return classes.reshape(trimap.shape[0], *trimap.shape[-2:]).long()


def cross_entropy(logits: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the logits against the classes of a 0..255 trimap."""
    return F.cross_entropy(logits, trimap_classes(trimap))


def semantic_loss(output: P3MOutput, trimap: torch.Tensor) -> torch.Tensor:
    """side2 + side1 + side0 + 3 * global (side outputs absent without dBFI)."""
    total = 3 * cross_entropy(output.global_logits, trimap)
    for side in (output.side2, output.side1, output.side0):
        if side is not None:
            total = total + cross_entropy(side, trimap)
    return total


def alpha_loss(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None, *,
               rule: str = "published") -> torch.Tensor:
    """sqrt((p - g)^2 + 1e-12): the mean over all pixels, or over the ``weight`` region.

    On a region, the published rule is sum(sqrt(((p - g) w)^2 + 1e-12)) / (sum(w) + 1)
    (every pixel adds its 1e-6, also outside); ``"masked-mean"`` averages over the
    region's pixels only.
    """
    if weight is None:
        return torch.sqrt((pred - gt) ** 2 + EPS).mean()
    if rule == "published":
        return torch.sqrt(((pred - gt) * weight) ** 2 + EPS).sum() / (weight.sum() + 1)
    return (torch.sqrt((pred - gt) ** 2 + EPS) * weight).sum() / weight.sum().clamp_min(1.0)


def published_kernel() -> np.ndarray:
    """The authors' 5 x 5 "Gaussian": e(dx) + e(dy) with e(d) = exp(-d^2 / 2)^2, normalised
    to sum 1 (a sum of two 1-D terms, not their product; centre 0.1128)."""
    e = np.exp(-np.arange(-2, 3, dtype=np.float64) ** 2 / 2) ** 2
    kernel = e[None, :] + e[:, None]
    return kernel / kernel.sum()


def gaussian_kernel() -> np.ndarray:
    """A true 5 x 5 Gaussian, sigma 1, normalised (the ``"gaussian"`` rule)."""
    g = np.exp(-np.arange(-2, 3, dtype=np.float64) ** 2 / 2)
    g = g / g.sum()
    return g[:, None] * g[None, :]


_KERNELS = {"published": published_kernel, "gaussian": gaussian_kernel}


def laplacian_pyramid(x: torch.Tensor, levels: int = 5, *, kernel: str = "published") -> list[torch.Tensor]:
    """Band-pass levels (x - blur(x), then halve the blurred image) plus the residual."""
    weights = torch.from_numpy(_KERNELS[kernel]()).to(x.device, x.dtype).view(1, 1, 5, 5)
    pyramid, current = [], x
    for _ in range(levels):
        blurred = F.conv2d(F.pad(current, (2, 2, 2, 2), mode="replicate"), weights)
        pyramid.append(current - blurred)
        current = F.avg_pool2d(blurred, 2)
    pyramid.append(current)
    return pyramid


def laplacian_loss(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None, levels: int = 5, *,
                   kernel: str = "published") -> torch.Tensor:
    """Sum over pyramid levels of the mean L1 difference; inputs masked by ``weight``."""
    if weight is not None:
        pred, gt = pred * weight, gt * weight
    return sum(F.l1_loss(a, b) for a, b in zip(laplacian_pyramid(pred, levels, kernel=kernel),
                                               laplacian_pyramid(gt, levels, kernel=kernel)))


def composition_loss(alpha: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, image: torch.Tensor, *,
                     rule: str = "published") -> torch.Tensor:
    """sqrt((alpha F + (1 - alpha) B - I)^2 + 1e-12) summed over the three channels and
    divided by N*1*H*W (published: three times a mean), or its mean (``"mean"``)."""
    composite = alpha * fg + (1 - alpha) * bg
    error = torch.sqrt((composite - image) ** 2 + EPS)
    return error.sum() / alpha.numel() if rule == "published" else error.mean()


def p3m_loss(output: P3MOutput, batch: dict, weights: LossWeights | None = None, composition: bool = True,
             recipe: Recipe = PUBLISHED) -> tuple[torch.Tensor, dict[str, float]]:
    """The total training loss and each term (for logging); published weights and rules by default.

    ``batch["alpha"]`` and ``batch["trimap"]`` are 0..255 (as the published data hands them).
    """
    weights = weights or LossWeights()
    trimap, gt = batch["trimap"], batch["alpha"] / 255.0
    unknown = (trimap == TRIMAP_UNKNOWN).to(gt.dtype)
    kernel = recipe.laplacian_kernel
    terms = {
        "semantic": semantic_loss(output, trimap),
        "local_alpha": alpha_loss(output.local_alpha, gt, unknown, rule=recipe.alpha_loss),
        "local_laplacian": laplacian_loss(output.local_alpha, gt, unknown, kernel=kernel),
        "fusion_alpha": alpha_loss(output.fusion_alpha, gt),
        "fusion_laplacian": laplacian_loss(output.fusion_alpha, gt, kernel=kernel),
    }
    total = (weights.semantic * terms["semantic"]
             + weights.local * (terms["local_alpha"] + terms["local_laplacian"])
             + weights.fusion * (terms["fusion_alpha"] + terms["fusion_laplacian"]))
    if composition:
        terms["composition"] = composition_loss(output.fusion_alpha, batch["fg"], batch["bg"], batch["image"],
                                                rule=recipe.composition)
        total = total + weights.composition * terms["composition"]
    terms["total"] = total
    return total, {k: float(v.detach()) for k, v in terms.items()}
