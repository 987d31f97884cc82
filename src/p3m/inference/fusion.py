"""Inference-only rewrites of a network: batch norm folded into the convolution before
it, and a ReLU after a convolution computed inside it.

In eval mode a batch norm is an affine map per channel, so ``bn(conv(x))`` is one
convolution with scaled weights and a new bias; a ReLU right after can be a oneDNN
post-op of that convolution instead of another pass over the feature map. On the CPU
in bf16, P3M-Net spends more time in those passes than in its convolutions
(docs/performance.md), so the bf16 path runs the fused copy.

The network keeps its own modules and methods (``forward_global``, ``forward_local``
with its ``region``): only layers are swapped. Which layers follow which is read from a
``torch.fx`` trace of ``forward``; a pair is fused only where the first layer's output
goes to the second alone, at every place either is called. A network fx cannot trace
is returned unfused. The result is the same function to rounding: in fp32 it stays
within the published fixtures' tolerances (tests/test_fusion.py).
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

logger = logging.getLogger(__name__)


def _fused_relu_op(conv: nn.Conv2d):
    """oneDNN's convolution with a fused ReLU (what torch.compile's CPU backend emits),
    or None on a build without it or for a convolution it does not take."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    try:
        return torch.ops.mkldnn._convolution_pointwise.default
    except (AttributeError, RuntimeError):
        return None


class ConvReLU(nn.Module):
    """relu(conv(x)) as one oneDNN convolution on the CPU; conv then relu elsewhere.

    Holds the convolution as ``conv`` (so its weight is where receptive-field and
    precision code looks for convolutions).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self._op = _fused_relu_op(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if self._op is None or x.device.type != "cpu" or not torch._C._get_mkldnn_enabled():
            return torch.relu_(conv(x))
        weight = conv.weight
        # Under autocast conv2d would cast the input to the weight's bf16 itself.
        return self._op(x.to(weight.dtype), weight, conv.bias, list(conv.padding), list(conv.stride),
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
