"""The P3M decoder: semantic and matting branches joined by TFI, sBFI and dBFI.

One definition serves every backbone; a :class:`DecoderSpec` holds the differences
(where each block changes width, the width of the last stage, the semantic head, the
sBFI feature's channels, and the order in which the published checkpoints list the
modules). Module names are those of the published checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from p3m.models.blocks import conv3x3, conv_stack
from p3m.models.features import EncoderFeatures
from p3m.models.interaction import DBFI, SBFI, TFI
from p3m.models.outputs import P3MOutput, fuse_global_local


@dataclass(frozen=True)
class DecoderSpec:
    reduce_first: bool         # a block changes width in its first conv (else its last)
    last_channels: int         # width of the level-0 blocks
    shallow_channels: int      # channels of the full-resolution feature sBFI reads
    final_semantic_conv: bool  # the semantic head ends with a separate full-resolution conv
    interaction_first: bool    # TFI/sBFI/dBFI come before the blocks in the state dict


R34_DECODER = DecoderSpec(reduce_first=False, last_channels=64, shallow_channels=64,
                          final_semantic_conv=False, interaction_first=True)
VITAE_DECODER = DecoderSpec(reduce_first=True, last_channels=32, shallow_channels=32,
                            final_semantic_conv=True, interaction_first=False)

_TFI = ("tfi_3", "tfi_2", "tfi_1", "tfi_0")
_SBFI = (None, "sbfi_2", "sbfi_1", "sbfi_0")
_DBFI = (None, "dbfi_2", "dbfi_1", "dbfi_0", None)


class P3MDecoder(nn.Module):
    """Both decoders and their interaction modules (switchable for the ablation)."""

    def __init__(self, spec: DecoderSpec, *, tfi: bool = True, sbfi: bool = True, dbfi: bool = True) -> None:
        super().__init__()
        self._build_decoder(spec, tfi=tfi, sbfi=sbfi, dbfi=dbfi)

    def _build_decoder(self, spec: DecoderSpec, *, tfi: bool, sbfi: bool, dbfi: bool) -> None:
        """Register the modules; a network with a flat published layout calls this on itself."""
        self.spec = spec
        self.use_tfi, self.use_sbfi, self.use_dbfi = tfi, sbfi, dbfi
        if spec.interaction_first:
            self._add_interaction()
            self._add_blocks()
        else:
            self._add_blocks()
            self._add_interaction()

    def _block(self, cin: int, cout: int, convs: int = 3, **kwargs) -> nn.Sequential:
        widths = [cin] + [cout] * convs if self.spec.reduce_first else [cin] * convs + [cout]
        return conv_stack(widths, **kwargs)

    def _add_blocks(self) -> None:
        last = self.spec.last_channels
        head = last if self.spec.final_semantic_conv else 3
        # Semantic decoder: 2x bilinear upsampling after each block.
        self.decoder4_g = self._block(512, 256, upsample=True)
        self.decoder3_g = self._block(256, 128, upsample=True)
        self.decoder2_g = self._block(128, 64, upsample=True)
        self.decoder1_g = self._block(64, 64, upsample=True)
        self.decoder0_g = self._block(64, head, plain_last=True, upsample=True)
        if self.spec.final_semantic_conv:
            self.decoder_final_g = conv3x3(last, 3, bias=True)
        # Matting decoder: the same blocks, upsampled by max-unpooling in forward.
        self.decoder4_l = self._block(512, 256)
        self.decoder3_l = self._block(256, 128)
        self.decoder2_l = self._block(128, 64)
        self.decoder1_l = self._block(64, 64)
        self.decoder0_l = self._block(64, last, convs=2)
        self.decoder_final_l = conv3x3(last, 1, bias=True)

    def _add_interaction(self) -> None:
        shallow = self.spec.shallow_channels
        if self.use_tfi:  # at 1/16, 1/8, 1/4, 1/2
            self.tfi_3, self.tfi_2, self.tfi_1, self.tfi_0 = TFI(256), TFI(128), TFI(64), TFI(64)
        if self.use_sbfi:  # at 1/8, 1/4, 1/2: the shallow feature sampled at the block's stride
            self.sbfi_2 = SBFI(128, shallow, 8)
            self.sbfi_1 = SBFI(64, shallow, 4)
            self.sbfi_0 = SBFI(64, shallow, 2)
        if self.use_dbfi:  # at 1/8, 1/4, 1/2: the 1/32 feature upsampled; side outputs to full size
            self.dbfi_2 = DBFI(128, 512, 4, 8)
            self.dbfi_1 = DBFI(64, 512, 8, 4)
            self.dbfi_0 = DBFI(64, 512, 16, 2)

    # -- the two branches ----------------------------------------------------------
    def decode_semantic(self, enc: EncoderFeatures, *, matting_only: bool = False,
                        with_sides: bool = True) -> tuple[list[torch.Tensor], list]:
        """Semantic decoder. Returns the block outputs (1/16, 1/8, 1/4, 1/2, logits) and side outputs.

        With ``matting_only`` it stops once it has the features TFI needs (1/16..1/2):
        what the local alpha alone requires. Side outputs are computed only with
        ``with_sides`` and never with ``matting_only``.
        """
        with_sides = with_sides and not matting_only
        blocks = (self.decoder4_g, self.decoder3_g, self.decoder2_g, self.decoder1_g, self.decoder0_g)
        features, sides = [], []
        x = enc.deep
        for level, (block, dbfi) in enumerate(zip(blocks, _DBFI)):
            x = block(x)
            # TFI sees each block's output before dBFI refines it (as published).
            features.append(x)
            if matting_only and level == 3:
                break
            if dbfi is not None:
                side = None
                if self.use_dbfi:
                    x, side = getattr(self, dbfi)(x, enc.deep, with_side=with_sides)
                sides.append(side)
        if not matting_only and self.spec.final_semantic_conv:
            features[-1] = self.decoder_final_g(features[-1])
        return features, sides

    def decode_matting(self, enc: EncoderFeatures, semantic: list[torch.Tensor]) -> torch.Tensor:
        """Matting decoder; returns the local alpha after the sigmoid."""
        blocks = (self.decoder4_l, self.decoder3_l, self.decoder2_l, self.decoder1_l, self.decoder0_l)
        x = enc.deep
        for level, block in enumerate(blocks):
            pool = 4 - level  # the pool this level undoes
            x = F.max_unpool2d(block(x), enc.indices[pool], kernel_size=2, stride=2, output_size=enc.sizes[pool])
            if level == len(blocks) - 1:
                break
            if self.use_tfi:
                x = getattr(self, _TFI[level])(x, semantic[level], enc.skips[level])
            if self.use_sbfi and _SBFI[level] is not None:
                x = getattr(self, _SBFI[level])(x, enc.shallow)
        return torch.sigmoid(self.decoder_final_l(x))

    def decode(self, enc: EncoderFeatures) -> P3MOutput:
        semantic, sides = self.decode_semantic(enc)
        local = self.decode_matting(enc, semantic)
        logits = semantic[-1]
        return P3MOutput(logits, local, fuse_global_local(logits, local), *sides)

    def decode_global(self, enc: EncoderFeatures) -> torch.Tensor:
        return self.decode_semantic(enc, with_sides=False)[0][-1]

    def decode_local(self, enc: EncoderFeatures) -> torch.Tensor:
        return self.decode_matting(enc, self.decode_semantic(enc, matting_only=True)[0])


class EncoderDecoderForward:
    """``forward``, ``forward_global`` and ``forward_local`` of a P3M network, given its
    ``encode(x)`` and ``p3m_decoder`` (a :class:`P3MDecoder`).

    ``forward_global`` runs no matting decoder and no side outputs (HYBRID's first
    pass); ``forward_local`` runs no semantic head and no side outputs (its second).
    """

    p3m_decoder: P3MDecoder

    def encode(self, x: torch.Tensor) -> EncoderFeatures:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> P3MOutput:
        return self.p3m_decoder.decode(self.encode(x))

    def forward_global(self, x: torch.Tensor) -> torch.Tensor:
        return self.p3m_decoder.decode_global(self.encode(x))

    def forward_local(self, x: torch.Tensor) -> torch.Tensor:
        return self.p3m_decoder.decode_local(self.encode(x))
