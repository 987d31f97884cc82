"""Small building blocks shared by every P3M-Net variant."""

from __future__ import annotations

from torch import nn


def conv3x3(in_channels: int, out_channels: int, *, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution that keeps the spatial size."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """Bias-free 1x1 projection, as used by the encoder shortcuts and TFI/sBFI/dBFI."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)


def conv_stack(channels: list[int], *, plain_last: bool = False, upsample: bool = False) -> nn.Sequential:
    """A decoder block: 3x3 conv-BN-ReLU for each step of ``channels``.

    ``channels=[512, 512, 512, 256]`` gives three layers 512->512->512->256. With
    ``plain_last`` the last convolution stands alone (the semantic head's logits).
    With ``upsample`` a 2x bilinear upsampling closes the block. The layer indices
    inside the Sequential are those of the published checkpoints.
    """
    layers: list[nn.Module] = []
    steps = list(zip(channels[:-1], channels[1:]))
    for i, (cin, cout) in enumerate(steps):
        layers.append(conv3x3(cin, cout, bias=True))
        if plain_last and i == len(steps) - 1:
            break
        layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if upsample:
        layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
    return nn.Sequential(*layers)
