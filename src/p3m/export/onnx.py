"""P3M networks as ONNX files that ONNX Runtime runs without PyTorch.

One export writes three graphs, each with dynamic height and width (multiples of 32):

- ``NAME.onnx``: the whole network, outputs ``global_logits``, ``local_alpha`` and
  ``fusion_alpha`` (RESIZE runs it at half size);
- ``NAME.global.onnx``: the semantic branch only, ``global_logits`` (HYBRID's pass at
  half size);
- ``NAME.local.onnx``: the matting branch only, ``local_alpha`` (HYBRID's pass at full
  size; no semantic head, no side outputs).

Each file carries what an engine needs in its metadata (``p3m.*`` keys): the
architecture, the graph, the input normalisation and the size multiple. The exporter is
PyTorch's ``torch.onnx.export(dynamo=True)``; after writing, each graph is run by ONNX
Runtime on two input sizes and compared with PyTorch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from p3m.architectures import IMAGENET_MEAN, IMAGENET_STD, spec_of
from p3m.errors import OptionError
from p3m.export.files import GRAPHS, OUTPUTS, graph_path
from p3m.utils.files import atomic_path
from p3m.utils.optional import require

#: ONNX operator set of the exported graphs (ONNX Runtime >= 1.14 runs it).
OPSET = 18
#: Height and width are multiples of this; the encoder pools five times.
MULTIPLE = 32
#: The largest side an exported graph accepts (256 x 32), far above the default max_size 1600.
MAX_SIDE = 8192
#: Sizes each exported graph is checked at (height, width), both multiples of 32.
CHECK_SIZES = ((64, 96), (160, 128))


class _Graph(nn.Module):
    """One of the three graphs of a P3M network, with plain tensor outputs."""

    def __init__(self, model: nn.Module, graph: str) -> None:
        super().__init__()
        self.model, self.graph = model, graph

    def forward(self, x: torch.Tensor):
        if self.graph == "global":
            return self.model.forward_global(x)
        if self.graph == "local":
            return self.model.forward_local(x)
        out = self.model(x)
        return out[0], out[1], out[2]


@dataclass
class ExportResult:
    """The files written and, per graph, the largest difference from PyTorch."""

    paths: dict[str, Path] = field(default_factory=dict)
    max_difference: dict[str, float] = field(default_factory=dict)


def export_onnx(model: nn.Module, path: str | os.PathLike, *, graphs: tuple[str, ...] = GRAPHS,
                opset: int = OPSET, check: bool = True, source: str = "", int8: bool = False) -> ExportResult:
    """Write ``graphs`` of ``model`` (eval mode, on the CPU) as ONNX files named after ``path``;
    with ``int8``, statically quantised (p3m.export.quantize)."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise OptionError(f"{path}: an ONNX export is named NAME.onnx")
    unknown = [g for g in graphs if g not in GRAPHS]
    if unknown:
        raise OptionError(f"unknown graph(s) {unknown}; choose from {', '.join(GRAPHS)}")
    missing = [name for name in ("forward_global", "forward_local") if not hasattr(model, name)]
    if missing and set(graphs) != {"full"}:
        raise OptionError(f"the network has no {' or '.join(missing)}; export graphs=('full',) only")
    model = model.float().eval().cpu()
    if int8:
        from p3m.export.quantize import quantize_export

        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / path.name
            export_onnx(model, fp32, graphs=graphs, opset=opset, check=False, source=source)
            path.parent.mkdir(parents=True, exist_ok=True)
            result = ExportResult(paths=quantize_export(fp32, path, graphs))
        if check:
            for graph, target in result.paths.items():
                result.max_difference[graph] = compare_with_torch(_Graph(model, graph).eval(), target)
        return result
    spec = spec_of(model)
    metadata = {
        "p3m.arch": spec.name if spec else type(model).__name__,
        "p3m.mean": json.dumps(list(spec.mean if spec else IMAGENET_MEAN)),
        "p3m.std": json.dumps(list(spec.std if spec else IMAGENET_STD)),
        "p3m.multiple": str(MULTIPLE),
        "p3m.opset": str(opset),
        "p3m.source": source,
    }
    result = ExportResult()
    path.parent.mkdir(parents=True, exist_ok=True)
    for graph in graphs:
        target = graph_path(path, graph)
        wrapped = _Graph(model, graph).eval()
        with atomic_path(target) as temporary:
            _export_graph(wrapped, temporary, graph, opset, {**metadata, "p3m.graph": graph})
            if check:
                result.max_difference[graph] = compare_with_torch(wrapped, temporary)
        result.paths[graph] = target
    return result


def _export_graph(wrapped: nn.Module, target: Path, graph: str, opset: int, metadata: dict[str, str]) -> None:
    for module in ("onnx", "onnxscript"):  # torch's exporter imports them
        require(module, "export", "exporting to ONNX")
    import onnx

    h = torch.export.Dim("h", min=1, max=MAX_SIDE // MULTIPLE)
    w = torch.export.Dim("w", min=1, max=MAX_SIDE // MULTIPLE)
    example = torch.zeros(2, 3, 4 * MULTIPLE, 4 * MULTIPLE)  # batch 2: a size-1 dim would be fixed
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.inference_mode(False), torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(wrapped, (example,), input_names=["image"], output_names=OUTPUTS[graph],
                                    opset_version=opset, dynamo=True, verbose=False,
                                    dynamic_shapes={"x": {0: batch, 2: MULTIPLE * h, 3: MULTIPLE * w}})
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, os.fspath(target))


#: Loggers of the exporter that report its own internals (missing torchvision ops,
#: attribute defaults) as warnings; nothing in them is about the user's model.
_EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's internal warnings for one export (errors still raise)."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def compare_with_torch(wrapped: nn.Module, onnx_file: Path) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch over CHECK_SIZES."""
    onnxruntime = require("onnxruntime", "export", "checking an ONNX export")
    session = onnxruntime.InferenceSession(os.fspath(onnx_file), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for height, width in CHECK_SIZES:
        x = torch.randn(1, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = wrapped(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {"image": x.numpy()})
        for e, g in zip(expected, got):
            worst = max(worst, float(np.abs(e.numpy() - g).max()))
    return worst
