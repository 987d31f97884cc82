"""Speed of the metric set against a plain transcription of the published formulas.

Generates ``--pairs`` prediction / ground-truth / trimap triples of 1080 x 1620 (a
synthetic portrait matte and a perturbed prediction, 8-bit), then times
- p3m.evaluation.metrics.evaluate (all ten metrics) on arrays in memory;
- the transcription below (scikit-image labelling, regionprops, an unused distance
  transform, as in the published evaluation) on a subset, extrapolated per image;
- ``p3m evaluate``'s folder evaluation (PNG decoding included) with 1 and 2 workers;
and checks both give the same values (relative difference). ``--workers`` are threads.

With ``--authors-evaluate PATH`` (``core/evaluate.py`` of a checkout of the authors'
code, github.com/JizhiziLi/P3M), also times the authors' own metric functions against
p3m's:
- in one process, imports not counted: their functions called per image as their
  ``core/test.py`` does, against ``p3m.evaluation.metrics.evaluate`` on the same arrays,
  single-threaded (OpenCV held to one thread) and with p3m's default threads;
- ``p3m evaluate`` on the PNG folders against their functions run over the same folders,
  each a fresh process (start-up and imports included), the way a user runs them.

With ``--real``, the pairs are real mattes instead of synthetic ones: the sample
portraits (p3m.privacy.sample_photos) scaled to a short side of 1080 px as P3M-500's
images are, the default engine's matte at 400 px as the prediction and at 1024 px as
the ground truth, a 20-px trimap around the latter. ``--pairs`` cycles over them.

    python benchmarks/metrics.py [--pairs 100] [--reference-pairs 5] [--real] [--authors-evaluate P3M/core/evaluate.py]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs
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


def real_pairs() -> list:
    """(prediction, ground truth, trimap) from the sample portraits at a 1080-px short side."""
    import cv2

    from p3m.inference.factory import open_engine
    from p3m.io.images import read_image_file
    from p3m.privacy.sample_photos import fetch_sample_photos
    from p3m.weights.store import p3m_home

    coarse = open_engine("default")
    fine = coarse.tuned(work_size=1024)
    pairs = []
    for _name, path in sorted(fetch_sample_photos(p3m_home() / "sample_photos").items()):
        image = read_image_file(path)
        h, w = image.shape[:2]
        if min(h, w) < 400:
            continue  # thumbnails, not portraits at P3M's size
        scale = 1080 / min(h, w)
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        pred, gt = coarse.predict([image])[0], fine.predict([image])[0]
        gt8 = np.round(gt * 255)
        pairs.append((np.round(pred * 255) / 255, gt8 / 255, trimap_from_alpha(gt8 / 255, 20)))
    return pairs


def authors_in_process(evaluate_py: Path, pairs: list) -> None:
    """Their metric functions and p3m's, called on the same 8-bit arrays in this process."""
    import importlib.util

    import cv2

    spec = importlib.util.spec_from_file_location("authors_evaluate", evaluate_py)
    theirs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(theirs)  # imports torch, not timed
    eight_bit = [(np.round(p * 255).astype(np.uint8), np.round(g * 255).astype(np.uint8), t) for p, g, t in pairs]

    def authors(p8, g8, trimap):  # as their core/test.py reads and scores one image
        predict, alpha = p8 / 255.0, g8 / 255.0
        theirs.calculate_sad_mse_mad(predict, alpha, trimap)
        theirs.calculate_sad_mse_mad_whole_img(predict, alpha)
        theirs.calculate_sad_fgbg(predict, alpha, trimap)
        return theirs.compute_connectivity_loss_whole_image(predict, alpha), theirs.compute_gradient_whole_image(predict, alpha)

    def timed(fn):
        start = time.perf_counter()
        values = [fn(*pair) for pair in eight_bit]
        return time.perf_counter() - start, values

    threads = cv2.getNumThreads()
    evaluate(*eight_bit[0])  # first-call costs (page faults, OpenCV's pools) paid by neither
    t_authors, their_values = timed(authors)
    cv2.setNumThreads(1)
    t_one, ours = timed(evaluate)
    cv2.setNumThreads(threads)
    t_default, _ = timed(evaluate)
    worst = max(max(abs(c - o["CONN"]) / max(abs(c), 1e-12), abs(g - o["GRAD"]) / max(abs(g), 1e-12))
                for (c, g), o in zip(their_values, ours))
    size = np.mean([p.size for p, _, _ in eight_bit]) / 1e6
    print(f"in one process, {len(eight_bit)} pairs of {size:.1f} MP on average, imports not counted:")
    print(f"  authors' functions      : {t_authors:6.2f} s ({t_authors / len(eight_bit) * 1000:.0f} ms per pair)")
    print(f"  p3m, OpenCV on 1 thread : {t_one:6.2f} s, {t_authors / t_one:.1f}x")
    print(f"  p3m, OpenCV's {threads} threads : {t_default:6.2f} s, {t_authors / t_default:.1f}x; "
          f"largest relative difference in GRAD and CONN {worst:.1e}")


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


# The authors' per-image metric calls, as in their core/test.py (test_p3m10k), on PNG folders.
AUTHORS_DRIVER = """
import importlib.util, os, sys
import numpy as np
from PIL import Image
spec = importlib.util.spec_from_file_location("authors_evaluate", sys.argv[1])
ev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ev)
root = sys.argv[2]
sad = []
for name in sorted(os.listdir(os.path.join(root, "pred"))):
    predict = np.array(Image.open(os.path.join(root, "pred", name))) / 255.
    alpha = np.array(Image.open(os.path.join(root, "gt", name))) / 255.
    trimap = np.array(Image.open(os.path.join(root, "trimap", name)))
    ev.calculate_sad_mse_mad(predict, alpha, trimap)
    sad.append(ev.calculate_sad_mse_mad_whole_img(predict, alpha)[0])
    ev.calculate_sad_fgbg(predict, alpha, trimap)
    ev.compute_connectivity_loss_whole_image(predict, alpha)
    ev.compute_gradient_whole_image(predict, alpha)
print(sum(sad) / len(sad))
"""


def authors_comparison(evaluate_py: Path, root: Path, workers: int = 2, repeat: int = 2) -> None:
    """The authors' metric code and ``p3m evaluate``, each a fresh process, on the same folders (best of ``repeat``)."""
    import json

    def timed(cmd: list[str]) -> tuple[float, str]:
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return time.perf_counter() - start, done.stdout

    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "authors_driver.py"
        driver.write_text(AUTHORS_DRIVER)
        report = Path(tmp) / "p3m.json"
        p3m = Path(sys.executable).with_name("p3m")
        ours_cmd = [str(p3m), "evaluate", "--pred", str(root / "pred"), "--gt", str(root / "gt"), "--trimap",
                    str(root / "trimap"), "--workers", str(workers), "--json", str(report)]
        authors_runs, ours_runs = [], []
        for _ in range(repeat):  # interleaved, so both meet the same machine state
            authors_runs.append(timed([sys.executable, str(driver), str(evaluate_py), str(root)]))
            ours_runs.append(timed(ours_cmd))
        t_authors, authors_out = min(authors_runs)
        t_ours = min(t for t, _ in ours_runs)
        authors_sad = float(authors_out.strip().splitlines()[-1])
        ours_sad = json.loads(report.read_text())["mean"]["SAD"]
    print(f"authors' evaluate.py (one process, torch imported as theirs does): {t_authors:.1f} s; "
          f"p3m evaluate --workers {workers}: {t_ours:.1f} s (best of {repeat}, process start included): "
          f"{t_authors / t_ours:.1f}x faster; mean SAD {authors_sad:.4f} vs {ours_sad:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--reference-pairs", type=int, default=5, help="pairs timed with the transcription")
    parser.add_argument("--height", type=int, default=1620)
    parser.add_argument("--width", type=int, default=1080)
    parser.add_argument("--authors-evaluate", type=Path, help="the authors' core/evaluate.py, to time it too")
    parser.add_argument("--real", action="store_true", help="real mattes of the sample portraits (see above)")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.real:
        base = real_pairs()
        shape = f"{len(base)} real mattes, short side 1080"
    else:
        base = [make_pair(i, args.height, args.width) for i in range(min(args.pairs, 10))]
        shape = f"{args.height} x {args.width}"
    pairs = [base[i % len(base)] for i in range(args.pairs)]  # reuse the distinct pairs
    print(f"{cpu_model()}, {os.cpu_count()} cores; {args.pairs} pairs of {shape}")
    print(f"data ready in {time.perf_counter() - start:.1f} s")
    if args.authors_evaluate:
        authors_in_process(args.authors_evaluate, base)

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
        start = time.perf_counter()  # as a user runs it: a fresh process, PNG decoding included
        subprocess.run([str(Path(sys.executable).with_name("p3m")), "evaluate", "--pred", str(root / "pred"),
                        "--gt", str(root / "gt"), "--trimap", str(root / "trimap"), "-q"], check=True,
                       capture_output=True)
        t_cli = time.perf_counter() - start
        if args.authors_evaluate:  # fresh processes on the distinct pairs only (theirs takes seconds a pair)
            write_folders(base, root / "distinct")
            authors_comparison(args.authors_evaluate, root / "distinct")

    print(f"p3m metrics   : {t_ours:7.2f} s for {args.pairs} pairs ({t_ours / args.pairs * 1000:.0f} ms per pair)")
    print(f"transcription : {t_ref_each * 1000:7.0f} ms per pair (timed on {n_ref}); "
          f"{t_ref_each * args.pairs:.1f} s for {args.pairs} pairs, extrapolated")
    print(f"speed-up      : {t_ref_each * args.pairs / t_ours:.1f}x; largest relative difference "
          f"over all metrics {worst:.1e}")
    print(f"p3m evaluate on PNG folders: 1 worker {folder_times[1]:.1f} s, 2 workers {folder_times[2]:.1f} s "
          f"({folder_times[1] / folder_times[2]:.2f}x)")
    print(f"p3m evaluate (command line, fresh process, default workers): {t_cli:.1f} s for {args.pairs} pairs, "
          f"{t_cli / args.pairs * 1000:.0f} ms per pair end to end")


if __name__ == "__main__":
    main()
