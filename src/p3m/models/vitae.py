"""P3M-Net(ViTAE-S), the IJCV 2023 state of the art: a ViTAE-S encoder + the P3M decoder.

ViTAE-S: a convolutional stem (stride 4), then four stages of "normal cells" (token
widths 64/128/256/512, depths 2/2/12/2, heads 1/2/4/8) in which attention runs beside a
parallel convolution module (PCM). Stage 1 uses Performer linear attention; stages 2-4
use global multi-head self-attention, computed with
``torch.nn.functional.scaled_dot_product_attention`` so the token-by-token matrix
need not be stored (it would not fit for a 1600-px image).

Module names follow the published checkpoint (``encoder.layers.<stage>.RC`` for the
reduction before each stage, ``encoder.layers.<stage>.NC.<i>`` for the cells).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from p3m.models.blocks import conv3x3
from p3m.models.decoder import VITAE_DECODER, EncoderDecoderForward, P3MDecoder
from p3m.models.features import EncoderFeatures

WIDTHS = (64, 128, 256, 512)
DEPTHS = (2, 2, 12, 2)
HEADS = (1, 2, 4, 8)
PCM_GROUPS = (1, 32, 64, 128)
#: Seed of the Performer projections when a checkpoint does not carry them.
PERFORMER_SEED = 0


def tokens_to_image(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) tokens in row-major order -> (B, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


def image_to_tokens(image: torch.Tensor) -> torch.Tensor:
    return image.flatten(2).transpose(1, 2)


class PerformerAttention(nn.Module):
    """Linear attention with positive random features (the published stage-1 attention).

    feature(x) = exp(w x - |x|^2 / 2) / sqrt(m), with ``w`` a random orthogonal matrix
    times sqrt(m). The published code draws ``w`` anew at every build and never saves
    it. Here it is a buffer outside the state dict (so published checkpoints still load
    strictly), drawn from a fixed seed, and p3m's own safetensors files store it.
    """

    def __init__(self, dim: int, heads: int = 1, kernel_ratio: float = 0.5, seed: int = PERFORMER_SEED) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.features = int(self.head_dim * kernel_ratio)
        self.kqv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)  # in the published checkpoints, unused
        self.register_buffer("w", torch.empty(heads, self.features, self.head_dim), persistent=False)
        self.draw_projection(seed)

    @torch.no_grad()
    def draw_projection(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        w = torch.empty(self.heads, self.features, self.head_dim)
        for head in range(self.heads):
            nn.init.orthogonal_(w[head], generator=generator)
        self.w.copy_(w * math.sqrt(self.features))

    def _random_features(self, x: torch.Tensor) -> torch.Tensor:
        half_norm = (x * x).sum(dim=-1, keepdim=True) / 2
        wx = torch.einsum("bhti,hmi->bhtm", x.float(), self.w)
        return torch.exp(wx - half_norm) / math.sqrt(self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        k, q, v = self.kqv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        kp, qp = self._random_features(k), self._random_features(q)
        normaliser = torch.einsum("bhti,bhi->bht", qp, kp.sum(dim=2)).unsqueeze(-1)
        kv = torch.einsum("bhin,bhim->bhnm", v.float(), kp)
        y = torch.einsum("bhti,bhni->bhtn", qp, kv) / (normaliser + 1e-8)
        return self.proj(y.permute(0, 2, 1, 3).reshape(b, n, c))


class SelfAttention(nn.Module):
    """Global multi-head self-attention (scale 1/sqrt(head size)), memory-efficient."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _pcm(dim: int, groups: int) -> nn.Sequential:
    """Parallel convolution module: grouped 3x3 convs, C -> 4C -> C -> C."""
    return nn.Sequential(
        nn.Conv2d(dim, 4 * dim, 3, padding=1, groups=groups), nn.BatchNorm2d(4 * dim), nn.SiLU(inplace=True),
        nn.Conv2d(4 * dim, dim, 3, padding=1, groups=groups), nn.BatchNorm2d(dim), nn.SiLU(inplace=True),
        nn.Conv2d(dim, dim, 3, padding=1, groups=groups), nn.SiLU(inplace=True),
    )


class NormalCell(nn.Module):
    """x = x + attn(LN(x)) + PCM(x); x = x + MLP(LN(x))."""

    def __init__(self, dim: int, attention: nn.Module, pcm_groups: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attention
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.PCM = _pcm(dim, pcm_groups)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        conv = image_to_tokens(self.PCM(tokens_to_image(x, height, width)))
        x = x + self.attn(self.norm1(x))
        x = x + conv
        return x + self.mlp(self.norm2(x))


class ConvStem(nn.Module):
    """Stage 1's reduction: conv-ReLU (stride 1), pool, conv-ReLU (stride 2), pool, conv, LN."""

    def __init__(self, width: int = WIDTHS[0]) -> None:
        super().__init__()
        self.proj1 = conv3x3(3, 32, bias=True)
        self.proj2 = conv3x3(32, 64, bias=True)
        self.proj3 = conv3x3(64, width, bias=True)
        self.norm = nn.LayerNorm(width, eps=1e-5)


class TokenReduction(nn.Module):
    """Between stages: LN, (the decoder takes the image here), 2x2 max-pool, linear."""

    def __init__(self, in_width: int, out_width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_width, eps=1e-5)
        self.linear = nn.Linear(in_width, out_width, bias=False)


class Stage(nn.Module):
    def __init__(self, reduction: nn.Module, cells: list[nn.Module]) -> None:
        super().__init__()
        self.RC = reduction
        self.NC = nn.ModuleList(cells)

    def run_cells(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        for cell in self.NC:
            x = cell(x, height, width)
        return x


def _pool(x: torch.Tensor, indices: list, sizes: list) -> torch.Tensor:
    sizes.append(x.shape[-2:])
    pooled, idx = F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
    indices.append(idx)
    return pooled


class ViTAEEncoder(nn.Module):
    """ViTAE-S returning the features the P3M decoder needs."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        stages = []
        for s, (width, depth, heads, groups) in enumerate(zip(WIDTHS, DEPTHS, HEADS, PCM_GROUPS)):
            reduction = ConvStem(width) if s == 0 else TokenReduction(WIDTHS[s - 1], width)
            cells = [
                NormalCell(width, PerformerAttention(width, heads, seed=PERFORMER_SEED + i) if s == 0
                           else SelfAttention(width, heads), groups)
                for i in range(depth)
            ]
            stages.append(Stage(reduction, cells))
        self.layers = nn.ModuleList(stages)
        # The ImageNet classifier, kept so published checkpoints load strictly; unused.
        self.head = nn.Linear(WIDTHS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        indices: list = []
        sizes: list = []
        stem = self.layers[0].RC
        shallow = F.relu(stem.proj1(x))  # stride 1, 32 channels
        half = F.relu(stem.proj2(_pool(shallow, indices, sizes)))  # stride 2, 64 channels
        image = stem.proj3(_pool(half, indices, sizes))
        h, w = image.shape[-2:]
        tokens = stem.norm(image_to_tokens(image))
        tokens = self.layers[0].run_cells(tokens, h, w)
        skips = [half]
        for stage in self.layers[1:]:
            feature = tokens_to_image(stage.RC.norm(tokens), h, w)  # a decoder feature
            skips.append(feature)
            pooled = _pool(feature, indices, sizes)
            h, w = pooled.shape[-2:]
            tokens = stage.run_cells(stage.RC.linear(image_to_tokens(pooled)), h, w)
        deep = tokens_to_image(tokens, h, w)
        # skips: stride 2, 4, 8, 16 -> the decoder wants 1/16, 1/8, 1/4, 1/2
        return EncoderFeatures(shallow, tuple(reversed(skips)), deep, tuple(indices), tuple(sizes))


class P3MNetViTAE(EncoderDecoderForward, nn.Module):
    """P3M-Net(ViTAE-S). Forward returns :class:`P3MOutput`."""

    def __init__(self, *, tfi: bool = True, sbfi: bool = True, dbfi: bool = True) -> None:
        super().__init__()
        self.encoder = ViTAEEncoder()
        self.decoder = P3MDecoder(VITAE_DECODER, tfi=tfi, sbfi=sbfi, dbfi=dbfi)

    @property
    def p3m_decoder(self) -> P3MDecoder:
        return self.decoder

    def encode(self, x: torch.Tensor) -> EncoderFeatures:
        return self.encoder(x)
