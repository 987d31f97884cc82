"""Speed of the metric set against a plain transcription of the published formulas.

Generates ``--pairs`` prediction / ground-truth / trimap triples of 1080 x 1620 (a
synthetic portrait matte and a perturbed prediction, 8-bit), then times
- p3m.evaluation.metrics.evaluate (all ten metrics) on arrays in memory;
- the transcription below (scikit-image labelling, regionprops, an unused distance
  transform, as in the published evaluation) on a subset, extrapolated per image;
- ``p3m evaluate``'s folder evaluation (PNG decoding included) with 1 and 2 workers;
and checks both give the same values (relative difference).

    python benchmarks/metrics.py [--pairs 100] [--reference-pairs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from p3m.data.synthetic import make_portrait
from p3m.data.trimap import trimap_from_alpha
from p3m.evaluation.metrics import evaluate
from p3m.jobs.evaluate import evaluate_folders


# -- a plain transcription of the published metric code (kept here, not in the library) --
def published_sad_mse_mad(pd, gt):
    diff = pd - gt
    return np.sum(np.abs(diff)) / 1000, np.sum(diff ** 2) / pd.size, np.sum(np.abs(diff)) / pd.size


def published_trimap(pd, gt, trimap):
    pd = pd.copy()
    pd[trimap == 255] = 1
    pd[trimap == 0] = 0
    unknown = np.sum(trimap == 128) or (trimap.size - np.sum(trimap == 255) - np.sum(trimap == 0))
    diff = pd - gt
    return np.sum(np.abs(diff)) / 1000, np.sum(diff ** 2) / unknown, np.sum(np.abs(diff)) / unknown


def published_grad(pd, gt):
    pd_x = gaussian_filter(pd, sigma=1.4, order=[1, 0], output=np.float32)
    pd_y = gaussian_filter(pd, sigma=1.4, order=[0, 1], output=np.float32)
    gt_x = gaussian_filter(gt, sigma=1.4, order=[1, 0], output=np.float32)
    gt_y = gaussian_filter(gt, sigma=1.4, order=[0, 1], output=np.float32)
    return np.sum((np.sqrt(pd_x ** 2 + pd_y ** 2) - np.sqrt(gt_x ** 2 + gt_y ** 2)) ** 2) / 10


def published_conn(pd, gt):
    from skimage.measure import label, regionprops

    steps = np.arange(0, 1.1, 0.1)
    l_map = -np.ones(pd.shape, dtype=np.float32)
    for i in range(1, steps.size):
        cc = regionprops(label((pd >= steps[i]) & (gt >= steps[i]), connectivity=1))
        sizes = np.array([c.area for c in cc])
        if len(sizes) == 0:
            continue
        coords = cc[int(np.argmax(sizes))].coords
        omega = np.zeros(pd.shape, dtype=np.float32)
        omega[coords[:, 0], coords[:, 1]] = 1
        l_map[(l_map == -1) & (omega == 0)] = steps[i - 1]
        dist = distance_transform_edt(omega == 0)  # computed and never used, as published
        dist = dist / dist.max()
    l_map[l_map == -1] = 1
    d_pd, d_gt = pd - l_map, gt - l_map
    phi_pd = 1 - d_pd * (d_pd >= 0.15).astype(np.float32)
    phi_gt = 1 - d_gt * (d_gt >= 0.15).astype(np.float32)
    return np.sum(np.abs(phi_pd - phi_gt)) / 1000


def published_all(pd, gt, trimap):
    sad, mse, mad = published_sad_mse_mad(pd, gt)
    sad_t, mse_t, mad_t = published_trimap(pd, gt, trimap)
    return {"SAD": sad, "MSE": mse, "MAD": mad, "SAD-T": sad_t, "MSE-T": mse_t, "MAD-T": mad_t,
            "SAD-FG": np.sum(np.abs(pd - gt)[trimap == 255]) / 1000,
            "SAD-BG": np.sum(np.abs(pd - gt)[trimap == 0]) / 1000,
            "GRAD": published_grad(pd, gt), "CONN": published_conn(pd, gt)}


# -- data ------------------------------------------------------------------------------
def make_pair(index: int, height: int, width: int):
    rng = np.random.default_rng(index)
    alpha = make_portrait(rng, height, width).alpha
    gt = np.round(alpha * 255) / 255
    noise = gaussian_filter(rng.normal(0, 0.25, alpha.shape), 3) * 4
    pred = np.round(np.clip(alpha + noise * (gt > 0.02) * (gt < 0.98) + 0.02 * rng.normal(size=alpha.shape), 0, 1) * 255) / 255
    return pred, gt, trimap_from_alpha(alpha, 20)


def _ours(args):
    pred, gt, trimap = args
    return evaluate(pred, gt, trimap)


def write_folders(pairs, root: Path) -> None:
    from PIL import Image

    for name in ("pred", "gt", "trimap"):
        (root / name).mkdir(parents=True)
    for i, (pred, gt, trimap) in enumerate(pairs):
        Image.fromarray(np.round(pred * 255).astype(np.uint8)).save(root / "pred" / f"{i:04d}.png", compress_level=1)
        Image.fromarray(np.round(gt * 255).astype(np.uint8)).save(root / "gt" / f"{i:04d}.png", compress_level=1)
        Image.fromarray(trimap).save(root / "trimap" / f"{i:04d}.png", compress_level=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--reference-pairs", type=int, default=5, help="pairs timed with the transcription")
    parser.add_argument("--height", type=int, default=1620)
    parser.add_argument("--width", type=int, default=1080)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.pairs} pairs of {args.height} x {args.width}")

    start = time.perf_counter()
    base = [make_pair(i, args.height, args.width) for i in range(min(args.pairs, 10))]
    pairs = [base[i % len(base)] for i in range(args.pairs)]  # reuse 10 distinct pairs
    print(f"data ready in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    ours = [_ours(p) for p in pairs]
    t_ours = time.perf_counter() - start

    n_ref = min(args.reference_pairs, args.pairs)
    start = time.perf_counter()
    reference = [published_all(*pairs[i]) for i in range(n_ref)]
    t_ref_each = (time.perf_counter() - start) / n_ref
    worst = max(abs(ours[i][k] - reference[i][k]) / max(abs(reference[i][k]), 1e-12)
                for i in range(n_ref) for k in reference[i])

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_folders(pairs, root)
        folder_times = {}
        for workers in (1, 2):
            start = time.perf_counter()
            result = evaluate_folders(root / "pred", root / "gt", root / "trimap", workers=workers)
            folder_times[workers] = time.perf_counter() - start
            assert len(result.per_image) == args.pairs and not result.problems

    print(f"p3m metrics   : {t_ours:7.2f} s for {args.pairs} pairs ({t_ours / args.pairs * 1000:.0f} ms per pair)")
    print(f"transcription : {t_ref_each * 1000:7.0f} ms per pair (timed on {n_ref}); "
          f"{t_ref_each * args.pairs:.1f} s for {args.pairs} pairs, extrapolated")
    print(f"speed-up      : {t_ref_each * args.pairs / t_ours:.1f}x; largest relative difference "
          f"over all metrics {worst:.1e}")
    print(f"p3m evaluate on PNG folders: 1 worker {folder_times[1]:.1f} s, 2 workers {folder_times[2]:.1f} s "
          f"({folder_times[1] / folder_times[2]:.2f}x)")


if __name__ == "__main__":
    main()
