"""Each metric on hand-made cases worked out in the test, plus edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from p3m.evaluation import metrics as M

P = np.array([[0.2, 0.5], [0.6, 1.0]])
G = np.array([[0.0, 1.0], [1.0, 0.0]])
T = np.array([[0, 128], [255, 128]], dtype=np.uint8)


def test_whole_image_errors_by_hand():
    # |p - g| = 0.2, 0.5, 0.4, 1.0 -> sum 2.1; squares 0.04, 0.25, 0.16, 1.0 -> 1.45; N = 4
    assert M.sad(P, G) == pytest.approx(2.1 / 1000)
    assert M.mse(P, G) == pytest.approx(1.45 / 4)
    assert M.mad(P, G) == pytest.approx(2.1 / 4)


def test_trimap_errors_by_hand():
    # p forced by the trimap: [[0, 0.5], [1, 1]] -> |p' - g| = 0, 0.5, 0, 1; U = 2 unknown pixels
    assert M.sad_trimap(P, G, T) == pytest.approx(1.5 / 1000)
    assert M.mse_trimap(P, G, T) == pytest.approx((0.25 + 1.0) / 2)
    assert M.mad_trimap(P, G, T) == pytest.approx(1.5 / 2)
    assert M.sad_fg(P, G, T) == pytest.approx(0.4 / 1000)  # t == 255 at (1, 0): |0.6 - 1|
    assert M.sad_bg(P, G, T) == pytest.approx(0.2 / 1000)  # t == 0 at (0, 0): |0.2 - 0|


def test_unknown_count_falls_back_to_non_known_pixels():
    t = np.array([[0, 100], [255, 100]], dtype=np.uint8)  # no 128: U = 4 - 1 - 1 = 2
    assert M.mad_trimap(P, G, t) == pytest.approx(1.5 / 2)


def test_no_unknown_pixels_gives_zero_not_a_division_error():
    t = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    result = M.evaluate(P, G, t, fast=True)
    assert result["MSE-T"] == 0.0 and result["MAD-T"] == 0.0
    # p' = [[0, 1], [1, 0]] equals g: nothing left
    assert result["SAD-T"] == 0.0


def test_conn_by_hand_with_two_equal_components():
    p = np.array([[1.0, 1.0, 0.0, 1.0, 1.0]])
    g = np.ones((1, 5))
    # every threshold: components {0,1} and {3,4}, the first (scan order) is the largest;
    # at 0.1 pixels 2, 3, 4 get l = 0; the rest end at l = 1.
    # d_p = [0, 0, 0, 1, 1] -> phi_p = [1, 1, 1, 0, 0]; d_g = [0, 0, 1, 1, 1] -> phi_g = [1, 1, 0, 0, 0]
    assert M.conn(p, g) == pytest.approx(1 / 1000)


def test_conn_of_an_all_zero_prediction_is_zero():
    g = np.zeros((6, 6))
    g[1:5, 1:5] = 1.0
    # no pixel passes any threshold in both: l ends at 1 everywhere; d <= 0 so phi = 1 for both
    assert M.conn(np.zeros_like(g), g) == 0.0


def test_perfect_prediction_scores_zero_everywhere():
    rng = np.random.default_rng(0)
    g = rng.random((30, 40))
    t = np.where(g > 0.9, 255, np.where(g < 0.1, 0, 128)).astype(np.uint8)
    g[t == 255], g[t == 0] = 1.0, 0.0  # a trimap's known regions are exactly 1 and 0
    assert all(v == 0.0 for v in M.evaluate(g, g, t).values())


def test_all_zero_prediction():
    g = np.zeros((10, 10))
    g[2:8, 2:8] = 1.0
    g[2:8, 1] = 0.5
    result = M.evaluate(np.zeros_like(g), g)
    assert result["SAD"] == pytest.approx((36 + 3) / 1000)
    assert result["MSE"] == pytest.approx((36 + 6 * 0.25) / 100)
    assert result["GRAD"] > 0


def test_constant_images_have_no_gradient_error():
    # float32 filtering leaves ~1e-8 of a constant's derivative: GRAD ~1e-15, where a
    # matte's GRAD is 1 to 100 (the published float64 passes leave ~1e-33).
    assert M.grad(np.full((20, 20), 0.3), np.full((20, 20), 0.7)) == pytest.approx(0.0, abs=1e-12)
    assert M.sad(np.full((20, 20), 0.3), np.full((20, 20), 0.7)) == pytest.approx(400 * 0.4 / 1000)


def test_grad_follows_the_published_formula_and_is_symmetric():
    rng = np.random.default_rng(1)
    p, g = rng.random((25, 31)), rng.random((25, 31))

    def magnitude(x):
        gx = gaussian_filter(x, sigma=1.4, order=[1, 0], output=np.float32)
        gy = gaussian_filter(x, sigma=1.4, order=[0, 1], output=np.float32)
        return np.sqrt(gx ** 2 + gy ** 2)

    expected = np.sum((magnitude(p) - magnitude(g)) ** 2) / 10
    assert M.grad(p, g) == pytest.approx(expected, rel=1e-6)  # the published values, to 1e-6
    np.testing.assert_allclose(M._gradient_magnitude(p), magnitude(p), rtol=1e-6, atol=1e-7)
    assert M.grad(p, g) == pytest.approx(M.grad(g, p), rel=1e-12)


def _conn_transcription(pd, gt):
    """The published connectivity loop, with scikit-image labelling (slow, for checking)."""
    from skimage.measure import label, regionprops

    steps = np.arange(0, 1.1, 0.1)
    l_map = -np.ones(pd.shape, dtype=np.float32)
    for i in range(1, steps.size):
        regions = regionprops(label((pd >= steps[i]) & (gt >= steps[i]), connectivity=1))
        if not regions:
            continue
        omega = np.zeros(pd.shape, dtype=np.float32)
        coords = regions[int(np.argmax([r.area for r in regions]))].coords
        omega[coords[:, 0], coords[:, 1]] = 1
        l_map[(l_map == -1) & (omega == 0)] = steps[i - 1]
    l_map[l_map == -1] = 1
    d_pd, d_gt = pd - l_map, gt - l_map
    return np.sum(np.abs((1 - d_pd * (d_pd >= 0.15)) - (1 - d_gt * (d_gt >= 0.15)))) / 1000


@pytest.mark.parametrize("seed", range(5))
def test_conn_equals_the_published_loop_on_random_mattes(seed):
    rng = np.random.default_rng(seed)
    g = (rng.random((40, 50)) > 0.4) * rng.random((40, 50))
    p = np.clip(g + rng.normal(0, 0.2, g.shape), 0, 1)
    p = np.round(p * 255) / 255  # 8-bit values, some exactly on thresholds
    assert M.conn(p, g) == pytest.approx(_conn_transcription(p, g), rel=1e-12, abs=1e-12)


def test_uint8_inputs_are_divided_by_255():
    p8 = np.array([[0, 51], [255, 128]], dtype=np.uint8)
    g8 = np.array([[0, 0], [255, 255]], dtype=np.uint8)
    assert M.evaluate(p8, g8) == pytest.approx(M.evaluate(p8 / 255.0, g8 / 255.0))


def test_mismatched_shapes_are_a_clear_error():
    with pytest.raises(M.MetricInputError, match="prediction 3x2 and ground truth 2x2 differ in size"):
        M.sad(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(M.MetricInputError, match="trimap"):
        M.evaluate(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((3, 3), np.uint8))
    with pytest.raises(M.MetricInputError, match="2-D matte"):
        M.sad(np.zeros((2, 2, 2, 2)), np.zeros((2, 2)))


def test_evaluate_keys():
    assert set(M.evaluate(P, G)) == {"SAD", "MSE", "MAD", "GRAD", "CONN"}
    assert set(M.evaluate(P, G, T)) == set(M.ALL_KEYS)
    assert set(M.evaluate(P, G, T, fast=True)) == set(M.ALL_KEYS) - {"GRAD", "CONN"}


def test_the_largest_component_is_found_among_more_than_65535():
    # 16-bit labels overflow here: OpenCV raises and the 32-bit path must give the same answer.
    from scipy.ndimage import label

    mask = np.zeros((700, 700), dtype=bool)
    mask[::2, ::2] = True  # 122500 single pixels
    mask[300:320, 100:400] = True  # one block, the largest
    labels, _ = label(mask)  # scipy's default structure is 4-connectivity
    expected = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    np.testing.assert_array_equal(M._largest_component(mask), expected)
