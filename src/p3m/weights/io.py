"""Reading and writing network weights safely.

Published checkpoints are pickles; they are opened with ``torch.load(...,
weights_only=True)``, which refuses anything but tensors and plain containers, so no
code from a file ever runs. Our own format is safetensors with the architecture in
its metadata, so a file can be loaded without being told what it holds.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from p3m.architectures import build_model, canonical_arch, get_spec, infer_architecture
from p3m.errors import ArchitectureError, CheckpointError
from p3m.utils.device import resolve_device
from p3m.utils.files import atomic_path

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pth", ".pth.tar", ".ckpt", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
_META_ARCH = "p3m.arch_config"

StateDict = dict[str, torch.Tensor]
Source = Union[str, os.PathLike, Mapping]


#: Modules whose names in a pickle mean it would run code, not build data.
_CODE_MODULES = {"os", "posix", "nt", "subprocess", "builtins", "__builtin__", "io", "sys", "shutil", "socket",
                 "importlib", "runpy", "pty", "code", "ctypes", "pickle", "marshal", "functools", "operator"}
_GLOBAL = re.compile(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL)\s+([\w.]+)", re.IGNORECASE)


def _refusal(path: Path, text: str) -> str | None:
    """The message for a pickle that asks for a Python global; None if it does not."""
    found = _GLOBAL.search(text)
    if not found:
        return None
    name = found.group(1)
    module, _, attribute = name.rpartition(".")
    # a function (lower-case by convention) or anything from a code module would be called on loading
    if module.split(".")[0] in _CODE_MODULES or attribute[:1].islower():
        return (f"{path}: refused: it carries code ({name}) that would run on loading, and p3m never runs code "
                "from a checkpoint. A trustworthy checkpoint holds only tensors and data: ask its publisher for a "
                "plain state dict or a safetensors file, which p3m convert reads")
    return (f"{path}: refused: besides tensors it stores a Python object ({name}), and p3m loads only tensors. "
            f"If you trust the file, re-save its weights with that one class allowed, still without running "
            f"code: python -c \"import torch, {module}; torch.serialization.add_safe_globals([{name}]); "
            f"torch.save({{'state_dict': torch.load({str(path)!r}, weights_only=True)['state_dict']}}, 'plain.pth')\" "
            "then: p3m convert plain.pth model.safetensors")


def _first_reason(text: str) -> str:
    """torch's own explanation, without its advice to turn off weights_only."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and "weights_only" not in line and not line.startswith("Check the documentation")]
    return lines[0] if lines else "unreadable"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    return state, metadata


def _read_pickle(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        refusal = _refusal(path, text)
        if refusal:
            raise CheckpointError(refusal) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint, or truncated ({_first_reason(text)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError,
            AttributeError, TypeError) as exc:
        reason = _first_reason(str(exc)) if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint, or truncated ({reason})") from None


def read_state_dict(source: Source) -> tuple[StateDict, dict[str, Any] | None, str]:
    """Read weights from a file or mapping.

    Returns the state dict (``module.`` prefixes removed), the architecture config
    recorded in the file (safetensors written by p3m) or None, and a label for messages.
    """
    arch_config = None
    if isinstance(source, Mapping):
        raw, label = source, "<state dict>"
    else:
        path = Path(source)
        label = str(path)
        _check_file(path)
        if path.name.endswith(SAFETENSORS_SUFFIX):
            raw, metadata = _read_safetensors(path)
            if _META_ARCH in metadata:
                arch_config = _arch_metadata(path, metadata[_META_ARCH])
        else:
            raw = _read_pickle(path)
    state = _unwrap(raw, label)
    return _strip_prefix(state), arch_config, label


def _arch_metadata(path: Path, text: str) -> dict[str, Any]:
    """The architecture recorded in a p3m safetensors file, checked (it is user-editable)."""
    try:
        config = json.loads(text)
    except ValueError:
        raise CheckpointError(f"{path}: its metadata {_META_ARCH} is not valid JSON") from None
    if not isinstance(config, dict) or not isinstance(config.get("arch"), str):
        raise CheckpointError(f"{path}: its metadata {_META_ARCH} is not an object with an 'arch' name")
    try:
        defaults = get_spec(config["arch"]).options
    except ArchitectureError as exc:
        raise CheckpointError(f"{path}: its metadata {_META_ARCH} names {exc}") from None
    for name, value in config.items():
        if name == "arch":
            continue
        if name not in defaults:
            raise CheckpointError(f"{path}: its metadata {_META_ARCH} has option {name!r}, which "
                                  f"{config['arch']} does not take")
        if type(value) is not type(defaults[name]):
            expected = "true/false" if isinstance(defaults[name], bool) else type(defaults[name]).__name__
            raise CheckpointError(f"{path}: its metadata {_META_ARCH} option {name!r} is {value!r}, expected {expected}")
    return config


def _unwrap(raw: Any, label: str) -> StateDict:
    """Find the state dict inside a checkpoint (published: ``{"state_dict": ...}``)."""
    if isinstance(raw, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), Mapping):
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(f"{label}: holds no state dict (found {type(raw).__name__})")
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{label}: holds no tensors; is it a network checkpoint?")
    return dict(tensors)


def _strip_prefix(state: StateDict, prefix: str = "module.") -> StateDict:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def alias_map(model: nn.Module) -> dict[str, str]:
    """State-dict names that share their tensor with an earlier name: alias -> original."""
    first: dict[int, str] = {}
    aliases = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in first:
            aliases[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return aliases


def nonpersistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Buffers kept outside the state dict (ViTAE-S's Performer projections ``w``).

    Published checkpoints lack them (the published code draws them at random); p3m
    draws them from a fixed seed and stores them in its own safetensors files.
    """
    found = {}
    for prefix, module in model.named_modules():
        for name in getattr(module, "_non_persistent_buffers_set", ()):
            found[f"{prefix}.{name}" if prefix else name] = getattr(module, name)
    return found


def _mismatch_report(model: nn.Module, state: StateDict, arch: str, label: str) -> str | None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or shapes):
        return None

    def few(items: list[str]) -> str:
        more = f", ... (+{len(items) - 5})" if len(items) > 5 else ""
        return ", ".join(items[:5]) + more

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {few(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): {few(shapes)}")
    return f"{label}: does not fit architecture {arch!r}: " + "; ".join(parts)


def load_model(source: Source, *, arch: str | None = None, device: str | torch.device | None = None) -> nn.Module:
    """Load a P3M network in eval mode from a checkpoint, a state dict or safetensors.

    The architecture comes from ``arch`` if given, else from the file's metadata, else
    it is recognised from the keys. Raises :class:`CheckpointError` with the details
    (missing/unexpected keys, shape mismatches) when the weights do not fit.
    """
    state, recorded, label = read_state_dict(source)
    if arch is not None:
        config = {"arch": canonical_arch(arch)}
        inferred = infer_architecture(state)
        if inferred and inferred["arch"] == config["arch"]:
            config = inferred
    else:
        config = recorded or infer_architecture(state)
        if config is None:
            sample = ", ".join(list(state)[:3])
            raise CheckpointError(
                f"{label}: not a checkpoint of a known P3M network (first keys: {sample}); "
                "pass arch= (--arch) if it is one"
            )
    model = build_model(**config)
    for alias, original in alias_map(model).items():
        if alias not in state and original in state:
            state[alias] = state[original]
    extra = nonpersistent_buffers(model)
    carried = {name: state.pop(name) for name in list(state) if name in extra}
    problem = _mismatch_report(model, state, config["arch"], label)
    if problem:
        raise CheckpointError(problem)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        for name, value in carried.items():
            if value.shape != extra[name].shape:
                raise CheckpointError(f"{label}: {name} has shape {tuple(value.shape)}, expected {tuple(extra[name].shape)}")
            extra[name].copy_(value)
    seeded = sorted(set(extra) - set(carried))
    log.info("loaded %s as %s (architecture %s)%s", label, config["arch"],
             "recognised from the file" if arch is None else "as given",
             f"; {len(seeded)} Performer projection(s) from the fixed seed" if seeded else "")
    return model.eval().to(resolve_device(device))


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as safetensors with its architecture in the metadata.

    Alias entries (the same tensor under a second name) are stored once; loading
    restores them. Buffers outside the state dict (ViTAE-S's Performer projections)
    are stored too, so a saved model gives the same alpha when loaded again.
    """
    from safetensors.torch import save_file

    config = getattr(model, "arch_config", None)
    if config is None:
        raise CheckpointError("model has no arch_config; build it with p3m.build_model")
    path = Path(path)
    if not path.name.endswith(SAFETENSORS_SUFFIX):
        raise CheckpointError(f"{path}: weights are saved as safetensors; use a .safetensors name")
    aliases = alias_map(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in aliases}
    state.update({k: v.detach().cpu().contiguous() for k, v in nonpersistent_buffers(model).items()})
    metadata = {"format": "pt", _META_ARCH: json.dumps(config)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def convert_checkpoint(src: Source, dst: str | os.PathLike, *, arch: str | None = None) -> tuple[Path, dict]:
    """Convert a published checkpoint to safetensors; returns the path and arch config."""
    model = load_model(src, arch=arch, device="cpu")
    return save_model(model, dst), model.arch_config
