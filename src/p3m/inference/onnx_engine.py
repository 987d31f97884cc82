"""An exported P3M network run by ONNX Runtime, with the published RESIZE or HYBRID strategy.

No torch: the strategy's resizing and HYBRID's "exactly foreground / background after
resizing" rule come from :mod:`p3m.inference.bilinear`, the same rules the PyTorch
engine applies to tensors. HYBRID uses the export's ``.global.onnx`` and
``.local.onnx`` graphs when they are there, else the whole network for both passes.
The CPU provider runs by default; CUDA when asked for (or with ``device="auto"``) and
onnxruntime-gpu provides it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from p3m.errors import CheckpointError, OptionError, choice_error
from p3m.export.files import graph_path
from p3m.inference.bilinear import resize_array, resized_class_is_exact_array
from p3m.inference.engine import METHODS, BatchingEngine
from p3m.inference.sizing import network_size
from p3m.models.classes import BACKGROUND, FOREGROUND
from p3m.utils.optional import require

DEVICES = ("auto", "cpu", "cuda")


def _import_onnxruntime():
    return require("onnxruntime", "onnx", "running an ONNX export (for CUDA: pip install onnxruntime-gpu)")


def providers_for(device: str | None) -> list[str]:
    """ONNX Runtime execution providers for a device word."""
    device = device or "cpu"
    if device not in DEVICES:
        raise choice_error("device", device, DEVICES)
    available = _import_onnxruntime().get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise OptionError("device 'cuda': this ONNX Runtime has no CUDA provider (pip install onnxruntime-gpu); "
                          f"available: {', '.join(available)}")
    return ["CPUExecutionProvider"]


class _Graph:
    """One ONNX file, opened in ONNX Runtime, with its p3m metadata."""

    def __init__(self, path: Path, providers: list[str], threads: int | None) -> None:
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(os.fspath(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own types for unreadable or invalid files
            raise CheckpointError(f"{path}: not an ONNX model ONNX Runtime can run ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "p3m.graph" not in meta:
            raise CheckpointError(f"{path}: not exported by p3m (no p3m.graph metadata); export with: p3m export onnx")
        self.path, self.graph, self.arch = path, meta["p3m.graph"], meta.get("p3m.arch", "?")
        self.precision = meta.get("p3m.precision", "fp32")  # int8 for `p3m export onnx --int8`
        self.mean, self.std = (_channels(path, meta, key) for key in ("p3m.mean", "p3m.std"))
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, x: np.ndarray, output: str) -> np.ndarray:
        return self.session.run([output], {self.input: x})[0]


def _channels(path: Path, meta: dict[str, str], key: str) -> np.ndarray:
    """Three finite, per-channel numbers from the export's metadata (a damaged or edited
    file gets one line, not a traceback)."""
    try:
        values = np.asarray(json.loads(meta[key]), np.float64).reshape(1, 3, 1, 1)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its {key} metadata is missing or not three numbers ({exc!s:.80}); "
                              "export it again with: p3m export onnx") from None
    if not np.isfinite(values).all() or (key == "p3m.std" and (values <= 0).any()):
        raise CheckpointError(f"{path}: its {key} metadata {values.ravel().tolist()} is not usable; export it again")
    return values.astype(np.float32)


class OnnxEngine(BatchingEngine):
    """A p3m ONNX export (``NAME.onnx`` and, for HYBRID, its ``.global``/``.local`` graphs)."""

    def __init__(self, path: str | os.PathLike, *, method: str = "hybrid", max_size: int = 1600,
                 sizing: str = "aspect", device: str | None = None, batch_size: int = 1,
                 threads: int | None = None) -> None:
        method = method.lower()
        if method not in METHODS:
            raise choice_error("method", method, METHODS)
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such file")
        self.method, self.max_size, self.sizing = method, max_size, sizing
        self.border = "zero" if sizing == "published" else "edge"
        self.batch_size = max(1, batch_size)
        providers = providers_for(device)
        self.full = _Graph(path, providers, threads)
        if self.full.graph != "full":
            raise CheckpointError(f"{path}: this is the {self.full.graph} graph of an export; "
                                  f"open the whole network's file, {graph_path(path, 'full').name}")
        self.global_graph = self.local_graph = self.full
        if method == "hybrid":
            self.global_graph = self._optional(graph_path(path, "global"), providers, threads)
            self.local_graph = self._optional(graph_path(path, "local"), providers, threads)
        self.weights = path
        where = "CUDA" if providers[0].startswith("CUDA") else "CPU"
        precision = "" if self.full.precision == "fp32" else f", {self.full.precision}"
        self.description = f"{self.full.arch} ONNX ({method.upper()}, {sizing} sizing, ONNX Runtime {where}{precision})"

    def _optional(self, path: Path, providers: list[str], threads: int | None) -> _Graph:
        if not path.is_file():
            return self.full
        graph = _Graph(path, providers, threads)
        if graph.precision != self.full.precision:  # an older export left beside a new one
            raise CheckpointError(f"{path}: an {graph.precision} graph beside the {self.full.precision} "
                                  f"{self.full.path.name}; export all the graphs again with the same options")
        return graph

    def _input(self, batch: np.ndarray, size: tuple[int, int], graph: _Graph) -> np.ndarray:
        """uint8 N x H x W x 3 -> resized, normalised float32 N x 3 x h x w."""
        x = batch.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        x = resize_array(x, size, border=self.border)
        return np.ascontiguousarray((x - graph.mean) / graph.std, dtype=np.float32)

    def _size(self, h: int, w: int, ratio: float) -> tuple[int, int]:
        return network_size(h, w, ratio, max_size=self.max_size, sizing=self.sizing)

    def run(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 (one size) -> float32 N x H x W alphas in [0, 1]."""
        h, w = images.shape[1:3]
        half = self._size(h, w, 0.5)
        if self.method == "resize":
            fusion = self.full.run(self._input(images, half, self.full), "fusion_alpha")
            alpha = resize_array(fusion, (h, w), border=self.border)
        else:
            logits = self.global_graph.run(self._input(images, half, self.global_graph), "global_logits")
            classes = logits.argmax(axis=1)
            fg = resized_class_is_exact_array(classes, FOREGROUND, (h, w), border=self.border)[:, None]
            bg = resized_class_is_exact_array(classes, BACKGROUND, (h, w), border=self.border)[:, None]
            unknown = ~(fg | bg)
            alpha = fg.astype(np.float32)
            if unknown.any():  # otherwise the global pass has decided every pixel
                x = self._input(images, self._size(h, w, 1.0), self.local_graph)
                local = resize_array(self.local_graph.run(x, "local_alpha"), (h, w), border=self.border)
                alpha = np.where(unknown, local, alpha)
        return np.clip(alpha[:, 0], 0, 1).astype(np.float32)
