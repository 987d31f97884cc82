"""The training losses: equal to the authors' code on the reference batch (every term,
the total, two gradients), then each rule and its variant on tiny tensors by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from p3m.models.outputs import P3MOutput, fuse_global_local
from p3m.reference import load_loss_reference
from p3m.training import losses as L
from p3m.training.config import LossWeights
from p3m.training.recipe import RECIPES, resolve_recipe

TERMS = ("semantic", "local_alpha", "local_laplacian", "fusion_alpha", "fusion_laplacian", "composition", "total")


def _reference_loss(recipe=RECIPES["published"]):
    ref = load_loss_reference()
    tensor = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ref.items() if v.ndim}
    global_logits = tensor["global_logits"].clone().requires_grad_()
    local = tensor["local"].clone().requires_grad_()
    fusion = fuse_global_local(global_logits, local)  # as the network computes it
    output = P3MOutput(global_logits, local, fusion, tensor["side2"], tensor["side1"], tensor["side0"])
    batch = {"alpha": tensor["alpha"].float()[:, None], "trimap": tensor["trimap"].float()[:, None],
             "image": tensor["image"], "fg": tensor["fg"], "bg": tensor["bg"]}
    total, terms = L.p3m_loss(output, batch, recipe=recipe)
    total.backward()
    return ref, terms, global_logits.grad.numpy(), local.grad.numpy()


def test_every_term_and_the_total_equal_the_published_code():
    ref, terms, _, _ = _reference_loss()
    np.testing.assert_allclose(torch.from_numpy(fuse_global_local(
        torch.from_numpy(ref["global_logits"]), torch.from_numpy(ref["local"])).numpy()).numpy(), ref["fusion"])
    for name in TERMS:
        assert terms[name] == pytest.approx(float(ref[f"loss.{name}"]), rel=1e-6), name


def test_gradients_equal_the_published_code():
    ref, _, grad_global, grad_local = _reference_loss()
    for got, expected in ((grad_global, ref["grad_global"]), (grad_local, ref["grad_local"])):
        assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()


def test_the_published_kernel_is_the_fixtures_and_not_a_gaussian():
    ref = load_loss_reference()
    np.testing.assert_allclose(L.published_kernel(), ref["laplacian_kernel"], rtol=1e-6)
    assert L.published_kernel()[2, 2] == pytest.approx(0.1128, abs=1e-4)
    assert L.gaussian_kernel()[2, 2] == pytest.approx(0.1621, abs=1e-4)


def test_the_p3m_variant_is_a_different_loss_on_the_same_batch():
    """The variant is not the published loss (8.5% on the total, as the issue measured)."""
    ref, terms, _, grad_local = _reference_loss(RECIPES["p3m"])
    assert abs(terms["total"] / float(ref["loss.total"]) - 1) > 0.05
    assert terms["composition"] == pytest.approx(float(ref["loss.composition"]) / 3, rel=1e-6)
    assert np.abs(grad_local - ref["grad_local"]).max() > 0.1 * np.abs(ref["grad_local"]).max()


def test_the_class_rule_follows_the_published_order():
    trimap = torch.tensor([0.0, 1.0, 2.0, 3.0, 64.0, 128.0, 254.0, 255.0]).view(1, 1, 1, 8)
    assert L.trimap_classes(trimap).flatten().tolist() == [0, 1, 2, 1, 1, 1, 1, 2]


def test_cross_entropy_by_hand():
    # one pixel, logits (0, 0, ln 2): p(class 2) = 2 / 4 = 0.5 -> CE = ln 2
    logits = torch.tensor([0.0, 0.0, math.log(2.0)]).view(1, 3, 1, 1)
    assert float(L.cross_entropy(logits, torch.tensor([[[[255.0]]]]))) == pytest.approx(math.log(2))
    assert float(L.cross_entropy(logits, torch.tensor([[[[0.0]]]]))) == pytest.approx(math.log(4))


def test_semantic_loss_counts_global_three_times_and_each_side_once():
    logits = torch.tensor([0.0, 0.0, math.log(2.0)]).view(1, 3, 1, 1)
    trimap = torch.tensor([[[[255.0]]]])
    out = P3MOutput(logits, None, None, logits, logits, logits)
    assert float(L.semantic_loss(out, trimap)) == pytest.approx(6 * math.log(2))
    no_sides = P3MOutput(logits, None, None, None, None, None)
    assert float(L.semantic_loss(no_sides, trimap)) == pytest.approx(3 * math.log(2))


def test_alpha_loss_rules_by_hand():
    pred = torch.tensor([0.5, 0.0, 1.0, 0.2]).view(1, 1, 2, 2)
    gt = torch.tensor([0.0, 0.0, 0.0, 0.2]).view(1, 1, 2, 2)
    # |diffs| = 0.5, 0, 1, 0; the 1e-12 under the root adds 1e-6 per pixel
    assert float(L.alpha_loss(pred, gt)) == pytest.approx((1.5 + 2e-6) / 4, abs=1e-7)
    weight = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    # published: 0.5, and 1e-6 from each of the three other pixels (also outside), divided by U + 1 = 3
    assert float(L.alpha_loss(pred, gt, weight)) == pytest.approx((0.5 + 3e-6) / 3, abs=1e-7)
    assert float(L.alpha_loss(pred, gt, weight, rule="masked-mean")) == pytest.approx((0.5 + 1e-6) / 2, abs=1e-7)


def test_laplacian_loss_of_a_constant_shift_lives_in_the_residual_only():
    pred, gt = torch.full((1, 1, 64, 64), 0.75), torch.full((1, 1, 64, 64), 0.25)
    for kernel in ("published", "gaussian"):
        pyramid = L.laplacian_pyramid(pred, kernel=kernel)
        assert len(pyramid) == 6 and pyramid[-1].shape[-1] == 2
        assert float(L.laplacian_loss(pred, gt, kernel=kernel)) == pytest.approx(0.5, abs=1e-5)
        assert float(L.laplacian_loss(gt, gt, kernel=kernel)) == 0.0


def test_composition_loss_rules_by_hand():
    alpha = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    fg = torch.tensor([[0.5, 0.5]] * 3).view(1, 3, 1, 2)
    bg = torch.tensor([[0.1, 0.1]] * 3).view(1, 3, 1, 2)
    image = torch.tensor([[0.5, 0.4]] * 3).view(1, 3, 1, 2)
    # pixel 1: composite = F = I -> 0; pixel 2: B = 0.1 vs 0.4 -> 0.3 in each of 3 channels
    assert float(L.composition_loss(alpha, fg, bg, image, rule="mean")) == pytest.approx(0.15, abs=1e-6)
    # published: the sum (0.9, plus 1e-6 from each of the 3 exact channels) / (N*1*H*W = 2)
    assert float(L.composition_loss(alpha, fg, bg, image)) == pytest.approx((0.9 + 3e-6) / 2, abs=1e-7)


def test_total_uses_the_published_weights():
    torch.manual_seed(0)
    out = P3MOutput(torch.randn(1, 3, 32, 32), torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32),
                    torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32))
    batch = {"alpha": 255 * torch.rand(1, 1, 32, 32), "trimap": 127.5 * torch.randint(0, 3, (1, 1, 32, 32)).float(),
             "fg": torch.randn(1, 3, 32, 32), "bg": torch.randn(1, 3, 32, 32), "image": torch.randn(1, 3, 32, 32)}
    total, t = L.p3m_loss(out, batch)
    expected = (t["semantic"] / 6 + 2 * (t["local_alpha"] + t["local_laplacian"])
                + 3 * (t["fusion_alpha"] + t["fusion_laplacian"]) + t["composition"])
    assert float(total) == pytest.approx(expected, rel=1e-5) and t["total"] == pytest.approx(expected, rel=1e-5)
    total2, _ = L.p3m_loss(out, batch, LossWeights(semantic=1, local=0, fusion=0, composition=0))
    assert float(total2) == pytest.approx(t["semantic"], rel=1e-5)
    _, t3 = L.p3m_loss(out, batch, composition=False)
    assert "composition" not in t3


def test_recipes_resolve_with_single_rules_and_refuse_unknown_ones():
    recipe = resolve_recipe("published", laplacian_kernel="gaussian", crop_size="")
    assert recipe.laplacian_kernel == "gaussian" and recipe.crop_size == "published"
    from p3m.errors import OptionError

    with pytest.raises(OptionError, match="laplacian_kernel must be one of published, gaussian"):
        resolve_recipe("published", laplacian_kernel="box")
    with pytest.raises(OptionError, match="recipe must be one of published, p3m"):
        resolve_recipe("fast")
