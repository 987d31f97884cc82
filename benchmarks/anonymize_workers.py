"""Does ``p3m anonymize --workers 2`` give the same records as ``--workers 1``, run after run?

Why: two threads once shared one dlib HOG detector; on group photos the process crashed
(SIGSEGV) or lost faces, which for a fail-closed anonymizer means a face written
unblurred or an image wrongly held back. dlib's models are now loaded once per thread
(``p3m.privacy.dlib_models``). A race shows only sometimes, so this repeats the run:
``--workers 1`` once as the reference, then ``--workers N`` ``--runs`` times, each a
fresh subprocess into a fresh output folder (a crash shows as an exit code or signal).

Each run is compared with the reference: the exit code, report.json (the detector, the
totals and every image's row: status, faces, blur, re-detections, identity distance,
identity matches, message) and the bytes of every output file (blurred_image/,
facemask/ -- the blurred region, so a lost or moved face shows there -- and mask/).
Prints per run: exit code, seconds, images differing (and what differed), then the
summary line "R/R runs equal to --workers 1" and the speed ratio workersN / workers1
(wall time of the subprocess, start-up and model loading included). The p3m source the
subprocesses import is fingerprinted before and after every run: a run during which it
changed (someone editing the tree) is flagged as not comparable, since a difference
there may be the edit, not the threads; run on a frozen copy (PYTHONPATH=COPY/src).

    python benchmarks/anonymize_workers.py FOLDER [--runs 10] [--workers 2] [--detector auto]

FOLDER: photos with several people each (for example dlib's examples/faces/*.jpg).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs

REPORTS = ("report.csv", "report.json", "report.jsonl")




def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"{code} (signal {-code})"
    return str(code)


def run(folder: Path, out: Path, workers: int, detector: str, timeout: float) -> tuple[int, float, str]:
    """``p3m anonymize`` in a subprocess: exit code (negative: killed by that signal), seconds, stderr's tail."""
    cmd = [sys.executable, "-m", "p3m", "anonymize", str(folder), "-o", str(out), "--workers", str(workers),
           "--detector", detector]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        code, tail = done.returncode, "\n".join(done.stderr.strip().splitlines()[-5:])
    except subprocess.TimeoutExpired:
        code, tail = 124, f"timed out after {timeout:.0f} s"
    return code, time.perf_counter() - start, tail


def source_fingerprint() -> tuple[str, str]:
    """Where the p3m that ``python -m p3m`` imports lives, and a hash of its .py files."""
    spec = importlib.util.find_spec("p3m")
    package = Path(spec.origin).parent if spec and spec.origin else None
    if package is None:
        return "?", ""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return str(package), digest.hexdigest()[:12]


def outputs(out: Path) -> dict[str, str]:
    """SHA-256 of every output file but the reports, by path relative to ``out``."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name not in REPORTS}


def report(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        return None


def image_of(relative: str) -> str:
    """The report's image name of an output file (blurred_image/a.jpg, facemask/a.png -> a)."""
    return str(Path(*Path(relative).parts[1:]).with_suffix(""))


def pixels_differing(a: Path, b: Path) -> str:
    try:
        x, y = np.asarray(Image.open(a)), np.asarray(Image.open(b))
    except OSError as exc:
        return f"unreadable ({exc})"
    if x.shape != y.shape:
        return f"shape {x.shape} vs {y.shape}"
    changed = np.any(x != y, axis=-1) if x.ndim == 3 else x != y
    return f"{int(changed.sum())} px differ"


def compare(ref: Path, ref_report: dict, out: Path) -> tuple[set[str], list[str]]:
    """The images whose record or outputs differ from the reference, and what differed."""
    differing: set[str] = set()
    notes: list[str] = []
    mine = report(out)
    if mine is None:
        return {row["image"] for row in ref_report["images"]}, ["no readable report.json"]
    for key in ("detector", "total"):
        if mine.get(key) != ref_report.get(key):
            notes.append(f"{key}: {mine.get(key)} (reference {ref_report.get(key)})")
    rows = {row["image"]: row for row in mine["images"]}
    for row in ref_report["images"]:
        other = rows.pop(row["image"], None)
        if other is None:
            differing.add(row["image"])
            notes.append(f"{row['image']}: no row")
            continue
        fields = sorted(k for k in set(row) | set(other) if row.get(k) != other.get(k))
        if fields:
            differing.add(row["image"])
            notes.append(f"{row['image']}: " + "; ".join(f"{k} {other.get(k)!r} (reference {row.get(k)!r})"
                                                         for k in fields))
    for image in rows:
        differing.add(image)
        notes.append(f"{image}: a row the reference lacks")
    ref_files, files = outputs(ref), outputs(out)
    stems = {str(Path(row["image"]).with_suffix("")): row["image"] for row in ref_report["images"]}
    for path in sorted(set(ref_files) | set(files)):
        if ref_files.get(path) == files.get(path):
            continue
        differing.add(stems.get(image_of(path), path))
        if path not in files:
            notes.append(f"{path}: missing")
        elif path not in ref_files:
            notes.append(f"{path}: not in the reference")
        else:
            notes.append(f"{path}: bytes differ, {pixels_differing(ref / path, out / path)}")
    return differing, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="photos to anonymize (group photos)")
    parser.add_argument("--runs", type=int, default=10, help="runs with --workers (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the compared runs (default 2)")
    parser.add_argument("--detector", default="auto", help="p3m anonymize --detector (default auto)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per run (default 1800)")
    parser.add_argument("--keep", type=Path, help="write the output folders here and keep them")
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: not a folder")

    print(f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        package, source = source_fingerprint()
        print(f"p3m from {package}, source {source}")
        ref = root / "workers1"
        code, one, tail = run(args.folder, ref, 1, args.detector, args.timeout)
        ref_report = report(ref)
        now = source_fingerprint()[1]
        moved, source = now != source, now
        print(f"reference --workers 1: exit {exit_text(code)}, {one:.1f} s"
              + (" -- p3m's source changed during this run: not comparable" if moved else ""))
        if ref_report is None:
            print(f"no report from the reference run; stderr:\n{tail}")
            sys.exit(1)
        faces = ", ".join(f"{row['image']} {row['faces']}" for row in ref_report["images"])
        print(f"  detector {ref_report['detector']}; {len(ref_report['images'])} images, "
              f"{ref_report['total']['faces']} faces ({faces}); "
              f"statuses {sorted({row['status'] for row in ref_report['images']})}")
        equal, seconds, crashes, edited = 0, [], 0, 0
        for i in range(1, args.runs + 1):
            out = root / f"workers{args.workers}-run{i:02d}"
            run_code, secs, tail = run(args.folder, out, args.workers, args.detector, args.timeout)
            differing, notes = compare(ref, ref_report, out)
            now = source_fingerprint()[1]
            if now != source:
                edited += 1
                source = now
                notes.insert(0, f"p3m's source changed (now {now}): not comparable, may be the edit")
            if run_code != code:
                notes.insert(0, f"exit code {exit_text(run_code)} (reference {exit_text(code)})")
                crashes += run_code < 0 or run_code == 124
            same = not notes
            equal += same
            seconds.append(secs)
            print(f"run {i:2d} --workers {args.workers}: exit {exit_text(run_code)}, {secs:.1f} s, "
                  f"{len(differing)} image(s) differing" + ("" if same else f": {', '.join(sorted(differing))}"))
            for note in notes:
                print(f"    {note}")
            if run_code != code and tail:
                print("    stderr: " + tail.replace("\n", "\n            "))
        print(f"{equal}/{args.runs} runs equal to --workers 1" +
              ("" if equal == args.runs else f" ({crashes} crashed or timed out)") +
              (f"; p3m's source changed during {edited + moved} run(s)" if edited or moved else ""))
        median = statistics.median(seconds)
        print(f"speed: --workers 1 {one:.1f} s, --workers {args.workers} median {median:.1f} s "
              f"(min {min(seconds):.1f}, max {max(seconds):.1f}); ratio workers{args.workers}/workers1 "
              f"{median / one:.2f} ({one / median:.2f}x faster)")


if __name__ == "__main__":
    main()
