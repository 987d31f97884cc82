"""The three feature-interaction modules that join P3M-Net's two decoders.

- TFI (tripartite-feature integration) mixes the matting feature with the semantic
  feature and the encoder skip of the same level.
- sBFI (shallow bipartite-feature integration) lets the matting decoder see the
  full-resolution encoder feature ``e0`` again, for detail.
- dBFI (deep bipartite-feature integration) lets the semantic decoder see the
  deepest encoder feature ``e4`` again, and emits a deep-supervision side output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from p3m.models.blocks import conv1x1, conv3x3


def sample_max_2x2(x: torch.Tensor, stride: int) -> torch.Tensor:
    """``F.max_pool2d(x, kernel_size=2, stride=stride)``, computed from four strided views.

    The published sBFI samples e0 with a 2x2 max-pool at the block's stride (not a
    stride-sized window; the reference outputs pin this down). Taking the maximum of
    the four strided views reads only 4/stride^2 of e0, the largest feature map, and
    gives identical values.
    """
    h, w = (x.shape[-2] - 2) // stride + 1, (x.shape[-1] - 2) // stride + 1
    rows, cols = slice(0, (h - 1) * stride + 1, stride), slice(1, (h - 1) * stride + 2, stride)
    c0, c1 = slice(0, (w - 1) * stride + 1, stride), slice(1, (w - 1) * stride + 2, stride)
    top = torch.maximum(x[..., rows, c0], x[..., rows, c1])
    bottom = torch.maximum(x[..., cols, c0], x[..., cols, c1])
    return torch.maximum(top, bottom)


class _FuseConv(nn.Module):
    """concat -> 3x3 conv (no bias) -> BN -> ReLU, the shared tail of all three modules.

    Subclasses register their projections first and then call ``_add_fuse_layers``,
    so the state-dict order is that of the published checkpoints.
    """

    def _add_fuse_layers(self, in_channels: int, out_channels: int) -> None:
        self.conv1 = conv3x3(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def fuse(self, *features: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(torch.cat(features, dim=1))))


class TFI(_FuseConv):
    """Tripartite-feature integration at one matting-decoder level of ``channels``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # One projection shared by the three inputs, as in the published network.
        self.transform = conv1x1(channels, channels // 2)
        self._add_fuse_layers(3 * (channels // 2), channels)

    def forward(self, matting: torch.Tensor, semantic: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        project = self.transform
        return self.fuse(project(semantic), project(matting), project(encoder))


class SBFI(_FuseConv):
    """Shallow bipartite-feature integration: matting feature + pooled ``e0``."""

    def __init__(self, channels: int, shallow_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.transform1 = conv1x1(channels, channels // 2)
        self.transform2 = conv1x1(shallow_channels, channels // 2)
        self._add_fuse_layers(2 * (channels // 2), channels)

    def sample(self, e0: torch.Tensor) -> torch.Tensor:
        """``e0`` at this module's stride (what ``merge`` takes)."""
        return sample_max_2x2(e0, self.stride)

    def merge(self, matting: torch.Tensor, shallow: torch.Tensor) -> torch.Tensor:
        """The module on an already sampled ``shallow`` feature (tiles of the matting map can use it)."""
        return matting + self.fuse(self.transform1(matting), self.transform2(shallow))

    def forward(self, matting: torch.Tensor, e0: torch.Tensor) -> torch.Tensor:
        return self.merge(matting, self.sample(e0))


class DBFI(_FuseConv):
    """Deep bipartite-feature integration: semantic feature + upsampled ``e4``.

    Returns the refined semantic feature and a 3-class side output upsampled by
    ``side_scale`` to the input resolution (used only by the training loss).
    """

    def __init__(self, channels: int, deep_channels: int, stride: int, side_scale: int) -> None:
        super().__init__()
        self.stride = stride
        self.side_scale = side_scale
        self.transform1 = conv1x1(channels, channels // 2)
        self.transform2 = conv1x1(deep_channels, channels // 2)
        self._add_fuse_layers(2 * (channels // 2), channels)
        self.conv2 = conv3x3(channels, 3)

    def forward(self, semantic: torch.Tensor, e4: torch.Tensor, *, with_side: bool = True):
        deep = F.interpolate(self.transform2(e4), scale_factor=self.stride, mode="bilinear", align_corners=False)
        refined = semantic + self.fuse(self.transform1(semantic), deep)
        if not with_side:
            return refined, None
        side = F.interpolate(self.conv2(refined), scale_factor=self.side_scale, mode="bilinear", align_corners=False)
        return refined, side
