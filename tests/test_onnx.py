"""ONNX export and the ONNX Runtime engine: the graphs equal PyTorch, the engine equals
the PyTorch engine's RESIZE and HYBRID, and an export runs with no torch at all."""

from __future__ import annotations

import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from p3m.cli.main import main
from p3m.errors import CheckpointError, EngineError, OptionError
from p3m.export import export_onnx
from p3m.inference import open_engine
from p3m.inference.bilinear import resize_array, resized_class_is_exact_array
from p3m.inference.network_engine import NetworkEngine
from p3m.inference.onnx_engine import OnnxEngine
from p3m.inference.resize import resize_bilinear, resized_class_is_exact
from p3m.reference import load_reference_outputs

ort = pytest.importorskip("onnxruntime")


# -- the torch-free resizing rules ----------------------------------------------------
@pytest.mark.parametrize("border", ["edge", "zero"])
@pytest.mark.parametrize("shape,size", [((2, 3, 7, 9), (14, 5)), ((1, 1, 32, 32), (19, 47)), ((1, 3, 5, 5), (5, 5))])
def test_numpy_resize_equals_torch_resize(border, shape, size):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = resize_bilinear(torch.from_numpy(x), size, border=border).numpy()
    np.testing.assert_allclose(resize_array(x, size, border=border), expected, atol=2e-6)


@pytest.mark.parametrize("border", ["edge", "zero"])
@pytest.mark.parametrize("value", [0, 1, 2])
def test_numpy_exact_class_rule_equals_torch_rule(border, value):
    classes = np.random.default_rng(value).integers(0, 3, (2, 6, 8))
    classes[:, 2:5, 3:7] = value  # a block where the rule can hold
    for size in [(12, 16), (13, 21), (6, 8)]:
        expected = resized_class_is_exact(torch.from_numpy(classes), value, size, border=border).numpy()
        got = resized_class_is_exact_array(classes, value, size, border=border)
        assert got.dtype == bool and np.array_equal(got, expected)


# -- export ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def r34_export(tmp_path_factory, published_checkpoint):
    """The fixture ResNet-34 exported by the command line (all three graphs)."""
    path = tmp_path_factory.mktemp("onnx") / "r34.onnx"
    assert main(["export", "onnx", str(published_checkpoint), "-o", str(path)]) == 0
    return path


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x})))


@pytest.mark.slow
def test_exported_graphs_equal_pytorch_on_the_reference_fixture(r34_export, reference_model, capsys):
    reference = load_reference_outputs("p3mnet-r34")
    x = reference["input"]
    with torch.no_grad():
        out = reference_model(torch.from_numpy(x))
        expected = {"global_logits": out.global_logits.numpy(), "local_alpha": out.local_alpha.numpy(),
                    "fusion_alpha": out.fusion_alpha.numpy()}
    names = {"full": r34_export, "global": r34_export.with_name("r34.global.onnx"),
             "local": r34_export.with_name("r34.local.onnx")}
    seen = set()
    for graph, path in names.items():
        got = _run(path, x)
        for name, value in got.items():
            assert np.abs(value - expected[name]).max() <= 1e-4, (graph, name)
            seen.add(name)
    assert seen == set(expected)
    # a batch of two different images of another size: the batch and size are dynamic
    x2 = np.random.default_rng(0).standard_normal((2, 3, 64, 160)).astype(np.float32)
    with torch.no_grad():
        expected2 = reference_model(torch.from_numpy(x2)).global_logits.numpy()
    assert np.abs(_run(names["global"], x2)["global_logits"] - expected2).max() <= 1e-4


@pytest.mark.slow
def test_vitae_export_equals_pytorch_on_the_reference_fixture(tmp_path, vitae_reference):
    reference = load_reference_outputs("p3mnet-vitae-s")
    result = export_onnx(vitae_reference, tmp_path / "vitae.onnx", graphs=("full",))
    assert result.max_difference["full"] <= 1e-4
    got = _run(result.paths["full"], reference["input"])
    with torch.no_grad():
        out = vitae_reference(torch.from_numpy(reference["input"]))
    assert np.abs(got["global_logits"] - out.global_logits.numpy()).max() <= 1e-4
    assert np.abs(got["local_alpha"] - out.local_alpha.numpy()).max() <= 1e-4
    meta = ort.InferenceSession(str(result.paths["full"])).get_modelmeta().custom_metadata_map
    assert meta["p3m.arch"] == "p3mnet-vitae-s" and meta["p3m.graph"] == "full" and meta["p3m.opset"] == "18"


def test_export_refuses_a_name_without_onnx_suffix(tmp_path, reference_model):
    with pytest.raises(OptionError, match="NAME.onnx"):
        export_onnx(reference_model, tmp_path / "model.bin")
    with pytest.raises(OptionError, match="unknown graph"):
        export_onnx(reference_model, tmp_path / "model.onnx", graphs=("half",))


# -- the engine -----------------------------------------------------------------------
def _portrait(h: int = 640, w: int = 480) -> np.ndarray:
    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


def _close(a: np.ndarray, b: np.ndarray) -> None:
    """Two backends' alphas: equal but for isolated pixels.

    Float differences of 1e-6 flip near-ties in the encoder's max-pool indices (the
    matting decoder unpools through them) and the global argmax; between PyTorch's own
    contiguous and channels-last runs the same share of pixels moves.
    """
    diff = np.abs(a - b)
    assert a.shape == b.shape
    assert diff.mean() < 1e-3
    assert (diff > 1e-3).mean() < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("method", ["resize", "hybrid"])
@pytest.mark.parametrize("sizing", ["aspect", "published"])
def test_onnx_engine_equals_the_pytorch_engine(r34_export, reference_model, method, sizing):
    image = _portrait()
    engine = open_engine(f"onnx:{r34_export}", method=method, sizing=sizing)
    assert "ONNX Runtime CPU" in engine.summary() and method.upper() in engine.summary()
    expected = NetworkEngine(reference_model, method=method, sizing=sizing).predict([image])[0]
    _close(engine.predict([image])[0], expected)


@pytest.mark.slow
def test_hybrid_with_the_full_graph_only_equals_the_split_graphs(r34_export, tmp_path):
    alone = tmp_path / "alone.onnx"
    shutil.copy(r34_export, alone)
    images = [_portrait(), _portrait(320, 256)]
    split = open_engine(str(r34_export), method="hybrid", batch_size=2).predict(images)
    full = open_engine(str(alone), method="hybrid", batch_size=2).predict(images)
    for a, b in zip(split, full):
        _close(a, b)


@pytest.mark.slow
def test_onnx_engine_refusals(r34_export, tmp_path):
    with pytest.raises(CheckpointError, match="the global graph"):
        open_engine(str(r34_export.with_name("r34.global.onnx")))
    with pytest.raises(EngineError, match="fp32"):
        open_engine(str(r34_export), precision="bf16")
    with pytest.raises(EngineError, match="records its architecture"):
        open_engine(str(r34_export), arch="p3mnet-r34")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(OptionError, match="no CUDA provider"):
            open_engine(str(r34_export), device="cuda")


def test_onnx_engine_refuses_files_that_are_not_p3m_exports(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    identity = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "g",
                                 [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1])],
                                 [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save_model(helper.make_model(identity, opset_imports=[helper.make_opsetid("", 18)]), foreign)
    with pytest.raises(CheckpointError, match=r"foreign\.onnx: not exported by p3m"):
        open_engine(f"onnx:{foreign}")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"garbage\.onnx: not an ONNX model"):
        open_engine(str(garbage))
    with pytest.raises(CheckpointError, match="no such file"):
        open_engine(str(tmp_path / "missing.onnx"))


# -- no torch -------------------------------------------------------------------------
def _without_torch(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``import torch`` fails."""
    prelude = "import sys\nsys.modules['torch'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_an_export_runs_without_torch(r34_export, tmp_path):
    image = tmp_path / "portrait.png"
    cv2.imwrite(str(image), cv2.cvtColor(_portrait(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    result = _without_torch(f"from p3m.cli.main import main\n"
                            f"code = main(['matte', {str(image)!r}, '--engine', 'onnx:{r34_export}', "
                            f"'-o', {str(out)!r}, '--method', 'resize'])\n"
                            "assert 'torch' not in [m.partition('.')[0] for m in sys.modules if sys.modules[m]]\n"
                            "sys.exit(code)")
    assert result.returncode == 0, result.stderr
    alpha = cv2.imread(str(out / "alpha" / "portrait.png"), cv2.IMREAD_GRAYSCALE)
    assert alpha is not None and alpha.shape == (640, 480)


def test_without_torch_pytorch_weights_say_which_extra_to_install(published_checkpoint, tmp_path):
    image = tmp_path / "portrait.png"
    cv2.imwrite(str(image), _portrait(64, 64))
    result = _without_torch(f"from p3m.inference import open_engine\nopen_engine({str(published_checkpoint)!r})")
    assert result.returncode != 0
    assert 'pip install "p3m[torch]"' in result.stderr and "onnx" in result.stderr
    result = _without_torch(f"from p3m.cli.main import main\nsys.exit(main(['matte', {str(image)!r}, '--engine', "
                            f"{str(published_checkpoint)!r}, '-o', {str(tmp_path / 'out')!r}]))")
    assert result.returncode == 1
    assert 'pip install "p3m[torch]"' in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("mean, std, problem", [
    (None, "[1, 1, 1]", "p3m.mean metadata is missing or not three numbers"),
    ("[0.5, 0.5", "[1, 1, 1]", "p3m.mean metadata is missing or not three numbers"),
    ("[0.5, 0.5]", "[1, 1, 1]", "p3m.mean metadata is missing or not three numbers"),
    ("[0.5, 0.5, 0.5]", "[1, 0, 1]", "p3m.std metadata [1.0, 0.0, 1.0] is not usable"),
])
def test_damaged_export_metadata_is_one_line(tmp_path, mean, std, problem):
    """A p3m-tagged model whose normalisation metadata is missing or damaged: one line, not a traceback."""
    from onnx import TensorProto, helper

    import p3m
    from p3m.errors import CheckpointError

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    meta = {"p3m.graph": "full", "p3m.std": std, **({"p3m.mean": mean} if mean is not None else {})}
    helper.set_model_props(model, meta)
    path = tmp_path / "damaged.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(CheckpointError, match=problem.replace("[", r"\[").replace("]", r"\]")) as refused:
        p3m.open_engine(f"onnx:{path}")
    assert "\n" not in str(refused.value)


# -- int8 -------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_int8_export_keeps_its_metadata_and_runs_close_to_fp32(r34_export, tmp_path):
    import onnx

    from p3m.export.quantize import calibration_images, quantize_export

    target = tmp_path / "r34-int8.onnx"
    written = quantize_export(r34_export, target, ("full",), images=calibration_images(4, (128, 96)))
    assert written == {"full": target}
    model = onnx.load(str(target))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["p3m.precision"] == "int8" and meta["p3m.graph"] == "full" and meta["p3m.arch"] == "p3mnet-r34"
    assert sum(node.op_type == "QuantizeLinear" for node in model.graph.node) > 50
    assert target.stat().st_size < r34_export.stat().st_size / 3

    # The fixture's weights are random, so int8 is only roughly fp32 here (a trained
    # network's SAD moves 0.5%: docs/performance.md); it must still follow it.
    x = load_reference_outputs("p3mnet-r34")["input"]
    fp32, got = _run(r34_export, x)["local_alpha"], _run(target, x)["local_alpha"]
    assert 0 < np.abs(got - fp32).mean() < 0.25 and np.corrcoef(got.ravel(), fp32.ravel())[0, 1] > 0.8
    image = calibration_images(1, (256, 192), seed=5)[0]
    int8 = OnnxEngine(target, method="resize")
    assert "int8" in int8.description and int8.predict([image])[0].shape == image.shape[:2]


@pytest.mark.slow
def test_the_command_line_writes_an_int8_graph(published_checkpoint, tmp_path, capsys):
    target = tmp_path / "g.onnx"
    assert main(["export", "onnx", str(published_checkpoint), "-o", str(target), "--graphs", "global", "--int8",
                 "--no-check"]) == 0
    assert "global graph, int8" in capsys.readouterr().out
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(target.with_name("g.global.onnx"))).metadata_props}
    assert meta["p3m.precision"] == "int8" and meta["p3m.graph"] == "global"


@pytest.mark.slow
def test_an_int8_graph_beside_fp32_ones_is_refused(r34_export, tmp_path):
    from p3m.export.quantize import calibration_images, quantize_export

    for graph in ("global", "local"):  # an older fp32 export's HYBRID graphs
        shutil.copy(r34_export.with_name(f"r34.{graph}.onnx"), tmp_path / f"m.{graph}.onnx")
    quantize_export(r34_export, tmp_path / "m.onnx", ("full",), images=calibration_images(2, (64, 64)))
    with pytest.raises(CheckpointError, match="an fp32 graph beside the int8 m.onnx"):
        OnnxEngine(tmp_path / "m.onnx", method="hybrid")
    assert OnnxEngine(tmp_path / "m.onnx", method="resize")  # RESIZE needs the whole network only
