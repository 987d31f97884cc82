"""The published test strategies, RESIZE and HYBRID, for any P3M-style network.

A network qualifies if its forward returns (global logits, local alpha, fusion alpha,
...) for an ImageNet-normalised N x 3 x H x W batch. Our own P3M-Net also offers
``forward_global`` (semantic branch only) and ``forward_local`` (no semantic head, no
side outputs), which HYBRID's two passes use so that no work is thrown away. On the
CPU, pass 2 also computes its last layers only around the pixels the fusion takes from
the local alpha (see :mod:`p3m.models.tiles`), and is skipped when the global pass
leaves no pixel unknown. The result is identical to running the full network.

- RESIZE: one pass at half size; the fusion alpha is resized back to H x W.
- HYBRID: pass 1 at half size gives the global classes; pass 2 at full size gives
  the local alpha, resized to H x W. The result is 1 where the bilinearly resized
  trimap is exactly foreground, 0 where exactly background, the local alpha elsewhere.
"""

from __future__ import annotations

import contextlib
import inspect
import logging

import numpy as np
import torch
from torch import nn

from p3m.architectures import input_normalisation
from p3m.errors import choice_error
from p3m.inference.engine import METHODS, PRECISIONS
from p3m.inference.fusion import fuse_for_inference
from p3m.inference.resize import bilinear_sources, resize_bilinear, resized_class_is_exact
from p3m.inference.sizing import network_size
from p3m.models.classes import BACKGROUND, FOREGROUND
from p3m.utils.memory import keep_freed_memory

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Said once when fp16 is asked for on the CPU (where PyTorch emulates it: 2.4x slower than fp32).
CPU_FP16_NOTE = "fp16 on the CPU runs as bf16 (the CPU has no fast fp16; bf16 has the same memory and is faster)"

logger = logging.getLogger(__name__)


def cpu_precision(precision: str, device: torch.device) -> str:
    """The precision that runs: fp16 on the CPU becomes bf16, with a one-line note."""
    if device.type == "cpu" and precision == "fp16":
        logger.warning(CPU_FP16_NOTE)
        return "bf16"
    return precision


#: Layers whose weights autocast would cast to bf16 on every call: stored in bf16 once.
_BF16_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def cpu_bf16_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` prepared for bf16 autocast on the CPU.

    Batch norms folded into their convolutions and ReLUs fused into them
    (p3m.inference.fusion): in bf16 these memory-bound passes cost more than the
    convolutions. Channels-last layout: oneDNN's bf16 convolutions are fastest on it
    (an NCHW input is reordered before each one). Convolution and linear weights in
    bf16: autocast would cast them on every call. Remaining normalisation layers and
    buffers stay fp32. The caller's network is left as it was.
    """
    prepared = fuse_for_inference(model).to(memory_format=torch.channels_last)
    for layer in prepared.modules():
        if isinstance(layer, _BF16_LAYERS):
            layer.to(torch.bfloat16)
    return prepared


class StrategyRunner:
    """Runs RESIZE or HYBRID for batches of same-size images with one network."""

    def __init__(self, model: nn.Module, *, method: str = "hybrid", max_size: int = 1600,
                 sizing: str = "aspect", device: torch.device | None = None, precision: str = "fp32") -> None:
        method = method.lower()
        if method not in METHODS:
            raise choice_error("method", method, METHODS)
        if precision not in PRECISIONS:
            raise choice_error("precision", precision, PRECISIONS)
        self.method, self.max_size, self.sizing = method, max_size, sizing
        self.device = device if device is not None else _model_device(model)
        self.precision = cpu_precision(precision, self.device)
        # bf16 on the CPU: channels-last (measured 0.73 -> 0.49 s at 512 x 512, docs/performance.md).
        self._channels_last = self.device.type == "cpu" and self.precision == "bf16"
        self.model = cpu_bf16_model(model) if self._channels_last else model
        # "published" reproduces the authors' test code: its sizing and the zero border
        # of scikit-image 0.14's resize (see p3m.inference.resize).
        self.border = "zero" if sizing == "published" else "edge"
        # Our networks can compute the local alpha on the unknown region only. On a GPU
        # the many small windows would not pay off (not measured), so only on the CPU.
        self._tiles = self.device.type == "cpu" and _accepts_region(model)
        if self.device.type == "cpu":
            keep_freed_memory()  # hundreds of MB per image, reused rather than faulted in again
        self._normalise = input_normalisation(model)

    def _input(self, batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """uint8 N x H x W x 3 -> resized, normalised float N x 3 x h x w."""
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        x = self._normalise(resize_bilinear(x, size, border=self.border))
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def _autocast(self):
        dtype = AUTOCAST_DTYPES[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _size(self, h: int, w: int, ratio: float) -> tuple[int, int]:
        return network_size(h, w, ratio, max_size=self.max_size, sizing=self.sizing)

    def _global_logits(self, x: torch.Tensor) -> torch.Tensor:
        forward_global = getattr(self.model, "forward_global", None)
        if forward_global is not None:
            return forward_global(x)
        return self.model(x)[0]

    def _local_alpha(self, x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        forward_local = getattr(self.model, "forward_local", None)
        if forward_local is None:
            return self.model(x)[1]
        if self._tiles:
            return forward_local(x, region=region)
        return forward_local(x)

    @torch.inference_mode()
    def run(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 (one size) -> float32 N x H x W alphas in [0, 1]."""
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        h, w = images.shape[1:3]
        with self._autocast():
            half = self._input(batch, self._size(h, w, 0.5))
            if self.method == "resize":
                alpha = resize_bilinear(self.model(half)[2].float(), (h, w), border=self.border)
            else:
                classes = self._global_logits(half).float().argmax(dim=1)
                del half
                fg = resized_class_is_exact(classes, FOREGROUND, (h, w), border=self.border).unsqueeze(1)
                bg = resized_class_is_exact(classes, BACKGROUND, (h, w), border=self.border).unsqueeze(1)
                unknown = ~(fg | bg)
                alpha = fg.float()
                if unknown.any():  # otherwise the global pass has decided every pixel
                    size = self._size(h, w, 1.0)
                    region = bilinear_sources(unknown[:, 0], size)
                    local = self._local_alpha(self._input(batch, size), region)
                    local = resize_bilinear(local.float(), (h, w), border=self.border)
                    alpha = torch.where(unknown, local, alpha)
        return alpha[:, 0].clamp_(0, 1).cpu().numpy().astype(np.float32)


class FullNetworkOnly(nn.Module):
    """Hides ``forward_global``/``forward_local``, so a strategy runs the whole network
    for both passes: the naive way, kept to check and measure the shortcuts."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, x: torch.Tensor):
        return self.inner(x)


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _accepts_region(model: nn.Module) -> bool:
    forward_local = getattr(model, "forward_local", None)
    return forward_local is not None and "region" in inspect.signature(forward_local).parameters
