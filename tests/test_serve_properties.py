"""Property-based tests (hypothesis) of the HTTP service's parameters and bodies: every
value of a parameter's OpenAPI schema is accepted or refused naming the parameter, every
value outside it is refused naming it, unknown and repeated names are refused, and any
body under any content type is answered with a status and one JSON line: never a 500, a
traceback or a hang.

Most requests go to the app in process (``TestClient``); the bodies go to the service's
real server on loopback (``serving.running``), so that a request that hangs fails on the client's time limit instead of
stalling the run. The numbers of generated cases are below.
"""

from __future__ import annotations

import io
import math
import time
import warnings

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from p3m.options import FALSE, TRUE, FaceBlurOptions, service_options
from p3m.serve.app import UPLOADS, ServiceLimits, create_app
from serving import ConstantEngine, running

VALUE_CASES = 14      # per parameter (11 of /v1/matte, 6 of /v1/anonymize)
NAME_CASES = 80
TWICE_CASES = 25
SIZE_CASES = 30
BODY_CASES = 120

MAX_PIXELS = 1500     # a 32x32 image fits; up to 64x64 is generated
TIGHT_BODY = 2048     # the bodies' service: over this many bytes is 413
SECONDS = 15.0        # the longest answer allowed (a 32x32 image takes milliseconds)

ENDPOINTS = ("matte", "anonymize")
PARAMETERS = [(endpoint, name) for endpoint in ENDPOINTS for name, _ in service_options(endpoint)]
BOOLEAN_WORDS = TRUE + FALSE
#: What each parameter of /v1/matte needs beside it to apply (otherwise it is refused, naming it).
NEEDS = {"background": {"output": "composite"},
         **{name: {"anonymize": "true"} for name, owner in service_options("matte") if owner is FaceBlurOptions}}
#: Backgrounds the help documents: each is a colour on a composite.
COLOURS = ("navy", "#0f0", "rgb(0,255,0)", "10,20,30", "chroma-green", "chroma-blue", "blur", "White")
#: How a refusal of a BlazeFace detector without the face models gives its advice.
FACE_MODELS_MISSING = "is not installed here (run: p3m weights fetch faces)"


def cases(count: int) -> settings:
    return settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _png(height: int = 32, width: int = 32) -> bytes:
    """A smooth image (no face), small when encoded: a 32x32 one is about 100 bytes."""
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([y * 255 // max(height, 1), x * 255 // max(width, 1), (x + y) % 256], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():  # starlette asks for httpx2 with httpx installed; the client is the same
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
        from fastapi.testclient import TestClient

    app = create_app(ConstantEngine(0.0), ServiceLimits(max_body=200_000, max_pixels=MAX_PIXELS))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def schema(client):
    """{endpoint: {parameter: its JSON schema}}, as /openapi.json serves them."""
    paths = client.get("/openapi.json").json()["paths"]
    return {endpoint: {p["name"]: p["schema"] for p in paths[f"/v1/{endpoint}"]["post"]["parameters"]}
            for endpoint in ENDPOINTS}


@pytest.fixture(scope="module")
def tight():
    """A real server whose body limit the generated bodies cross."""
    app = create_app(ConstantEngine(0.0), ServiceLimits(max_body=TIGHT_BODY, max_pixels=MAX_PIXELS))
    with running(app) as url, httpx.Client(base_url=url, timeout=2 * SECONDS) as http:
        yield http


def _line(response, key: str = "error") -> str:
    """The answer's one-line JSON message under ``key``: never a 500 or a traceback."""
    assert response.status_code != 500, response.text
    assert response.headers.get("content-type", "").startswith("application/json"), (response.status_code,
                                                                                     response.text[:300])
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get(key), str), body
    message = body[key]
    assert message and len(message.splitlines()) == 1 and "Traceback" not in message, message
    return message


def _post(client, endpoint: str, params: dict[str, str] | list[tuple[str, str]], via: str, image: bytes = PNG):
    """POST the parameters in the query (the image as the raw body) or as form fields."""
    started = time.monotonic()
    if via == "query":
        response = client.post(f"/v1/{endpoint}", params=params, content=image)
    else:
        fields: dict[str, list[str]] = {}
        for name, value in (params.items() if isinstance(params, dict) else params):
            fields.setdefault(name, []).append(value)
        response = client.post(f"/v1/{endpoint}", data=fields, files={"image": ("a.png", image, "image/png")})
    assert time.monotonic() - started < SECONDS, "the answer took too long"
    return response


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


JUNK = st.one_of(st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "null",
                                  "None", "[]", "{}", "\x00", "0x10", "1,5", "true", "yes"]),
                 st.text(max_size=20))


def inside(schema: dict) -> st.SearchStrategy[str]:
    """Values the schema allows, as text (numbers in range, enum members in any case, booleans)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"]).flatmap(lambda v: st.sampled_from([v, v.upper(), v.title()]))
    kind = schema["type"]
    if kind == "boolean":
        return st.sampled_from(["true", "false", "True", "FALSE", "1", "0", "yes", "no", "on", "off"])
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum")
    if kind == "integer":
        low = low + 1 if "exclusiveMinimum" in schema else low
        return st.integers(low, high).map(str)
    if kind == "number":
        floats = st.floats(low, high, exclude_min="exclusiveMinimum" in schema).map(repr)
        first = math.floor(low) + 1 if "exclusiveMinimum" in schema else math.ceil(low)
        if first > math.floor(high):  # no whole number in range (a band of 0.002-0.2)
            return floats
        return st.one_of(floats, st.integers(first, math.floor(high)).map(str))
    return st.one_of(st.sampled_from(COLOURS), st.text(max_size=20))  # a free string


def outside(schema: dict) -> st.SearchStrategy[str] | None:
    """Values the schema does not allow: out of range, non-finite, not a number, not a member, empty."""
    if "enum" in schema:
        return JUNK.filter(lambda v: v.lower() not in schema["enum"])
    kind = schema["type"]
    if kind == "boolean":
        return JUNK.filter(lambda v: v.strip().lower() not in BOOLEAN_WORDS)
    if kind not in ("integer", "number"):
        return None  # a free string: nothing is outside it
    exclusive = "exclusiveMinimum" in schema
    low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema["maximum"]
    below = st.floats(max_value=low, exclude_max=not exclusive)
    above = st.floats(min_value=high, exclude_min=True)
    words = JUNK.filter(lambda v: not _finite(v))
    if kind == "integer":
        fractions = st.floats(low, high).filter(lambda v: not v.is_integer())
        return st.one_of(below.map(repr), above.map(repr), fractions.map(repr), words,
                         st.integers(max_value=low - (0 if exclusive else 1)).map(str),
                         st.integers(min_value=high + 1).map(str))
    return st.one_of(below.map(repr), above.map(repr), words, st.just(repr(low)) if exclusive else words)


def _accepted(response, endpoint: str, anonymizing: bool) -> None:
    """A 200 of the endpoint's kind, or (anonymizing a photo without a face) a 422 with its reason."""
    if response.status_code == 422 and anonymizing:
        _line(response, "reason")
        return
    assert response.status_code == 200, (response.status_code, response.text[:300])
    if endpoint == "matte":
        assert response.headers["content-type"] == "image/png"
    else:
        assert response.json()["image"].startswith("data:image/png;base64,")


def test_the_schema_lists_each_parameter_of_the_options_model(schema):
    for endpoint in ENDPOINTS:
        assert list(schema[endpoint]) == [name for name, _ in service_options(endpoint)]
        for name, owner in service_options(endpoint):
            spec, listed = owner.spec(name), schema[endpoint][name]
            allowed = spec.allowed()
            assert listed.get("enum") == (list(allowed) if allowed is not None else None), (endpoint, name)
            if spec.number is not None:
                assert listed["type"] == ("integer" if spec.number is int else "number")
                assert listed.get("exclusiveMinimum" if spec.open_low else "minimum") == spec.low
                assert listed.get("maximum") == spec.high


SWITCHES = [(endpoint, name) for endpoint, name in PARAMETERS
            if dict(service_options(endpoint))[name].__dataclass_fields__[name].type in ("bool", bool)
            or dict(service_options(endpoint))[name].spec(name).switch]


@pytest.mark.parametrize("endpoint, name", SWITCHES)
def test_the_schema_types_each_switch_as_a_boolean(schema, endpoint, name):
    assert schema[endpoint][name]["type"] == "boolean", schema[endpoint][name]


@pytest.mark.parametrize("endpoint, name", PARAMETERS)
@cases(VALUE_CASES)
@given(data=st.data())
def test_a_parameter_value_is_accepted_or_refused_naming_the_parameter(client, schema, endpoint, name, data):
    """Property 1: one parameter (with or without what it needs beside it), in the query or
    the form: a value of its schema is accepted, or refused with 400 naming the parameter;
    a value outside its schema is always refused with 400 naming it."""
    spec = schema[endpoint][name]
    outer = outside(spec)
    within = outer is None or data.draw(st.booleans(), label="within the schema")
    value = data.draw(inside(spec) if within else outer, label="value")
    via = data.draw(st.sampled_from(["query", "form"]), label="via")
    needs = NEEDS.get(name, {}) if endpoint == "matte" and data.draw(st.booleans(), label="with its needs") else {}
    response = _post(client, endpoint, {**needs, name: value}, via)
    event(f"{'within' if within else 'outside'}{', with its needs' if needs else ''}: {response.status_code}")
    anonymizing = endpoint == "anonymize" or "anonymize" in (needs | {name: value})
    if response.status_code == 400 or not within:
        assert response.status_code == 400, (response.status_code, response.text[:300])
        message = _line(response)
        assert name in message, message
        if within and name == "detector" and FACE_MODELS_MISSING in message:
            return  # BlazeFace without its models: see test_a_detector_without_its_models_is_refused_naming_it
        # Within the schema, and with what it needs, only these are refused: a strategy or a
        # default-engine setting the test engine lacks (it is neither), and a free string that is no colour.
        if within and (needs or name not in NEEDS or endpoint == "anonymize"):
            assert name in ("method", "work_size", "band") or "enum" not in spec and spec["type"] == "string", \
                response.json()
            assert name != "background" or value not in COLOURS, response.json()
    else:
        _accepted(response, endpoint, anonymizing)


ACCEPTED = {endpoint: [name for name, _ in service_options(endpoint)] for endpoint in ENDPOINTS}
NEAR_MISSES = st.sampled_from([name for _, name in PARAMETERS]).flatmap(lambda n: st.sampled_from(
    [n.upper(), n.replace("_", "-"), f" {n}", f"{n} ", f"{n}[]", f"{n}\x00", n.title(), n[:-1]]))
#: Characters a multipart header cannot carry as they are: the client sends them %-escaped (HTML5).
ESCAPED_IN_FORMS = {'"', "\\", *map(chr, range(32))}


@cases(NAME_CASES)
@given(name=st.one_of(st.text(max_size=30), NEAR_MISSES), value=st.one_of(st.sampled_from(["", "1", "true"]),
       st.text(max_size=10)), endpoint=st.sampled_from(ENDPOINTS), via=st.sampled_from(["query", "form"]))
def test_an_unknown_parameter_is_refused_listing_the_accepted_names(client, name, value, endpoint, via):
    """Property 2: a name that is no parameter of the endpoint is refused, with the names it takes."""
    assume(name not in ACCEPTED[endpoint])
    assume(not (via == "form" and name in UPLOADS[endpoint] + ("file",) and value == ""))  # an empty file input
    response = _post(client, endpoint, {name: value}, via)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    message = _line(response)
    assert message.startswith("unknown option") and message.endswith(f"; accepted: {', '.join(ACCEPTED[endpoint])}")
    if via == "query" or not ESCAPED_IN_FORMS & set(name):
        assert repr(name) in message, (name, message)


@cases(NAME_CASES // 2)
@given(name=st.text(max_size=20), endpoint=st.sampled_from(ENDPOINTS))
def test_an_unknown_upload_is_refused_listing_the_accepted_uploads(client, name, endpoint):
    """Property 2 for files: an upload field other than the endpoint's is refused, with its uploads."""
    assume(name not in UPLOADS[endpoint] + ("file",))
    response = client.post(f"/v1/{endpoint}", files=[("image", ("a.png", PNG, "image/png")),
                                                     (name, ("b.png", PNG, "image/png"))])
    assert response.status_code == 400, (response.status_code, response.text[:300])
    message = _line(response)
    if ESCAPED_IN_FORMS & set(name):
        # The client escapes the name (\\ as \\\\, " as %22) and python-multipart reads a backslash before
        # a quote as an escape: the part can arrive as a text field of another name, an unknown option.
        assert message.startswith(("unknown upload field", "unknown option")), message
    else:
        assert message == f"unknown upload field {name!r}; accepted: {', '.join(UPLOADS[endpoint])}", message


@cases(TWICE_CASES)
@given(data=st.data(), case=st.sampled_from(PARAMETERS),
       places=st.lists(st.sampled_from(["query", "form"]), min_size=2, max_size=3))
def test_a_parameter_given_twice_is_refused_naming_it(client, schema, data, case, places):
    """A parameter twice (in the query, the form, or one of each) is refused: nothing is overridden."""
    endpoint, name = case
    values = [data.draw(inside(schema[endpoint][name]), label="value") for _ in places]
    query = [(name, v) for v, place in zip(values, places) if place == "query"]
    form = {name: [v for v, place in zip(values, places) if place == "form"]}
    response = client.post(f"/v1/{endpoint}", params=query, data=form, files={"image": ("a.png", PNG, "image/png")})
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert f"{name!r} given more than once" in _line(response)


@cases(SIZE_CASES)
@given(height=st.integers(1, 64), width=st.integers(1, 64), endpoint=st.sampled_from(ENDPOINTS),
       via=st.sampled_from(["query", "form"]), background=st.booleans())
def test_an_image_over_the_pixel_limit_is_413_and_one_within_it_is_answered(client, height, width, endpoint, via,
                                                                           background):
    """Each image (the photo, or a background_image) over max_pixels is 413 naming it; within, answered."""
    image = _png(height, width)
    if background and endpoint == "matte":
        response = client.post("/v1/matte", data={"output": "composite"},
                               files={"image": ("a.png", PNG), "background_image": ("b.png", image)})
        field = "background_image"
    else:
        response, field = _post(client, endpoint, {}, via, image), "image"
    if height * width > MAX_PIXELS:
        assert response.status_code == 413, (response.status_code, response.text[:300])
        assert _line(response).startswith(f"{field}: {width}x{height} = ")
    else:
        _accepted(response, endpoint, endpoint == "anonymize")


def _is_form(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("multipart/form-data")


CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(["application/octet-stream", "image/png", "image/jpeg", "text/plain", "application/json",
                     "application/x-www-form-urlencoded", "multipart/form-data", "Multipart/Form-Data",
                     "MULTIPART/FORM-DATA; boundary=abc", "multipart/form-data; boundary=", "multipart/form-data; boundary=\"\"",
                     "multipart/form-data; charset=utf-8", "multipart/form-dataX", "multipart/mixed; boundary=abc",
                     "multipart/form-data; boundary=" + "x" * 300, "", ";", "image/png; charset=utf-8; x=\"y\""]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(
        lambda boundary: f"multipart/form-data; boundary={boundary}"),
)
damaged = st.tuples(st.integers(0, len(PNG)), st.lists(st.tuples(st.integers(0, len(PNG) - 1), st.integers(0, 255)),
                                                        max_size=4)).map(
    lambda cut: bytes(_flipped(PNG, cut[1])[:cut[0] or None]))
padded = st.integers(TIGHT_BODY - 400, TIGHT_BODY + 400).map(lambda size: PNG + b"\0" * (size - len(PNG)))  # about the limit


def _flipped(data: bytes, flips: list[tuple[int, int]]) -> bytearray:
    data = bytearray(data)
    for position, value in flips:
        data[position] = value
    return data


@cases(BODY_CASES)
@given(body=st.one_of(st.binary(max_size=TIGHT_BODY + 512), damaged, padded, st.just(PNG)),
       mode=st.sampled_from(["raw", "chunked", "part"]), content_type=CONTENT_TYPES,
       part_type=st.one_of(st.none(), st.sampled_from(["image/png", "text/plain", "application/octet-stream"])),
       recased=st.booleans(), endpoint=st.sampled_from(ENDPOINTS))
def test_any_body_under_any_content_type_is_answered_with_a_status_and_a_line(tight, body, mode, content_type,
                                                                              part_type, recased, endpoint):
    """Property 3: bytes as the raw body (whole or chunked) or as the multipart 'image' part, under
    any content type: 200 only for an image, else 400, 413, 415 or 422 with one JSON line; in time."""
    if mode == "part":
        request = tight.build_request("POST", f"/v1/{endpoint}", files={"image": ("a.png", body, part_type)})
        if recased:  # the same form, its content type in another case
            request.headers["content-type"] = request.headers["content-type"].replace("multipart/form-data",
                                                                                      "Multipart/Form-Data")
        content_type, sent = request.headers["content-type"], request.read()
    else:
        sent = body
    headers = {} if content_type is None else {"content-type": content_type}
    chunks = (iter([sent[i:i + 700] for i in range(0, len(sent), 700)]) if mode == "chunked" else sent)
    started = time.monotonic()
    response = tight.post(f"/v1/{endpoint}", content=chunks, headers=headers)
    assert time.monotonic() - started < SECONDS, "the answer took too long"
    event(f"{mode}, {'a form' if _is_form(content_type) else 'not a form'}: {response.status_code}")
    assert response.status_code in (200, 400, 413, 415, 422), (response.status_code, response.text[:300])
    if len(sent) > TIGHT_BODY:  # however it is framed; chunked, a request may be refused (400) before its end
        assert response.status_code == 413 or mode == "chunked" and response.status_code == 400, (
            response.status_code, response.text[:300])
    if response.status_code == 200:
        assert _decodes(body), "only an image is answered 200"
        return
    if response.status_code == 422:
        _line(response, "reason")
        return
    _line(response, "error")


def _decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:
        return False


def _form(fields: list[tuple[str, str]], boundary: str = "b0undary") -> bytes:
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n" for n, v in fields]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data", _form([("output", "alpha")])),                        # no boundary
    ("Multipart/Form-Data", b"garbage"),                                          # no boundary, odd case
    ("multipart/form-data; boundary=b0undary", b"garbage\r\n"),                   # invalid multipart data
    ("multipart/form-data; boundary=b0undary", b"--b0undary\r\n\r\n--b0undary--\r\n"),  # a part without a name
    ("multipart/form-data; boundary=b0undary", _form([(f"f{i}", "x") for i in range(21)])),  # too many fields
    ("multipart/form-data; boundary=b0undary", _form([("image\"; filename=\"a.png", "x")] * 3)),  # too many files
], ids=["no-boundary", "no-boundary-odd-case", "invalid-data", "nameless-part", "too-many-fields", "too-many-files"])
def test_a_broken_multipart_body_is_an_error_line(client, content_type, body):
    response = client.post("/v1/matte", content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    _line(response)


def test_a_chunked_form_over_the_body_limit_is_413(tight):
    """A form sent chunked (no Content-Length) is measured too, all of it: here its background_image."""
    plate = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)  # 576 pixels, ~1.8 kB as PNG
    buffer = io.BytesIO()
    Image.fromarray(plate).save(buffer, "PNG")
    request = tight.build_request("POST", "/v1/matte", data={"output": "composite"},
                                  files={"image": ("a.png", PNG), "background_image": ("b.png", buffer.getvalue() * 2)})
    body = request.read()
    assert len(body) > TIGHT_BODY
    response = tight.post("/v1/matte", content=iter([body[i:i + 500] for i in range(0, len(body), 500)]),
                          headers={"content-type": request.headers["content-type"]})
    assert response.status_code == 413 and "exceeds the limit" in _line(response)


@pytest.mark.parametrize("endpoint, query", [("anonymize", "detector=blazeface"),
                                             ("matte", "anonymize=true&detector=hog%2Bblazeface")])
def test_a_detector_without_its_models_is_refused_naming_it(client, endpoint, query):
    response = client.post(f"/v1/{endpoint}?{query}", content=PNG)
    assert response.status_code == 400
    message = _line(response)
    assert "detector" in message and "/models/" not in message, message
