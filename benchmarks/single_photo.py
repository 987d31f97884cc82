"""One photo from the command line, as a new user runs it: ``p3m matte photo.jpg -o
cut.png`` in a fresh process, timed end to end, and where that time goes (interpreter
and p3m's imports, pymatting's import, LiteRT, the photo itself). Issue 29's goal is
1.5 s on 2 cores with the default engine.

The photo is a real portrait from the sample photos (p3m.privacy.sample_photos, 910 x
1137) unless one is given. Each run writes a new file (an existing output is skipped).

    python benchmarks/single_photo.py [--photo FILE] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs

STAGES = """
import time, sys
t0 = time.perf_counter()
from p3m.cli.main import main
t1 = time.perf_counter()
from p3m.inference.kernels import import_pymatting
import_pymatting()
t2 = time.perf_counter()
from p3m.inference.factory import open_engine
engine = open_engine("auto")
t3 = time.perf_counter()
from p3m.io.images import read_image_file
from p3m.pipeline import matte_image
from p3m.io.writers import write_image
result = matte_image(engine, read_image_file(sys.argv[1]), None, ("cutout",))
write_image(sys.argv[2], result.outputs["cutout"])
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, "torch" in sys.modules)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    photo = args.photo
    if photo is None:
        from p3m.privacy.sample_photos import fetch_sample_photos
        from p3m.weights.store import p3m_home

        photo = fetch_sample_photos(p3m_home() / "sample_photos")["obama"]
    p3m = Path(sys.executable).with_name("p3m")
    walls, stages = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            start = time.perf_counter()
            done = subprocess.run([str(p3m), "matte", str(photo), "-o", f"{tmp}/cut{run}.png"],
                                  capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            out = subprocess.run([sys.executable, "-c", STAGES, str(photo), f"{tmp}/stage{run}.png"],
                                 capture_output=True, text=True, check=True).stdout.split()
            stages.append([float(v) for v in out[:4]])
            torch = out[4]
    print(f"{cpu_model()}; {photo.name}; {args.runs} runs, each a fresh process")
    print(f"p3m matte {photo.name} -o cut.png: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
          f"(goal 1.5 s: {min(walls) / 1.5:.2f}x of it); torch imported: {torch}")
    names = ("interpreter start + p3m's imports", "pymatting import (numba cache)", "engine opened (LiteRT)",
             "the photo: read, matte, cut-out, write")
    medians = [statistics.median(s[i] for s in stages) for i in range(4)]
    for name, value in zip(names, medians):
        print(f"  {name}: {value:.2f} s (median)")


if __name__ == "__main__":
    main()
