"""The options model: every option defined once, and the command line, the Python API
and the service accepting the same names and values and refusing the same bad values
with the same message (the contract). Options that do not apply are errors, never
silently dropped."""

from __future__ import annotations

import importlib
import io

import httpx
import numpy as np
import pytest
from PIL import Image

import p3m
from p3m.cli.main import main
from p3m.errors import OptionError
from p3m.options import (
    AnonymizeOptions,
    ClusterOptions,
    EngineOptions,
    FaceBlurOptions,
    MatteOptions,
    OptionSet,
    service_options,
)
from p3m.serve.app import create_app
from serving import ConstantEngine, running

#: Each set, and a command line that takes its flags (the flag and value are appended).
COMMANDS = {
    EngineOptions: ["matte", "x.png", "-o", "out"],
    MatteOptions: ["matte", "x.png", "-o", "out"],
    FaceBlurOptions: ["matte", "x.png", "-o", "out", "--anonymize"],
    AnonymizeOptions: ["anonymize", "x.png", "-o", "out"],
    ClusterOptions: ["matte", "x.png", "-o", "out", "--cluster", "auto"],
}


def _bad(owner: type[OptionSet], name: str) -> str | None:
    """A value the option must refuse, as text (None when any text is allowed)."""
    spec = owner.spec(name)
    if spec.switch or owner.__dataclass_fields__[name].type == "bool":
        return None  # a flag on the command line; the service's text is tested below
    if spec.allowed() is not None:
        return "bogus"
    if spec.number is not None:
        return "-7" if spec.low is not None and spec.low > -7 else "1e999"
    if name == "background":
        return "plaid"
    if name == "device":
        return " "
    return None


def _flag(owner, name):
    from p3m.cli.options import flag_of

    return flag_of(name, owner.spec(name))


CASES = [(owner, name) for owner in COMMANDS for name in owner.names()
         if _bad(owner, name) is not None and owner.spec(name).cli]


@pytest.fixture(scope="module")
def service():
    with running(create_app(ConstantEngine(0.0))) as url:
        yield url


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("owner, name", CASES, ids=[f"{o.__name__}.{n}" for o, n in CASES])
def test_a_bad_value_gets_one_message_everywhere(owner, name, capsys, service):
    bad = _bad(owner, name)
    with pytest.raises(OptionError) as python:
        owner(**{name: bad})
    message = str(python.value)
    assert name in message and "\n" not in message
    with pytest.raises(SystemExit) as cli:
        main([*COMMANDS[owner], _flag(owner, name), bad])
    assert cli.value.code == 2 and message in capsys.readouterr().err
    offered = dict(service_options("matte"))
    if offered.get(name) is not None and owner.spec(name).service:
        extra = {"anonymize": "true"} if owner in (FaceBlurOptions, AnonymizeOptions) else {}
        answer = httpx.post(f"{service}/v1/matte", params={name: bad, **extra}, content=_png())
        assert answer.status_code == 400 and answer.json()["error"] == message


def test_every_service_parameter_is_an_option_of_the_model_and_in_the_schema(service):
    schema = httpx.get(f"{service}/openapi.json").json()["paths"]
    for endpoint in ("matte", "anonymize"):
        listed = {p["name"]: p for p in schema[f"/v1/{endpoint}"]["post"]["parameters"]}
        assert list(listed) == [name for name, _ in service_options(endpoint)]
        for name, owner in service_options(endpoint):
            spec = owner.spec(name)
            assert listed[name]["schema"]["type"] in ("string", "boolean", "integer", "number")
            assert listed[name]["description"].startswith(spec.help)
            if spec.allowed() is not None:
                assert listed[name]["schema"]["enum"] == list(spec.allowed())
        body = schema[f"/v1/{endpoint}"]["post"]["requestBody"]["content"]
        assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    matte = {p["name"]: p["schema"] for p in schema["/v1/matte"]["post"]["parameters"]}
    assert matte["output"] == {"type": "string", "enum": ["alpha", "cutout", "composite"], "default": "cutout"}
    assert matte["anonymize"]["type"] == "boolean" and matte["forehead"]["maximum"] == 2


def test_a_request_built_from_the_schema_alone_is_answered(service):
    """What /docs "Try it out" sends: each parameter's default from the schema, the image as multipart."""
    schema = httpx.get(f"{service}/openapi.json").json()["paths"]["/v1/matte"]["post"]
    params = {p["name"]: str(p["schema"]["default"]).lower() for p in schema["parameters"]
              if "default" in p["schema"] and p["name"] not in FaceBlurOptions.names()}
    # A real matte: the first one in a fresh environment compiles pymatting's kernels (tens of seconds)
    answer = httpx.post(f"{service}/v1/matte", params=params, files={"image": ("a.png", _png())}, timeout=600)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"


def test_the_service_refuses_fields_it_does_not_know(service):
    answer = httpx.post(f"{service}/v1/matte", files={"image": ("a.png", _png())}, data={"format": "jpeg"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("unknown option 'format'; accepted: output, method, work_size, band, background")
    other = httpx.post(f"{service}/v1/anonymize?output=alpha", content=_png())
    assert other.status_code == 400 and "unknown option 'output'" in other.json()["error"]


def test_face_options_without_anonymize_are_refused_everywhere(capsys, service):
    with pytest.raises(OptionError) as python:
        p3m.remove(np.zeros((40, 40, 3), np.uint8), engine=ConstantEngine(), strength="high")
    message = str(python.value)
    assert message.startswith("strength applies to face anonymization")
    assert main(["matte", "x.png", "-o", "out.png", "--strength", "high"]) == 2
    assert message in capsys.readouterr().err
    answer = httpx.post(f"{service}/v1/matte?strength=high", content=_png())
    assert answer.status_code == 400 and answer.json()["error"] == message


def test_options_that_do_not_apply_to_the_outputs_are_refused(tmp_path, capsys):
    with pytest.raises(OptionError, match="background 'navy' applies to composite outputs"):
        MatteOptions(save=("alpha",), background="navy")
    with pytest.raises(OptionError, match="premultiplied applies to cut-out outputs"):
        MatteOptions(save=("alpha",), premultiplied=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--background", "navy"]) == 2
    assert "applies to composite outputs" in capsys.readouterr().err
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--actors", "2"]) == 2
    assert "actors applies to cluster runs" in capsys.readouterr().err


def test_python_option_sets_refuse_bad_values_with_the_project_error():
    with pytest.raises(OptionError, match="strength must be one of low, medium, high; got 'extreme'"):
        AnonymizeOptions(strength="extreme")
    with pytest.raises(OptionError, match="save must be a comma list of alpha, cutout, composite, frames"):
        MatteOptions(save=("bogus",))
    with pytest.raises(OptionError, match="unknown option 'colour'; accepted: engine, bgr, background"):
        p3m.remove(np.zeros((8, 8, 3), np.uint8), engine=ConstantEngine(), colour="red")
    assert MatteOptions(save="Cutout, alpha").save == ("cutout", "alpha")
    assert EngineOptions(method="HYBRID", arch="vitae-s").values()["arch"] == "p3mnet-vitae-s"
    assert ClusterOptions(engine_options={"method": "resize"}).engine_options == EngineOptions(method="resize")


def test_a_single_png_with_a_background_is_a_composite_on_it(tmp_path, monkeypatch, capsys):
    import p3m.inference.factory as factory

    monkeypatch.setattr(factory, "open_engine", lambda *a, **k: ConstantEngine(0.0))
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "photo.jpg")
    assert main(["matte", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "x.png"), "--background", "navy"]) == 0
    with Image.open(tmp_path / "x.png") as written:
        assert written.mode == "RGB" and (np.asarray(written) == (0, 0, 128)).all()
    assert "wrote composite" in capsys.readouterr().err


def test_every_allowed_value_list_is_defined_once():
    """The lists live in p3m.options; the modules that check values use those objects."""
    import p3m.inference.engine as engine
    import p3m.inference.sizing as sizing
    import p3m.jobs.matte as jobs
    import p3m.options as options
    import p3m.privacy.faces as faces

    privacy = importlib.import_module("p3m.privacy.anonymize")  # p3m.privacy.anonymize is also the function

    assert engine.METHODS is options.METHODS and engine.PRECISIONS is options.PRECISIONS
    assert sizing.SIZINGS is options.SIZINGS and faces.DETECTORS is options.DETECTORS
    assert privacy.STRENGTHS is options.STRENGTHS and jobs.OUTPUT_KINDS is options.OUTPUT_KINDS
    assert jobs.MatteOptions is options.MatteOptions


def test_values_the_probe_found_slipping_through(tmp_path, capsys):
    with pytest.raises(OptionError, match="strength 'high' and sigma_scale 0.3 both set the blur"):
        FaceBlurOptions(strength="high", sigma_scale=0.3)
    assert EngineOptions(engine=" DEFAULT ").engine == "default"
    for bad in ("", "  ", "onnx:"):
        with pytest.raises(OptionError, match="engine must name an engine"):
            EngineOptions(engine=bad)
    for bad in ("", "ray://", "host:99999", "host"):
        with pytest.raises(OptionError, match="address must be auto, HOST:PORT"):
            ClusterOptions(address=bad)
    assert ClusterOptions(address="ray://10.0.0.1:10001").address == "ray://10.0.0.1:10001"
    with pytest.raises(OptionError, match="batch_size 4 applies to P3M-Net"):
        p3m.open_engine("default", batch_size=4)
    with pytest.raises(p3m.EngineError, match="batch_size 4"):
        p3m.open_engine(ConstantEngine(), batch_size=4)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.tiff")]) == 2
    assert "p3m writes .png, .webp or .jpg images" in capsys.readouterr().err


def test_remove_reads_anonymize_as_the_model_does():
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)  # no face
    off = p3m.remove(image, engine=ConstantEngine(), anonymize="false")  # a word for off is off
    assert off.size == (30, 40)
    with pytest.raises(p3m.errors.HeldBackError):  # the options given are the ones used
        p3m.remove(image, engine=ConstantEngine(), anonymize=FaceBlurOptions(allow_no_face=False))
    assert p3m.remove(image, engine=ConstantEngine(), anonymize=FaceBlurOptions(allow_no_face=True)).size == (30, 40)
    with pytest.raises(OptionError, match="in the FaceBlurOptions, not beside them"):
        p3m.remove(image, engine=ConstantEngine(), anonymize=FaceBlurOptions(), strength="high")
    with pytest.raises(OptionError, match="anonymize must be true or false"):
        p3m.remove(image, engine=ConstantEngine(), anonymize="maybe")
