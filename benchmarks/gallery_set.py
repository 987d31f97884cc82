"""Assemble the labelled set of ``privacy_gallery.py`` from the public repositories it names.

The set's labels (face boxes, poses, identities, derived probes, the gallery) live in
``benchmarks/data/gallery_set.json``; its photos stay in their repositories. Each photo's
source gives repository, path, commit and licence, so any copy of those repositories
(a clone or a bare mirror) rebuilds the folder exactly, and nothing is downloaded here::

    python benchmarks/gallery_set.py /tmp/gallery --repos /path/to/mirrors
    python benchmarks/privacy_gallery.py /tmp/gallery

A repository ``owner/name`` is looked for in ``--repos`` as ``owner+name/repo`` (a bare
mirror, as fetched for p3m), ``owner+name`` (bare) or ``name`` (a clone). A photo stored
under another format than its name in the set (two WebP files named .jpeg) is decoded
and written as PNG; every other photo is copied byte for byte.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageOps

SET = Path(__file__).parent / "data" / "gallery_set.json"


def git_dir(repos: Path, repo: str) -> Path:
    """The git directory of ``repo`` (owner/name) under ``repos``."""
    owner, name = repo.split("/")
    for candidate in (repos / f"{owner}+{name}" / "repo", repos / f"{owner}+{name}", repos / name / ".git"):
        if (candidate / "HEAD").is_file():
            return candidate
    raise SystemExit(f"{repo}: no copy of it under {repos} (as {owner}+{name}/repo, {owner}+{name} or {name})")


def blob(repos: Path, source: dict) -> bytes:
    """The bytes of ``source``'s file at its commit."""
    spec = f"{source['commit']}:{source['path']}"
    done = subprocess.run(["git", "--git-dir", str(git_dir(repos, source["repo"])), "show", spec],
                          capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{source['repo']} {spec}: {done.stderr.decode().strip()}")
    return done.stdout


def _kind(path: Path) -> str:
    """A file's format by its suffix (.jpeg and .jpg are one)."""
    suffix = path.suffix.lower()
    return ".jpg" if suffix == ".jpeg" else suffix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to assemble (privacy_gallery.py's argument)")
    parser.add_argument("--repos", type=Path, required=True, help="where the repositories' copies are")
    parser.add_argument("--set", type=Path, default=SET, help="the labels (default: %(default)s)")
    args = parser.parse_args()
    manifest = json.loads(args.set.read_text())
    for name, relative in sorted(manifest["photos"].items()):
        source, target = manifest["sources"][name], args.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        data = blob(args.repos, source)
        if _kind(Path(source["path"])) == _kind(target):
            target.write_bytes(data)  # as published: its EXIF orientation is read as the photo's
        else:
            with Image.open(io.BytesIO(data), formats=("WEBP", "JPEG", "PNG")) as image:
                ImageOps.exif_transpose(image).convert("RGB").save(target, format="PNG")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest['photos'])} photos from {len({s['repo'] for s in manifest['sources'].values()})} "
          f"repositories in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
