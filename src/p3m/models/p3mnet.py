"""P3M-Net with the ResNet-34-mp encoder (ACM MM 2021).

A shared encoder feeds a semantic decoder (global trimap-like logits) and a matting
decoder (local alpha in the transition area); TFI, sBFI and dBFI join them. The
published checkpoints keep every module at the top level (``resnet``, ``encoder0``..
``encoder4`` aliases of the ResNet stages, ``tfi_3``, ``decoder4_g``, ...), so this
network *is* a :class:`P3MDecoder` with the encoder registered before it. Each
interaction module can be switched off for the paper's ablation; with all three off
the network is the paper's BASIC baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from p3m.models.decoder import R34_DECODER, EncoderDecoderForward, P3MDecoder
from p3m.models.features import EncoderFeatures
from p3m.models.resnet_mp import ResNetMP


class P3MNet(EncoderDecoderForward, P3MDecoder):
    """P3M-Net (ResNet-34-mp). Forward returns :class:`P3MOutput`."""

    def __init__(self, *, tfi: bool = True, sbfi: bool = True, dbfi: bool = True) -> None:
        nn.Module.__init__(self)
        self.resnet = ResNetMP()
        # Aliases under which the published network registered the encoder stages.
        r = self.resnet
        self.encoder0 = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.encoder1 = nn.Sequential(r.layer1)
        self.encoder2 = r.layer2
        self.encoder3 = r.layer3
        self.encoder4 = r.layer4
        self._build_decoder(R34_DECODER, tfi=tfi, sbfi=sbfi, dbfi=dbfi)

    @property
    def p3m_decoder(self) -> P3MDecoder:
        return self

    def encode(self, x: torch.Tensor) -> EncoderFeatures:
        return self.resnet.forward_features(x)
