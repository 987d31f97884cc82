"""Each training loss on tiny tensors, with the expected value worked out here."""

from __future__ import annotations

import math

import pytest
import torch

from p3m.models.outputs import P3MOutput
from p3m.training import losses as L


def test_cross_entropy_by_hand():
    # one pixel, logits (0, 0, ln 2): p(class 2) = 2 / 4 = 0.5 -> CE = ln 2
    logits = torch.tensor([0.0, 0.0, math.log(2.0)]).view(1, 3, 1, 1)
    assert float(L.cross_entropy(logits, torch.tensor([[[[2]]]]))) == pytest.approx(math.log(2))
    assert float(L.cross_entropy(logits, torch.tensor([[[[0]]]]))) == pytest.approx(math.log(4))


def test_semantic_loss_counts_global_three_times_and_each_side_once():
    logits = torch.tensor([0.0, 0.0, math.log(2.0)]).view(1, 3, 1, 1)
    trimap = torch.tensor([[[[2]]]])
    out = P3MOutput(logits, None, None, logits, logits, logits)
    assert float(L.semantic_loss(out, trimap)) == pytest.approx(6 * math.log(2))
    no_sides = P3MOutput(logits, None, None, None, None, None)
    assert float(L.semantic_loss(no_sides, trimap)) == pytest.approx(3 * math.log(2))


def test_alpha_loss_averages_over_the_weighted_pixels():
    pred = torch.tensor([0.5, 0.0, 1.0, 0.2]).view(1, 1, 2, 2)
    gt = torch.tensor([0.0, 0.0, 0.0, 0.2]).view(1, 1, 2, 2)
    # |diffs| = 0.5, 0, 1, 0 (plus the 1e-12 under the root)
    assert float(L.alpha_loss(pred, gt)) == pytest.approx(1.5 / 4, abs=1e-6)
    weight = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    assert float(L.alpha_loss(pred, gt, weight)) == pytest.approx(0.5 / 2, abs=1e-6)
    assert float(L.alpha_loss(pred, gt, torch.zeros_like(weight))) == 0.0


def test_gaussian_kernel_is_normalised_and_separable():
    k = L.gaussian_kernel()[0, 0]
    assert float(k.sum()) == pytest.approx(1.0)
    g = torch.exp(-torch.tensor([4.0, 1.0, 0.0, 1.0, 4.0]) / 2)
    g = g / g.sum()
    torch.testing.assert_close(k, g[:, None] * g[None, :])


def test_laplacian_loss_of_a_constant_shift_lives_in_the_residual_only():
    # a constant image has no band-pass content; the 5-level residual of c is 2x2 of c
    pred = torch.full((1, 1, 64, 64), 0.75)
    gt = torch.full((1, 1, 64, 64), 0.25)
    pyramid = L.laplacian_pyramid(pred)
    assert len(pyramid) == 6 and pyramid[-1].shape[-1] == 2
    assert float(L.laplacian_loss(pred, gt)) == pytest.approx(0.5, abs=1e-5)  # float32 rounding
    assert float(L.laplacian_loss(gt, gt)) == 0.0


def test_composition_loss_by_hand():
    alpha = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    fg = torch.tensor([[0.5, 0.5]] * 3).view(1, 3, 1, 2)
    bg = torch.tensor([[0.1, 0.1]] * 3).view(1, 3, 1, 2)
    image = torch.tensor([[0.5, 0.4]] * 3).view(1, 3, 1, 2)
    # pixel 1: composite = F = 0.5 = I -> 0; pixel 2: composite = B = 0.1 vs 0.4 -> 0.3
    assert float(L.composition_loss(alpha, fg, bg, image)) == pytest.approx(0.15, abs=1e-6)


def test_total_uses_the_published_weights():
    torch.manual_seed(0)
    out = P3MOutput(torch.randn(1, 3, 32, 32), torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32),
                    torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32))
    batch = {"alpha": torch.rand(1, 1, 32, 32), "trimap": torch.randint(0, 3, (1, 1, 32, 32)),
             "fg": torch.randn(1, 3, 32, 32), "bg": torch.randn(1, 3, 32, 32), "image": torch.randn(1, 3, 32, 32)}
    total, t = L.p3m_loss(out, batch)
    expected = (t["semantic"] / 6 + 2 * (t["local_alpha"] + t["local_laplacian"])
                + 3 * (t["fusion_alpha"] + t["fusion_laplacian"]) + t["composition"])
    assert float(total) == pytest.approx(expected, rel=1e-5) and t["total"] == pytest.approx(expected, rel=1e-5)
    total2, t2 = L.p3m_loss(out, batch, L.LossWeights(semantic=1, local=0, fusion=0, composition=0))
    assert float(total2) == pytest.approx(t["semantic"], rel=1e-5)
    _, t3 = L.p3m_loss(out, batch, composition=False)
    assert "composition" not in t3
