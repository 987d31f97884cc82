"""Inference fusion (p3m.inference.fusion) and the CPU allocator setting: the same
function, the published outputs, fewer layers; the caller's network untouched."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from p3m.architectures import available_architectures, get_spec
from p3m.inference import NetworkEngine
from p3m.inference.fusion import ConvReLU, fuse_for_inference
from p3m.inference.strategies import FullNetworkOnly
from p3m.reference import compare_outputs, load_reference_model, load_reference_outputs
from p3m.reference.given_trimap import GivenTrimap, ellipse_trimap
from p3m.utils.device import torch_threads

FIXTURE_ARCHS = [a for a in available_architectures() if get_spec(a).fixture]


def _count(model: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("arch", FIXTURE_ARCHS)
def test_the_fused_network_gives_the_published_outputs(arch):
    model = load_reference_model(arch)
    fused = fuse_for_inference(model)
    assert _count(fused, ConvReLU) > 0 and _count(fused, nn.BatchNorm2d) < _count(model, nn.BatchNorm2d)
    reference = load_reference_outputs(arch)
    with torch.no_grad():
        checks = compare_outputs(fused(torch.from_numpy(reference["input"])), reference)
    assert not [(c.name, c.max_abs_diff) for c in checks if not c.ok]


def test_every_batch_norm_and_relu_of_the_resnet_network_is_fused_and_the_original_is_untouched():
    model = load_reference_model("p3mnet-r34")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    assert _count(fused, nn.BatchNorm2d) == 0 and _count(fused, nn.ReLU) == 16  # the residual ReLUs stay
    assert _count(model, nn.BatchNorm2d) == 74 and _count(model, ConvReLU) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_wrapper_that_cannot_be_traced_is_fused_inside():
    model = load_reference_model("p3mnet-r34")
    wrapped = GivenTrimap(model, ellipse_trimap(64, 96, 6))  # reads shapes: fx cannot trace it
    assert _count(fuse_for_inference(wrapped), ConvReLU) == _count(fuse_for_inference(model), ConvReLU) > 0


class _SharedReLU(nn.Module):
    """A ReLU after a convolution that is also used elsewhere must not be fused away."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.other = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x))) + self.relu(self.other(x) - 1)


def test_a_relu_used_twice_is_kept_and_the_batch_norm_is_still_folded():
    torch.manual_seed(0)
    model = _SharedReLU().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    fused = fuse_for_inference(model)
    assert isinstance(fused.relu, nn.ReLU) and isinstance(fused.bn, nn.Identity)
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)


def test_bf16_hybrid_with_fusion_stays_close_to_fp32_on_its_tiles():
    # A compact unknown band, so pass 2 runs on tiles through the fused layers.
    model = load_reference_model("p3mnet-r34")
    image = np.random.default_rng(0).integers(0, 256, (192, 128, 3), dtype=np.uint8)
    wrapped = GivenTrimap(model, ellipse_trimap(96, 64, 4))
    fp32 = NetworkEngine(wrapped).predict([image])[0]
    bf16_engine = NetworkEngine(wrapped, precision="bf16")
    assert _count(bf16_engine.runner.model, ConvReLU) > 0
    # On one thread (the unpooling's thread split moves ties otherwise; docs/inference.md)
    # the tiles through the fused layers give exactly the whole map's values.
    with torch_threads(1):
        bf16 = bf16_engine.predict([image])[0]
        naive = NetworkEngine(FullNetworkOnly(wrapped), precision="bf16").predict([image])[0]
    assert 0 < np.abs(bf16 - fp32).mean() < 0.05
    assert np.array_equal(bf16, naive)


@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_the_allocator_setting_is_made_once_and_can_be_refused(setting, expected):
    code = ("from p3m.utils.memory import keep_freed_memory as k; import sys; "
            "print(k(), k()) if sys.platform.startswith('linux') else print('skip')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"P3M_KEEP_FREED_MEMORY": setting, "PATH": ""}).stdout.split()
    if out == ["skip"]:
        pytest.skip("glibc only")
    assert out == [expected, expected]


def test_bf16_runs_on_a_cpu_whose_onednn_has_no_bf16():
    # Restricted to AVX2, oneDNN's fused bf16 convolution raises; the engine must fall
    # back to PyTorch's own convolution, as unfused bf16 does.
    code = ("import numpy as np; from p3m.inference import NetworkEngine; "
            "from p3m.reference import load_reference_model; "
            "e = NetworkEngine(load_reference_model('p3mnet-r34'), method='resize', precision='bf16'); "
            "a = e.predict([np.zeros((64, 64, 3), np.uint8)])[0]; print(a.shape, bool(np.isfinite(a).all()))")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.split() == ["(64,", "64)", "True"], done.stderr[-800:]


def test_the_fused_layer_pickles_and_follows_autocast():
    torch.manual_seed(0)
    layer = ConvReLU(nn.Conv2d(3, 4, 3, padding=1)).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.relu(layer.conv(x)).dtype == torch.bfloat16
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    assert buffer.getbuffer().nbytes > 0


def test_serve_gives_memory_back_and_an_engine_then_does_not_keep_it():
    code = ("from p3m.utils.memory import keep_freed_memory as keep, return_freed_memory as give; "
            "print(give(), keep(), give())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if sys.platform.startswith("linux"):
        assert out == ["True", "False", "True"]
