"""Static int8 for an ONNX export: ONNX Runtime's post-training quantisation,
calibrated on synthetic portraits.

Weights are quantised per output channel (int8), activations per tensor (uint8), in
the QDQ format ONNX Runtime and OpenVINO both read. The calibration images are 16 of
p3m's own synthetic portraits (:mod:`p3m.data.synthetic`) of 512 x 384, given to each
graph as RESIZE and HYBRID give it a photo: at half size to the whole network and the
global pass, at full size to the local pass. Nothing is downloaded.

Measured on a briefly trained ResNet-34 (docs/performance.md): SAD 0.5% from fp32
(bf16 0.2%); on a 2-core Xeon with AMX it runs 1.32x ONNX Runtime's fp32, and
slower than PyTorch's bf16. Its place is a CPU without bf16, or an install without
torch that wants a 4x smaller file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from p3m.export.files import graph_path
from p3m.utils.files import atomic_path
from p3m.utils.optional import require

#: Calibration portraits (height x width at full size; the half-size graphs see half).
CALIBRATION_SIZE = (512, 384)
CALIBRATION_IMAGES = 16


def calibration_images(count: int = CALIBRATION_IMAGES, size: tuple[int, int] = CALIBRATION_SIZE,
                       seed: int = 0) -> list[np.ndarray]:
    """``count`` synthetic portraits (uint8 H x W x 3), the same for a given seed."""
    from p3m.data.synthetic import make_portrait

    rng = np.random.default_rng(seed)
    return [make_portrait(rng, *size).image for _ in range(count)]


def _inputs(images: list[np.ndarray], graph: str, mean: np.ndarray, std: np.ndarray) -> list[np.ndarray]:
    """Normalised N x 3 x h x w inputs at the size the graph runs at (multiples of 32)."""
    import cv2

    out = []
    for image in images:
        h, w = image.shape[:2]
        if graph != "local":  # RESIZE's whole network and HYBRID's global pass run at half size
            h, w = h // 2, w // 2
        h, w = max(32, h // 32 * 32), max(32, w // 32 * 32)
        x = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        out.append(((x.transpose(2, 0, 1)[None] - mean) / std).astype(np.float32))
    return out


def quantize_graph(source: Path, target: Path, images: list[np.ndarray]) -> None:
    """Write ``source`` (an fp32 graph of a p3m export) as static int8 at ``target``,
    keeping its p3m metadata and recording the quantisation in it."""
    onnx = require("onnx", "export", "quantising an ONNX export")
    require("onnxruntime", "export", "quantising an ONNX export")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(os.fspath(source))
    meta = {p.key: p.value for p in model.metadata_props}
    mean = np.asarray(json.loads(meta["p3m.mean"]), np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(json.loads(meta["p3m.std"]), np.float32).reshape(1, 3, 1, 1)
    feeds = iter([{model.graph.input[0].name: x} for x in _inputs(images, meta["p3m.graph"], mean, std)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantised = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(os.fspath(source), os.fspath(prepared), skip_symbolic_shape=True)
        quantize_static(os.fspath(prepared), os.fspath(quantised), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        result = onnx.load(os.fspath(quantised))
    del result.metadata_props[:]
    meta.update({"p3m.precision": "int8",
                 "p3m.calibration": f"{len(images)} synthetic portraits (p3m.data.synthetic)"})
    for key, value in meta.items():
        entry = result.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(target) as temporary:
        onnx.save_model(result, os.fspath(temporary))


def quantize_export(fp32_path: Path, target: Path, graphs: tuple[str, ...],
                    images: list[np.ndarray] | None = None) -> dict[str, Path]:
    """Each of ``graphs`` of the fp32 export at ``fp32_path`` as int8, named after ``target``."""
    images = calibration_images() if images is None else images
    written = {}
    for graph in graphs:
        written[graph] = graph_path(target, graph)
        quantize_graph(graph_path(fp32_path, graph), written[graph], images)
    return written
