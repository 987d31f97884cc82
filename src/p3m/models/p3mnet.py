"""P3M-Net with the ResNet-34-mp encoder (ACM MM 2021).

A shared encoder feeds a semantic decoder (global trimap-like logits) and a matting
decoder (local alpha in the transition area); TFI, sBFI and dBFI join them. Module
names are those of the published checkpoints, so ``state_dict()`` has exactly the
released keys, including the ``encoder0``..``encoder4`` aliases of the ResNet stages.
Each interaction module can be switched off for the paper's ablation; with all
three off the network is the paper's BASIC baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from p3m.models.blocks import conv3x3, conv_stack
from p3m.models.interaction import DBFI, SBFI, TFI
from p3m.models.outputs import P3MOutput, fuse_global_local
from p3m.models.resnet_mp import EncoderFeatures, ResNetMP

# Channels of the five decoder levels, deepest first: (input, output) of each block.
_LEVELS = ((512, 256), (256, 128), (128, 64), (64, 64), (64, 64))


class P3MNet(nn.Module):
    """P3M-Net (ResNet-34-mp). Forward returns :class:`P3MOutput`."""

    def __init__(self, *, tfi: bool = True, sbfi: bool = True, dbfi: bool = True) -> None:
        super().__init__()
        self.use_tfi, self.use_sbfi, self.use_dbfi = tfi, sbfi, dbfi

        self.resnet = ResNetMP()
        # Aliases under which the published network registered the encoder stages.
        r = self.resnet
        self.encoder0 = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.encoder1 = nn.Sequential(r.layer1)
        self.encoder2 = r.layer2
        self.encoder3 = r.layer3
        self.encoder4 = r.layer4

        if tfi:  # at 1/16, 1/8, 1/4, 1/2
            self.tfi_3, self.tfi_2, self.tfi_1, self.tfi_0 = TFI(256), TFI(128), TFI(64), TFI(64)
        if sbfi:  # at 1/8, 1/4, 1/2; e0 pooled by the block's stride
            self.sbfi_2, self.sbfi_1, self.sbfi_0 = SBFI(128, 64, 8), SBFI(64, 64, 4), SBFI(64, 64, 2)
        if dbfi:  # at 1/8, 1/4, 1/2; e4 upsampled from 1/32, side output to full size
            self.dbfi_2, self.dbfi_1, self.dbfi_0 = DBFI(128, 512, 4, 8), DBFI(64, 512, 8, 4), DBFI(64, 512, 16, 2)

        # Semantic decoder: three conv-BN-ReLU per level, 2x bilinear upsampling.
        (c4, o4), (c3, o3), (c2, o2), (c1, o1), (c0, _) = _LEVELS
        self.decoder4_g = conv_stack([c4, c4, c4, o4], upsample=True)
        self.decoder3_g = conv_stack([c3, c3, c3, o3], upsample=True)
        self.decoder2_g = conv_stack([c2, c2, c2, o2], upsample=True)
        self.decoder1_g = conv_stack([c1, c1, c1, o1], upsample=True)
        self.decoder0_g = conv_stack([c0, c0, c0, 3], plain_last=True, upsample=True)
        # Matting decoder: the same blocks, upsampled by max-unpooling instead.
        self.decoder4_l = conv_stack([c4, c4, c4, o4])
        self.decoder3_l = conv_stack([c3, c3, c3, o3])
        self.decoder2_l = conv_stack([c2, c2, c2, o2])
        self.decoder1_l = conv_stack([c1, c1, c1, o1])
        self.decoder0_l = conv_stack([c0, c0, c0])  # two layers: the final conv follows
        self.decoder_final_l = conv3x3(c0, 1, bias=True)

    # -- the three parts -------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> EncoderFeatures:
        return self.resnet.forward_features(x)

    def decode_semantic(self, enc: EncoderFeatures, *, matting_only: bool = False,
                        with_sides: bool = True) -> tuple[list[torch.Tensor], list]:
        """Semantic decoder. Returns the block outputs (1/16, 1/8, 1/4, 1/2, logits) and side outputs.

        With ``matting_only`` it stops once it has the features TFI needs (1/16..1/2):
        what the local alpha alone requires. Side outputs are computed only with
        ``with_sides`` and never with ``matting_only``.
        """
        with_sides = with_sides and not matting_only
        blocks = (self.decoder4_g, self.decoder3_g, self.decoder2_g, self.decoder1_g, self.decoder0_g)
        dbfis = (None, "dbfi_2", "dbfi_1", "dbfi_0", None)
        features, sides = [], []
        x = enc.e4
        for level, (block, dbfi) in enumerate(zip(blocks, dbfis)):
            x = block(x)
            # TFI sees each block's output before dBFI refines it (as published).
            features.append(x)
            if matting_only and level == 3:
                break
            if dbfi is not None:
                side = None
                if self.use_dbfi:
                    x, side = getattr(self, dbfi)(x, enc.e4, with_side=with_sides)
                sides.append(side)
        return features, sides

    def decode_matting(self, enc: EncoderFeatures, semantic: list[torch.Tensor]) -> torch.Tensor:
        """Matting decoder; returns the local alpha after the sigmoid."""
        blocks = (self.decoder4_l, self.decoder3_l, self.decoder2_l, self.decoder1_l, self.decoder0_l)
        skips = (enc.e3, enc.e2, enc.e1, enc.e0p)  # encoder feature at each TFI level
        tfis = ("tfi_3", "tfi_2", "tfi_1", "tfi_0")
        sbfis = (None, "sbfi_2", "sbfi_1", "sbfi_0")
        x = enc.e4
        for level, block in enumerate(blocks):
            pool = 4 - level  # the pool this level undoes
            x = F.max_unpool2d(
                block(x), enc.indices[pool], kernel_size=2, stride=2, output_size=enc.sizes[pool]
            )
            if level == len(blocks) - 1:
                break
            if self.use_tfi:
                x = getattr(self, tfis[level])(x, semantic[level], skips[level])
            if self.use_sbfi and sbfis[level] is not None:
                x = getattr(self, sbfis[level])(x, enc.e0)
        return torch.sigmoid(self.decoder_final_l(x))

    # -- public entry points -------------------------------------------------------
    def forward_global(self, x: torch.Tensor) -> torch.Tensor:
        """Global logits only: skips the matting decoder and side outputs (HYBRID's first pass)."""
        semantic, _ = self.decode_semantic(self.encode(x), with_sides=False)
        return semantic[-1]

    def forward_local(self, x: torch.Tensor) -> torch.Tensor:
        """Local alpha only: skips the semantic head and the side outputs (HYBRID's second pass)."""
        enc = self.encode(x)
        semantic, _ = self.decode_semantic(enc, matting_only=True)
        return self.decode_matting(enc, semantic)

    def forward(self, x: torch.Tensor) -> P3MOutput:
        enc = self.encode(x)
        semantic, sides = self.decode_semantic(enc)
        local = self.decode_matting(enc, semantic)
        logits = semantic[-1]
        return P3MOutput(logits, local, fuse_global_local(logits, local), *sides)
