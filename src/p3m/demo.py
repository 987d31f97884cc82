"""``p3m demo OUT``: the whole system on a fresh machine, with nothing downloaded by hand.

1. Mattes a real portrait that ships with scikit-image (the astronaut) with the default
   engine: alpha, cut-out, new background.
2. Anonymizes its face and prints the privacy audit.
3. Writes a synthetic P3M-10k, trains P3M-Net on its blurred training images for a few
   minutes on the CPU, and benchmarks it on P3M-500-P and P3M-500-NP (B:B and B:N),
   next to the untrained network and the default engine.
4. Writes OUT/index.html and OUT/report.md with the pictures, the table and the
   training curve.
"""

from __future__ import annotations

import html
import sys
import time
from pathlib import Path


def _say(text: str) -> None:
    print(f"p3m demo: {text}", file=sys.stderr, flush=True)


def training_curve_svg(losses: list[tuple[int, float]], width: int = 560, height: int = 220) -> str:
    """Total loss per step as an SVG polyline (no plotting library needed)."""
    steps = [step for step, _ in losses]
    values = [value for _, value in losses]
    if len(steps) < 2:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>"
    lo, hi = min(values), max(values)
    def x(s): return 40 + (s - steps[0]) / max(1, steps[-1] - steps[0]) * (width - 50)
    def y(v): return 10 + (hi - v) / max(hi - lo, 1e-9) * (height - 40)
    points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(steps, values))
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"
            f"<rect width='100%' height='100%' fill='white'/>"
            f"<polyline fill='none' stroke='#c0392b' stroke-width='2' points='{points}'/>"
            f"<text x='40' y='{height - 8}' font-size='12'>step {steps[0]}</text>"
            f"<text x='{width - 70}' y='{height - 8}' font-size='12'>step {steps[-1]}</text>"
            f"<text x='2' y='16' font-size='12'>{hi:.2f}</text>"
            f"<text x='2' y='{height - 30}' font-size='12'>{lo:.2f}</text></svg>")


def run_demo(out: str | Path, *, minutes: float = 4.0, quick: bool = False) -> Path:
    from PIL import Image
    from skimage import data

    from p3m.architectures import build_model
    from p3m.data.synthetic import write_synthetic_dataset
    from p3m.inference.compose import cover
    from p3m.inference.factory import open_engine
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
    from p3m.jobs.benchmark import BenchmarkModel, run_benchmark
    from p3m.jobs.matte import MatteOptions, matte_files
    from p3m.jobs.progress import TerminalProgress
    from p3m.training.config import TrainConfig
    from p3m.training.loop import train

    out = Path(out)
    start = time.perf_counter()
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(cover(data.astronaut(), 768, 512)).save(photos / "astronaut.jpg", quality=92)

    _say("1/4 matting a real portrait with the default engine")
    engine = open_engine("default")
    matte_files(engine, [photos], out / "matte", MatteOptions(save=("alpha", "cutout", "composite"),
                                                               background="blur", overwrite=True),
                progress=TerminalProgress())

    _say("2/4 anonymizing the face (matting-aware) and auditing the result")
    anonymized = anonymize_files([photos], out / "anonymized",
                                 AnonymizeOptions(alpha_dir=out / "matte" / "alpha", overwrite=True),
                                 progress=TerminalProgress())
    _say(f"   privacy audit: {anonymized.audit_line()}")

    _say("3/4 synthetic P3M-10k, training on blurred images, benchmark")
    data_root = write_synthetic_dataset(out / "data", train=8 if quick else 48, val=2 if quick else 8,
                                        size=(128, 96) if quick else (192, 144), seed=0)
    config = TrainConfig(data=str(data_root), out=str(out / "training"), size=64 if quick else 128,
                         batch_size=2 if quick else 8, lr=1e-4, epochs=1000, workers=0 if quick else 1,
                         device="cpu", val_every=0, max_steps=2 if quick else 0,
                         max_minutes=0 if quick else minutes, log_every=25)
    trained = train(config)
    models = [BenchmarkModel("untrained", open_engine(build_model("p3mnet-r34").eval(), method="resize"), "B"),
              BenchmarkModel("trained", open_engine(trained.final_weights, method="resize", device="cpu"), "B"),
              BenchmarkModel("default-engine", engine, None, note="baseline, not trained on P3M-10k")]
    benchmark = run_benchmark(models, data_root, ["P3M-500-P", "P3M-500-NP"], out / "benchmark",
                              progress=TerminalProgress())

    _say("4/4 writing index.html and report.md")
    (out / "training_curve.svg").write_text(training_curve_svg(trained.losses))
    _write_pages(out, anonymized, trained, benchmark.table(), time.perf_counter() - start)
    _say(f"done in {(time.perf_counter() - start) / 60:.1f} min: open {out / 'index.html'}")
    return out / "index.html"


def _write_pages(out: Path, anonymized, trained, table, seconds: float) -> None:
    pictures = [
        ("The photo", "photos/astronaut.jpg"), ("Alpha (default engine)", "matte/alpha/astronaut.png"),
        ("Cut-out", "matte/cutout/astronaut.png"), ("New background (blur)", "matte/composite/astronaut.png"),
        ("Anonymized", "anonymized/blurred_image/astronaut.jpg"), ("Blurred region", "anonymized/facemask/astronaut.png"),
        ("Training curve (total loss)", "training_curve.svg"), ("Worst images, trained model", "benchmark/gallery_trained.png"),
    ]
    summary = (f"Privacy audit: {anonymized.audit_line()}. "
               f"Training: {trained.state.step} steps in {trained.seconds / 60:.1f} min on the CPU. "
               f"Whole demo: {seconds / 60:.1f} min.")
    md = ["# p3m demo", "", summary, "", "## Benchmark (synthetic P3M-10k)", "", table.to_markdown(), "", "## Pictures", ""]
    md += [f"![{title}]({path})" for title, path in pictures]
    (out / "report.md").write_text("\n".join(md) + "\n")
    figures = "\n".join(f"<figure><img src='{path}' alt='{html.escape(title)}'><figcaption>{html.escape(title)}"
                        f"</figcaption></figure>" for title, path in pictures)
    page = f"""<!doctype html>
<html><head><meta charset='utf-8'><title>p3m demo</title>
<style>body{{font-family:sans-serif;margin:24px}} figure{{display:inline-block;margin:8px;vertical-align:top}}
img{{max-height:260px;border:1px solid #ccc}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #bbb;padding:3px 6px}}</style></head>
<body><h1>p3m demo</h1><p id='summary'>{html.escape(summary)}</p>
<h2>Benchmark on a synthetic P3M-10k (B:B = P3M-500-P, B:N = P3M-500-NP)</h2>
{table.to_html("metrics")}
<h2>Pictures</h2>
{figures}
<script>
window.addEventListener('load', function () {{
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images-total', imgs.length);
  var loaded = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.setAttribute('data-images-loaded', loaded.length);
}});
</script></body></html>
"""
    (out / "index.html").write_text(page)
