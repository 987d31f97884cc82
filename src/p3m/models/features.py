"""What an encoder hands to the P3M decoder, whatever the backbone."""

from __future__ import annotations

from typing import NamedTuple

import torch


class EncoderFeatures(NamedTuple):
    """Encoder outputs in the decoder's terms.

    ``shallow``: the full-resolution feature sBFI reads (ResNet ``e0``, ViTAE's stride-1
    stem feature). ``skips``: the encoder features TFI mixes in, at 1/16, 1/8, 1/4 and
    1/2. ``deep``: the 1/32 feature the decoders start from and dBFI reads.
    ``indices``/``sizes``: the five pools (strides 1->2 ... 16->32), their indices and
    input sizes, which the matting decoder undoes by max-unpooling.
    """

    shallow: torch.Tensor
    skips: tuple[torch.Tensor, ...]
    deep: torch.Tensor
    indices: tuple[torch.Tensor, ...]
    sizes: tuple[torch.Size, ...]
