"""ResNet-34-mp: the P3M-Net encoder.

A ResNet-34 whose stem convolution keeps full resolution (7x7, stride 1) and whose
every downsampling is a separate 3x3 max-pool that also returns its indices, so the
matting decoder can unpool to the exact pixel each maximum came from. The residual
stages never stride. Attribute names follow the published checkpoints
(``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``).
"""

from __future__ import annotations

import torch
from torch import nn

from p3m.models.blocks import conv1x1, conv3x3
from p3m.models.features import EncoderFeatures

RESNET34_LAYERS = (3, 4, 6, 3)
STAGE_CHANNELS = (64, 64, 128, 256, 512)


class BasicBlock(nn.Module):
    """The two-convolution residual block of ResNet-18/34 (never strides here)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        # Two ReLUs, not one used twice: a ReLU that is a convolution's alone can be fused
        # into it for inference (p3m.inference.fusion). ReLUs hold no state: the
        # checkpoints do not change.
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if in_channels != channels:
            self.downsample = nn.Sequential(conv1x1(in_channels, channels), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _index_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1, return_indices=True)


class ResNetMP(nn.Module):
    """ResNet with max-pool downsampling (the "mp" variant used by P3M-Net)."""

    def __init__(self, layers: tuple[int, ...] = RESNET34_LAYERS, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=1, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool1 = _index_pool()
        self.maxpool2 = _index_pool()
        self.maxpool3 = _index_pool()
        self.maxpool4 = _index_pool()
        self.maxpool5 = _index_pool()
        widths = STAGE_CHANNELS[1:]
        in_channels = STAGE_CHANNELS[0]
        for stage, (width, depth) in enumerate(zip(widths, layers), start=1):
            setattr(self, f"layer{stage}", self._make_stage(in_channels, width, depth))
            in_channels = width
        # The ImageNet classifier is kept only so that published checkpoints load
        # strictly; matting never uses it.
        self.fc = nn.Linear(in_channels, num_classes)

    @staticmethod
    def _make_stage(in_channels: int, channels: int, depth: int) -> nn.Sequential:
        blocks = [BasicBlock(in_channels, channels)]
        blocks += [BasicBlock(channels, channels) for _ in range(depth - 1)]
        return nn.Sequential(*blocks)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def forward_features(self, x: torch.Tensor) -> EncoderFeatures:
        """Run the encoder, keeping every skip feature and pool index.

        e0 (full resolution) feeds sBFI; TFI mixes in e3, e2, e1 and e0 pooled once
        (1/16, 1/8, 1/4, 1/2); e4 (1/32) starts both decoders.
        """
        indices, sizes = [], []

        def pool(layer: nn.MaxPool2d, t: torch.Tensor) -> torch.Tensor:
            sizes.append(t.shape[-2:])
            pooled, idx = layer(t)
            indices.append(idx)
            return pooled

        e0 = self.stem(x)
        e0p = pool(self.maxpool1, e0)
        e1 = self.layer1(pool(self.maxpool2, e0p))
        e2 = self.layer2(pool(self.maxpool3, e1))
        e3 = self.layer3(pool(self.maxpool4, e2))
        e4 = self.layer4(pool(self.maxpool5, e3))
        return EncoderFeatures(e0, (e3, e2, e1, e0p), e4, tuple(indices), tuple(sizes))

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        return self.forward_features(x)
