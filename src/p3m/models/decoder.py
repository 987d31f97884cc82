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
from p3m.models.tiles import DENSE_SHARE, plan_tiles, receptive_radius, unpool_windows


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

#: Tile side (at 1/2 resolution) of the regional local pass. 12 to 32 measured alike on
#: the 2-core CPU (docs/inference.md); 32 keeps the number of windows low.
TILE = 32

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

    def decode_matting(self, enc: EncoderFeatures, semantic: list[torch.Tensor],
                       region: torch.Tensor | None = None) -> torch.Tensor:
        """Matting decoder; returns the local alpha after the sigmoid.

        With ``region`` (N x H x W bool at the input resolution), the 1/2- and
        full-resolution layers run only on tiles over it (see :mod:`p3m.models.tiles`):
        inside the region the alpha is that of the whole-map computation, outside it is
        unspecified.
        """
        blocks = (self.decoder4_l, self.decoder3_l, self.decoder2_l, self.decoder1_l)
        x = enc.deep
        for level, block in enumerate(blocks):
            x = self._unpool(block(x), enc, 4 - level)
            if level < 3:
                x = self._interact(level, x, semantic[level], enc.skips[level], self._sampled_shallow(level, enc))

        if region is not None:
            alpha = self._finish_on_tiles(x, semantic[3], enc, region)
            if alpha is not None:
                return alpha
        x = self.decoder0_l(self._interact(3, x, semantic[3], enc.skips[3], self._sampled_shallow(3, enc)))
        return self._head(self._unpool(x, enc, 0))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder_final_l(x))

    def _finish_on_tiles(self, x: torch.Tensor, semantic: torch.Tensor, enc: EncoderFeatures,
                         region: torch.Tensor) -> torch.Tensor | None:
        """The 1/2- and full-resolution layers, on tiles over ``region`` only.

        Returns the local alpha (zero outside the tiles), or None where tiles would not
        pay off and the whole map should be computed.
        """
        n, _, h, w = enc.shallow.shape
        if (h, w) != (2 * x.shape[-2], 2 * x.shape[-1]):
            return None
        tail = [self.decoder0_l] + [getattr(self, name) for name in ("tfi_0", "sbfi_0") if hasattr(self, name)]
        # One more pixel: the full-resolution 3x3 conv reads unpooled pixels that come
        # from one half-resolution pixel beyond the tile.
        plan = plan_tiles(_half_resolution_region(region), tile=TILE, halo=receptive_radius(*tail) + 1)
        if plan.share > DENSE_SHARE:
            return None
        alpha = x.new_zeros((n, 1, h, w))
        for windows in plan.batches():
            shallow = self.sbfi_0.sample(windows.crop(enc.shallow, 2)) if self.use_sbfi else None
            matting = self._interact(3, windows.crop(x), windows.crop(semantic), windows.crop(enc.skips[3]), shallow)
            unpooled = unpool_windows(self.decoder0_l(matting), windows.crop(enc.indices[0]), windows, full_width=w)
            windows.paste(self._head(unpooled), alpha, scale=2, offset=-1)
        return alpha

    @staticmethod
    def _unpool(x: torch.Tensor, enc: EncoderFeatures, pool: int) -> torch.Tensor:
        return F.max_unpool2d(x, enc.indices[pool], kernel_size=2, stride=2, output_size=enc.sizes[pool])

    def _sampled_shallow(self, level: int, enc: EncoderFeatures) -> torch.Tensor | None:
        """The shallow feature as the level's sBFI reads it (None where there is none)."""
        if not self.use_sbfi or _SBFI[level] is None:
            return None
        return getattr(self, _SBFI[level]).sample(enc.shallow)

    def _interact(self, level: int, x: torch.Tensor, semantic: torch.Tensor, skip: torch.Tensor,
                  shallow: torch.Tensor | None) -> torch.Tensor:
        """TFI, then sBFI, on the matting feature at one level."""
        if self.use_tfi:
            x = getattr(self, _TFI[level])(x, semantic, skip)
        if shallow is not None:
            x = getattr(self, _SBFI[level]).merge(x, shallow)
        return x

    def decode(self, enc: EncoderFeatures) -> P3MOutput:
        semantic, sides = self.decode_semantic(enc)
        local = self.decode_matting(enc, semantic)
        logits = semantic[-1]
        return P3MOutput(logits, local, fuse_global_local(logits, local), *sides)

    def decode_global(self, enc: EncoderFeatures) -> torch.Tensor:
        return self.decode_semantic(enc, with_sides=False)[0][-1]

    def decode_local(self, enc: EncoderFeatures, region: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode_matting(enc, self.decode_semantic(enc, matting_only=True)[0], region)


def _half_resolution_region(region: torch.Tensor) -> torch.Tensor:
    """The 1/2-resolution pixels whose 2x2 cells hold a pixel of the full-resolution ``region``."""
    return F.max_pool2d(region[:, None].float(), 2, stride=2, ceil_mode=True)[:, 0] > 0


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

    def forward_local(self, x: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        """The local alpha; with ``region`` (N x H x W bool) exact only there, and faster."""
        return self.p3m_decoder.decode_local(self.encode(x), region)
