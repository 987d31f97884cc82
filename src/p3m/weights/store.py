"""Installed weights: a per-user cache of validated safetensors files.

Location: ``$P3M_HOME`` if set, else the platform's cache folder as platformdirs gives
it (``$XDG_CACHE_HOME/p3m`` or ``~/.cache/p3m`` on Linux, ``~/Library/Caches/p3m`` on
macOS, ``%LOCALAPPDATA%\\p3m\\Cache`` on Windows). ``install`` loads a checkpoint safely, checks it fits its network, and stores
it as ``weights/<name>.safetensors`` with the architecture in its metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from p3m.architectures import get_spec
from p3m.errors import ArchitectureError, CheckpointError, OutputError, P3MError


def p3m_home() -> Path:
    """The cache folder; P3M_HOME naming a file is an error, not a traceback later."""
    home = _home()
    if home.exists() and not home.is_dir():
        raise OutputError(f"{home}: the p3m cache folder (P3M_HOME or the platform cache) is a file, not a folder")
    return home


def _home() -> Path:
    if os.environ.get("P3M_HOME"):
        return Path(os.environ["P3M_HOME"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("p3m", appauthor=False))


def weights_dir() -> Path:
    return p3m_home() / "weights"


@dataclass(frozen=True)
class InstalledWeights:
    name: str
    arch: str
    path: Path
    size_mb: float


def install(source: str | os.PathLike, name: str | None = None, *, arch: str | None = None) -> InstalledWeights:
    """Validate ``source`` and store it as safetensors under ``name``.

    ``source``: a checkpoint file (anything ``load_model`` accepts), a URL (downloaded,
    resumable), or the name of a checkpoint the authors publish (``p3mnet-r34``,
    ``p3mnet-vitae-s``). A downloaded file is deleted once it is installed.
    """
    from p3m.weights.download import PUBLISHED, download, is_url

    text = os.fspath(source)
    if is_url(text) or (text in PUBLISHED and not Path(text).exists()):
        published = PUBLISHED.get(text)
        url = published.url if published else text
        downloaded = download(url, p3m_home() / "downloads", name=published.file if published else None)
        checkpoint = downloaded
        try:  # a whole download is removed whether it installs or not (an interrupted one stays, to resume)
            checkpoint = _unwrapped_zip(downloaded)
            return install(checkpoint, name or (published.name if published else None), arch=arch)
        finally:
            for path in {downloaded, checkpoint}:
                path.unlink(missing_ok=True)
    from p3m.weights.io import load_model, save_model

    model = load_model(source, arch=arch, device="cpu")
    name = name or model.arch_config["arch"]
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise CheckpointError(f"weights name {name!r}: use letters, digits, '-', '_' and '.'")
    path = save_model(model, weights_dir() / f"{name}.safetensors")
    return InstalledWeights(name, model.arch_config["arch"], path, path.stat().st_size / 1e6)


def _unwrapped_zip(path: Path) -> Path:
    """A zip archive holding one checkpoint (as some are shared) -> that checkpoint;
    anything else (a torch checkpoint is a zip too) as it is."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return path
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if any(n.endswith("data.pkl") for n in names):
            return path  # a torch checkpoint
        inner = [n for n in names if n.lower().endswith((".pth", ".pt", ".tar", ".ckpt", ".safetensors"))]
        if len(inner) != 1:
            raise CheckpointError(f"{path}: a zip archive without exactly one checkpoint inside ({len(inner)} found)")
        target = path.with_name(Path(inner[0]).name)
        if target == path:  # a zip named like the checkpoint it holds: never extract onto the archive
            target = path.with_name(f"unzipped-{target.name}")
        with archive.open(inner[0]) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    path.unlink()
    return target


def scan_installed() -> tuple[list[InstalledWeights], list[tuple[Path, str]]]:
    """Installed weights, and the files in the store that are not usable (with why)."""
    found, problems = [], []
    files = sorted(weights_dir().glob("*.safetensors")) if weights_dir().is_dir() else []
    if files:
        from p3m.weights.io import read_state_dict  # needs torch; an empty store does not
    for path in files:
        try:
            _, config, _ = read_state_dict(path)
        except P3MError as exc:
            problems.append((path, str(exc)))
            continue
        if not config:
            problems.append((path, "no architecture in its metadata (not written by p3m weights install)"))
            continue
        found.append(InstalledWeights(path.stem, config["arch"], path, path.stat().st_size / 1e6))
    return found, problems


def installed() -> list[InstalledWeights]:
    """The usable installed weights (unusable files are skipped; ``scan_installed`` names them)."""
    return scan_installed()[0]


def preferred(weights: list[InstalledWeights]) -> InstalledWeights | None:
    """The weights to run when none is named: the most preferred architecture (the
    paper's best first), then by name; None if the list is empty."""
    return min(weights, key=lambda w: (_preference(w.arch), w.name), default=None)


def _preference(arch: str) -> int:
    """The architecture's rank when none is named (the paper's best first)."""
    try:
        return get_spec(arch).preference
    except ArchitectureError:  # weights of an architecture no longer registered
        return 1_000
