"""Inference-only rewrites of a network: batch norm folded into the convolution before
it, and a ReLU after a convolution computed inside it.

In eval mode a batch norm is an affine map per channel, so ``bn(conv(x))`` is one
convolution with scaled weights and a new bias; a ReLU right after can be a oneDNN
post-op of that convolution instead of another pass over the feature map. On the CPU
in bf16, P3M-Net spends more time in those passes than in its convolutions
(docs/performance.md), so the bf16 path runs the fused copy.

The network keeps its own modules and methods (``forward_global``, ``forward_local``
with its ``region``): only layers are swapped. Which layers follow which is read from a
``torch.fx`` trace of ``forward``; a pair is fused only where, in that trace, the first
layer's output goes to the second alone, at every place either is called. Other
methods must call the layers in the same pairs (P3M-Net's do: they run the same blocks
on less of the network or of the map). A module fx cannot trace is fused inside its
children. The result is the same function to rounding: in fp32 it stays within the
published fixtures' tolerances (tests/test_fusion.py).
"""

from __future__ import annotations

import copy
import functools
import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

logger = logging.getLogger(__name__)


@functools.cache
def _onednn_runs_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _pointwise(x: torch.Tensor, weight: torch.Tensor):
    """oneDNN's convolution with a fused ReLU (what torch.compile's CPU backend emits)
    when it can run this call, else None: a CPU tensor, oneDNN on, input and weight of
    one dtype (under autocast, the autocast dtype: otherwise conv2d casts), and for
    bf16 a CPU oneDNN runs bf16 on (without it oneDNN raises, where conv2d falls back)."""
    if x.device.type != "cpu" or not torch._C._get_mkldnn_enabled():
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if weight.dtype != dtype or x.dtype not in (dtype, torch.float32):
        return None
    if dtype == torch.bfloat16 and not _onednn_runs_bf16():
        return None
    try:
        return torch.ops.mkldnn._convolution_pointwise.default
    except (AttributeError, RuntimeError):  # a build without it
        return None


class ConvReLU(nn.Module):
    """relu(conv(x)) as one oneDNN convolution on the CPU where it can run (see
    :func:`_pointwise`); conv then ReLU otherwise, with the same result to rounding.

    Holds the convolution as ``conv``, so its weight is where receptive-field and
    precision code looks for convolutions. Inference only: the fused op has no backward.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self._plain = conv.padding_mode != "zeros" or isinstance(conv.padding, str)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        op = None if self._plain else _pointwise(x, conv.weight)
        if op is None:
            return torch.relu_(conv(x))
        return op(x.to(conv.weight.dtype), conv.weight, conv.bias, list(conv.padding), list(conv.stride),
                  list(conv.dilation), conv.groups, "relu", [None], None)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with conv -> batch norm folded and conv -> ReLU fused."""
    fused = copy.deepcopy(model).eval()
    _fuse_within(fused)
    return fused


def _fuse_within(root: nn.Module) -> None:
    """Fuse inside ``root``, or, where fx cannot trace it (a wrapper that reads shapes),
    inside each of its children."""
    try:
        graph = torch.fx.symbolic_trace(root).graph
    except Exception as exc:  # noqa: BLE001 - any trace failure: look one level down
        logger.debug("%s cannot be traced (%s); fusing inside its children", type(root).__name__, exc)
        for child in root.children():
            _fuse_within(child)
        return
    modules = dict(root.named_modules(remove_duplicate=False))
    calls: dict[int, list[torch.fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(id(modules[node.target]), []).append(node)

    def module(node) -> nn.Module | None:
        return modules[node.target] if isinstance(node, torch.fx.Node) and node.op == "call_module" else None

    def only_feeds(first: nn.Module, second: nn.Module) -> bool:
        """Every call of ``second`` takes a call of ``first`` whose output goes nowhere
        else, and ``first`` is called nowhere else."""
        second_calls = calls[id(second)]
        return (all(module(n.args[0]) is first and len(n.args[0].users) == 1 for n in second_calls)
                and len(calls[id(first)]) == len(second_calls))

    def single_user(m: nn.Module) -> nn.Module | None:
        users = list(calls[id(m)][0].users)
        return module(users[0]) if len(users) == 1 else None

    replacements: dict[int, nn.Module] = {}
    for conv_calls in list(calls.values()):
        original = module(conv_calls[0])
        if not isinstance(original, nn.Conv2d):
            continue
        conv, last = original, original  # the fused convolution; the module whose output it gives
        bn = single_user(original)
        if isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats and only_feeds(original, bn):
            conv, last = fuse_conv_bn_eval(original, bn), bn
            replacements[id(bn)] = nn.Identity()
        relu = single_user(last)
        if isinstance(relu, nn.ReLU) and only_feeds(last, relu):
            conv = ConvReLU(conv)
            replacements[id(relu)] = nn.Identity()
        if conv is not original:
            replacements[id(original)] = conv
    _swap(root, replacements)


def _swap(model: nn.Module, replacements: dict[int, nn.Module]) -> None:
    """Put each replacement wherever its module is held (a module may be held twice)."""
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None and id(child) in replacements:
                parent._modules[name] = replacements[id(child)]
