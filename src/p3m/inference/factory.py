"""The one place that decides what runs: ``open_engine``.

Every front end (the command line, the Python API, the service, the demo, the
benchmark, training validation, video and cluster runs) asks this module for a
:class:`~p3m.inference.engine.MattingEngine` and never chooses one itself. A spec is:

- ``"auto"``: installed P3M-Net weights (the most preferred architecture, or the one
  ``arch`` names) if there are any, else the default engine;
- ``"default"``: the default engine (segmentation + closed-form matting), a baseline
  that needs no P3M-Net weights;
- ``"live"``: the live engine (segmentation + guided filter), for frame rate on cameras;
- ``"p3m"``: installed P3M-Net weights, an error if there are none;
- an installed weights name (``p3m weights list``) or a checkpoint file;
- ``"onnx:PATH"`` or a ``.onnx`` file: a p3m ONNX export run by ONNX Runtime (no torch);
- an ``nn.Module`` following the P3M-Net output convention, or an engine (returned as is);
- :class:`p3m.options.EngineOptions`: its ``engine`` and its network options together.

Network options (``arch``, ``method``, ``precision``, ``max_size``, ``sizing``, a CUDA
``device``) left as None take P3M-Net's defaults. Given for an engine that has no use
for them, they are an error that says what to install, never silently dropped.
This module imports torch only when a network is opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from p3m.errors import CheckpointError, EngineError, InapplicableOptionError
from p3m.inference.engine import MattingEngine
from p3m.options import DEFAULT_ENGINE_DEFAULTS, ENGINE_KEYWORDS, NETWORK_DEFAULTS, EngineOptions

ONNX_PREFIX = "onnx:"
TORCH_HINT = 'pip install "p3m[torch]"'
INSTALL_HINT = "install P3M-Net weights once with: p3m weights install FILE (see the README, 'Getting P3M-Net')"


def open_engine(spec: Any = "auto", *, arch: str | None = None, method: str | None = None,
                device: str | None = None, precision: str | None = None, max_size: int | None = None,
                sizing: str | None = None, batch_size: int = 1, work_size: int | None = None,
                band: float | None = None) -> MattingEngine:
    """The engine ``spec`` names, ready to predict; ``engine.summary()`` says what runs and why."""
    given = EngineOptions(arch=arch, method=method, device=device, precision=precision, max_size=max_size,
                          sizing=sizing, batch_size=batch_size, work_size=work_size,
                          band=band)  # every option checked before anything is loaded
    if isinstance(spec, EngineOptions):
        if given.given():
            raise EngineError(f"{', '.join(given.given())}: give them in the EngineOptions, not beside it")
        spec, given = spec.engine, spec
    options, device = given.network(), given.device
    if isinstance(spec, MattingEngine):
        given = _given(options, device)
        if given:
            raise EngineError(f"{', '.join(given)}: options apply when an engine is opened, not to an open one")
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        _require_torch()
        return _network_engine(spec, None, options, device, reason="")
    text = os.fspath(spec)
    if text.startswith(ONNX_PREFIX) or text.endswith(".onnx"):
        return _onnx_engine(text.removeprefix(ONNX_PREFIX), options, device)
    if text == "default":
        return _default_engine(options, device, why="the default engine was asked for", reason="")
    if text == "live":
        return _live_engine(options, device)
    if text == "auto":  # the weights are looked for first: without any, torch is never imported (1.4 s)
        weights = _installed_weights(options["arch"])
        if weights is not None and _has_torch():
            return _network_engine(None, weights, options, device,
                                   reason=f"auto: installed P3M-Net weights '{weights.name}'")
        if weights is not None:
            return _default_engine(options, device, why="PyTorch is not installed",
                                   reason=f"auto: PyTorch is not installed; for P3M-Net: {TORCH_HINT}")
        return _default_engine(options, device, why="no P3M-Net weights are installed",
                               reason="auto: no P3M-Net weights installed; p3m weights install NAME"
                               + ("" if _has_torch() else f" and {TORCH_HINT}"))
    _require_torch()
    if text == "p3m":
        weights = _installed_weights(options["arch"])
        if weights is None:
            raise EngineError(f"no P3M-Net weights are installed; {INSTALL_HINT}, or pass a checkpoint file")
        return _network_engine(None, weights, options, device, reason=f"p3m: installed P3M-Net weights '{weights.name}'")
    return _network_engine(None, weights_file(text), options, device, reason="")


def _given(options: dict[str, Any], device: str | None) -> list[str]:
    """The network options that were set, as 'name value' for messages."""
    given = [f"{name} {value!r}" for name, value in options.items()
             if value is not None and name not in ("batch_size", "device", *DEFAULT_ENGINE_DEFAULTS)]
    if options.get("batch_size", 1) != 1:
        given.append(f"batch_size {options['batch_size']!r}")
    if device not in (None, "auto", "cpu"):
        given.append(f"device {device!r}")
    return given


def _default_engine(options: dict[str, Any], device: str | None, *, why: str, reason: str) -> MattingEngine:
    given = _given(options, device)
    if given:
        raise InapplicableOptionError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to P3M-Net, but {why} "
                          f"and the default engine (segmentation + closed-form matting, CPU) takes none; "
                          f"{INSTALL_HINT}, or leave {'it' if len(given) == 1 else 'them'} out")
    from p3m.inference.default_engine import SegmentationMattingEngine

    engine = SegmentationMattingEngine(**_with_defaults(options, DEFAULT_ENGINE_DEFAULTS))
    engine.reason = reason
    return engine


def _live_engine(options: dict[str, Any], device: str | None) -> MattingEngine:
    given = _given(options, device) + [name for name in DEFAULT_ENGINE_DEFAULTS if options.get(name) is not None]
    if given:
        raise InapplicableOptionError(f"{', '.join(given)}: the live engine (segmentation + guided filter, CPU) "
                                      f"takes no engine options; leave {'it' if len(given) == 1 else 'them'} out")
    from p3m.inference.live_engine import LiveMattingEngine

    engine = LiveMattingEngine()
    engine.reason = ""
    return engine


def _with_defaults(options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The options named in ``defaults``, each given value or else its default."""
    return {name: options[name] if options.get(name) is not None else default for name, default in defaults.items()}


def _no_default_engine_options(options: dict[str, Any], what: str) -> None:
    """work_size and band are the default engine's: refused for a network or an export."""
    given = [name for name in DEFAULT_ENGINE_DEFAULTS if options.get(name) is not None]
    if given:
        raise InapplicableOptionError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to the default "
                                      f"engine (segmentation + closed-form matting), not to {what}; leave "
                                      f"{'it' if len(given) == 1 else 'them'} out")


def _onnx_engine(path: str, options: dict[str, Any], device: str | None) -> MattingEngine:
    from p3m.inference.onnx_engine import OnnxEngine

    _no_default_engine_options(options, "an ONNX export")
    if options["precision"] not in (None, "fp32"):
        raise EngineError(f"precision {options['precision']!r}: ONNX Runtime runs an export in fp32; "
                          "for bf16 on the CPU, run the PyTorch weights with --precision bf16")
    if options["arch"] is not None:
        raise EngineError(f"arch {options['arch']!r}: an ONNX export records its architecture; leave arch out")
    settings = _with_defaults(options, {name: NETWORK_DEFAULTS[name] for name in ("method", "max_size", "sizing")})
    engine = OnnxEngine(path, device=device, batch_size=options["batch_size"], **settings)
    engine.reason = ""
    return engine


def _installed_weights(arch: str | None):
    """The installed weights to run: of ``arch`` if given, else the most preferred; None if none."""
    from p3m.weights.store import installed, preferred

    found = installed()
    if arch is not None:
        of_arch = [w for w in found if w.arch == arch]
        if found and not of_arch:
            names = ", ".join(f"{w.name} ({w.arch})" for w in found)
            raise EngineError(f"no installed weights of architecture {arch} (installed: {names}); {INSTALL_HINT}")
        found = of_arch
    return preferred(found)


def weights_file(text: str) -> Path:
    """An installed name or an existing file."""
    from p3m.weights.store import installed

    if Path(text).is_file():
        return Path(text)
    by_name = {w.name: w.path for w in installed()}
    if text in by_name:
        return by_name[text]
    if Path(text).exists():
        return Path(text)  # a folder: load_model names the problem
    if os.sep in text or Path(text).suffix:  # meant as a file
        raise CheckpointError(f"{text}: no such file")
    names = ", ".join(by_name) or "none installed"
    raise EngineError(f"{text}: no such file, and not an engine ({', '.join(ENGINE_KEYWORDS)}) or installed weights "
                      f"name ({names})")


def _has_torch() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:  # torch in sys.modules as None (imports of it blocked)
        return False


def _require_torch() -> None:
    from p3m.utils.optional import require

    require("torch", "torch", "running P3M-Net weights (a .onnx export runs without it)")


def _network_engine(model, weights, options: dict[str, Any], device: str | None, *, reason: str) -> MattingEngine:
    from p3m.inference.network_engine import NetworkEngine
    from p3m.weights import load_model

    _no_default_engine_options(options, "P3M-Net")
    if weights is not None:
        weights = getattr(weights, "path", weights)  # InstalledWeights or a path
        model, device = load_model(weights, arch=options["arch"], device=device), None  # already there
    elif options["arch"] is not None:
        raise EngineError(f"arch {options['arch']!r}: a network object is already built; arch applies to files")
    settings = _with_defaults(options, NETWORK_DEFAULTS)
    engine = NetworkEngine(model, device=device, batch_size=options["batch_size"], weights=weights, **settings)
    engine.reason = reason
    return engine


def predict_alpha(engine: Any, image, *, max_pixels: int | None = None, **options: Any):
    """Alpha matte (float32 H x W in [0, 1], the image's size) of one portrait.

    ``engine``: anything :func:`open_engine` takes (``"auto"``, ``"default"``, a
    checkpoint, a network, an engine); ``options`` are its options (method, device,
    ...). ``image``: a path, PIL image or H x W x 3 uint8 RGB array. For many images,
    open the engine once and call ``engine.predict``.
    """
    from p3m.io.images import DEFAULT_MAX_PIXELS, load_image

    rgb = load_image(image, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    return open_engine(engine, **options).predict([rgb])[0]
