"""``p3m serve``: the HTTP API on a real server on loopback: outputs, limits, token,
queue, time limit, concurrency, and fail-closed anonymization."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

import p3m
from p3m.serve.app import ServiceLimits, create_app
from serving import ConstantEngine, running


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _photo(seed=0, size=(64, 48)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def transparent():
    """A service whose engine says 'background everywhere': composites are the background."""
    with running(create_app(ConstantEngine(0.0), ServiceLimits(max_body=200_000, max_pixels=100_000))) as url:
        yield url


def test_outputs_from_multipart_and_raw_bodies(transparent):
    photo = _png(_photo())
    for response in (httpx.post(f"{transparent}/v1/matte", files={"image": ("a.png", photo)}),
                     httpx.post(f"{transparent}/v1/matte", content=photo)):
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(response.content)) as cut:
            assert cut.mode == "RGBA" and cut.size == (48, 64)
    alpha = httpx.post(f"{transparent}/v1/matte?output=alpha", content=photo)
    assert Image.open(io.BytesIO(alpha.content)).mode == "L"
    navy = httpx.post(f"{transparent}/v1/matte", files={"image": ("a.png", photo)},
                      data={"output": "composite", "background": "navy"})
    assert (np.asarray(Image.open(io.BytesIO(navy.content))) == (0, 0, 128)).all()
    plate = np.full((10, 10, 3), 77, np.uint8)
    onto = httpx.post(f"{transparent}/v1/matte", files={"image": ("a.png", photo), "background_image": ("b.png", _png(plate))},
                      data={"output": "composite"})
    assert (np.asarray(Image.open(io.BytesIO(onto.content))) == 77).all()


@pytest.mark.parametrize("send, status, reason", [
    (lambda url: httpx.post(f"{url}/v1/matte", content=b"not an image"), 400, "not an image file"),
    (lambda url: httpx.post(f"{url}/v1/matte", content=b"x" * 300_000), 413, "exceeds the limit"),
    (lambda url: httpx.post(f"{url}/v1/matte", content=_png(np.zeros((400, 300, 3), np.uint8))), 413,
     "megapixels exceeds"),
    (lambda url: httpx.post(f"{url}/v1/matte", files={"other": ("a.png", b"x")}), 400,
     "unknown upload field 'other'; accepted: image, background_image"),
    (lambda url: httpx.post(f"{url}/v1/matte", data={"output": "alpha"}, files={"background_image": ("b.png", b"x")}),
     400, "no image"),
    (lambda url: httpx.post(f"{url}/v1/matte", files=[("image", ("a.png", _png(_photo()))), ("image", ("b.png", b"x"))]),
     400, "upload field 'image' given more than once"),
    (lambda url: httpx.post(f"{url}/v1/matte", files={"image": ("a.png", _png(_photo())), "file": ("b.png", b"x")}),
     400, "two images"),
    (lambda url: httpx.post(f"{url}/v1/matte", data={"output": "composite"},
                            files={"image": ("a.png", _png(_photo())), "background_image": ("b.png", b"")}),
     400, "background_image: the upload is empty"),
    (lambda url: httpx.post(f"{url}/v1/matte?anonymize=true&anonymize=false", content=_png(_photo())), 400,
     "'anonymize' given more than once"),
    (lambda url: httpx.post(f"{url}/v1/matte?output=alpha", data={"output": "cutout"},
                            files={"image": ("a.png", _png(_photo()))}), 400, "'output' given more than once"),
    (lambda url: httpx.post(f"{url}/v1/matte?output=composite&background=rgb(300,0,0)", content=_png(_photo())), 400,
     "not a CSS colour"),
    (lambda url: httpx.post(f"{url}/v1/matte?output=mask", content=_png(_photo())), 400, "output must be one of"),
    (lambda url: httpx.post(f"{url}/v1/matte?method=resize", content=_png(_photo())), 400, "has no strategies"),
    (lambda url: httpx.post(f"{url}/v1/matte", files={"image": ("a.png", _png(_photo()))},
                            data={"output": "composite", "background": "plaid"}), 400, "not a CSS colour"),
])
def test_bad_requests_get_their_status_and_a_one_line_reason(transparent, send, status, reason):
    response = send(transparent)
    assert response.status_code == status and reason in response.json()["error"]
    assert "\n" not in response.json()["error"]


def test_a_file_input_left_empty_is_no_upload(transparent):
    """Browsers send an unchosen file input as a part with no name and no bytes; /docs as an empty field."""
    for files, fields in (({"image": ("a.png", _png(_photo())), "background_image": ("", b"")}, {}),
                          ({"image": ("a.png", _png(_photo()))}, {"background_image": ""})):
        answer = httpx.post(f"{transparent}/v1/matte", files=files, data=fields)
        assert answer.status_code == 200 and Image.open(io.BytesIO(answer.content)).mode == "RGBA"


def test_a_background_parameter_never_reads_a_file_of_the_server(transparent, tmp_path):
    secret = tmp_path / "server_side.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(secret)
    answer = httpx.post(f"{transparent}/v1/matte", files={"image": ("a.png", _png(_photo()))},
                        data={"output": "composite", "background": str(secret)})
    assert answer.status_code == 400 and "upload an image as 'background_image'" in answer.json()["error"]


def test_engines_health_and_openapi(transparent):
    assert httpx.get(f"{transparent}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{transparent}/v1/engines").json()["engine"] == "constant (test)"
    paths = httpx.get(f"{transparent}/openapi.json").json()["paths"]
    assert {"/v1/matte", "/v1/anonymize", "/v1/engines", "/healthz"} <= set(paths)
    assert httpx.get(f"{transparent}/docs").status_code == 200


def test_a_token_is_required_when_set():
    with running(create_app(ConstantEngine(), ServiceLimits(token="s3cret"))) as url:
        assert httpx.post(f"{url}/v1/matte", content=_png(_photo())).status_code == 401
        wrong = httpx.post(f"{url}/v1/matte", content=_png(_photo()), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = httpx.post(f"{url}/v1/matte", content=_png(_photo()), headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert httpx.get(f"{url}/").status_code == 200  # the page itself; it sends the token it is given


def test_a_full_queue_answers_503_and_a_slow_request_504():
    with running(create_app(ConstantEngine(seconds=1.5), ServiceLimits(queue=0, timeout=30))) as url:
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{url}/v1/matte", content=_png(_photo()), timeout=30),
                                    range(3)))
        codes = sorted(a.status_code for a in answers)
        assert codes[0] == 200 and 503 in codes
        assert all(a.headers.get("retry-after") == "2" for a in answers if a.status_code == 503)
    with running(create_app(ConstantEngine(seconds=1.0), ServiceLimits(timeout=0.2))) as url:
        late = httpx.post(f"{url}/v1/matte", content=_png(_photo()), timeout=30)
        assert late.status_code == 504 and "longer than 0.2 s" in late.json()["error"]


def test_concurrent_requests_get_their_own_results(reference_model):
    engine = p3m.open_engine(reference_model, method="resize")
    photos = [_photo(seed) for seed in range(6)]
    expected = [p3m.remove(photo, engine=engine) for photo in photos]
    with running(create_app(engine, ServiceLimits(queue=10))) as url:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda photo: httpx.post(f"{url}/v1/matte", content=_png(photo), timeout=60),
                                    photos))
        hybrid = httpx.post(f"{url}/v1/matte?method=hybrid&output=alpha", content=_png(photos[0]), timeout=60)
    for answer, cut in zip(answers, expected):
        assert answer.status_code == 200
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(answer.content))), np.asarray(cut))
    assert hybrid.status_code == 200  # another strategy, the same network


def test_anonymize_returns_the_audit_and_fails_closed():
    with running(create_app(ConstantEngine())) as url:
        ok = httpx.post(f"{url}/v1/anonymize", files={"image": ("astro.png", _png(data.astronaut()))},
                        data={"strength": "low"}, timeout=120)
        held = httpx.post(f"{url}/v1/anonymize", content=_png(data.coffee()), timeout=120)
        strict = httpx.post(f"{url}/v1/anonymize", files={"image": ("astro.png", _png(data.astronaut()))},
                            data={"hold_unaudited": "true"}, timeout=120)  # HOG's weak hit on her badge
    body = ok.json()
    assert ok.status_code == 200 and body["status"] == "ok" and body["audit"]["identity_matches"] == 0
    assert body["sigma_scale"] > 0.05  # low was strengthened until the face was not recognised
    import base64

    image = Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1])))
    assert image.size == (512, 512)
    assert held.status_code == 422 and held.json()["status"] == "no-face"
    assert strict.status_code == 422 and strict.json()["status"] == "unaudited"
    assert "hold_unaudited" in strict.json()["reason"] and "image" not in strict.json()


def test_an_rgba_upload_is_anonymized_with_its_alpha_kept():
    """The answer is RGBA with the upload's alpha untouched; a face under transparent
    pixels (still in the file) is blurred all the same."""
    import base64

    astronaut = data.astronaut()
    alpha = np.tile(np.linspace(255, 32, 512).astype(np.uint8), (512, 1))
    alpha[80:250, 150:300] = 0  # her face transparent
    with running(create_app(ConstantEngine())) as url:
        answer = httpx.post(f"{url}/v1/anonymize", content=_png(np.dstack([astronaut, alpha])), timeout=120)
    assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["image"].split(",", 1)[1]))))
    assert image.shape == (512, 512, 4) and np.array_equal(image[..., 3], alpha)
    assert np.abs(image[100:200, 180:280, :3].astype(int) - astronaut[100:200, 180:280]).mean() > 10


def test_serve_refuses_other_addresses_without_a_token(capsys, monkeypatch):
    from p3m.cli.main import main

    monkeypatch.delenv("P3M_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2  # a usage error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs" not in err[0] and "give a token with --token or P3M_TOKEN" in err[0]


def test_images_too_small_to_hold_a_face_are_held_back_not_an_error():
    pytest.importorskip("dlib")
    with running(create_app(ConstantEngine())) as url:
        for size in ((1, 1), (1, 2), (1, 4000), (7, 7)):
            answer = httpx.post(f"{url}/v1/anonymize", content=_png(np.full((*size, 3), 90, np.uint8)))
            assert answer.status_code == 422 and answer.json()["status"] == "no-face", (size, answer.text)


def test_a_multipart_content_type_in_another_case_is_still_a_form(transparent):
    with httpx.Client() as client:
        request = client.build_request("POST", f"{transparent}/v1/matte", files={"image": ("a.png", _png(_photo()))},
                                       data={"output": "alpha"})
        request.headers["content-type"] = request.headers["content-type"].replace("multipart/form-data",
                                                                                  "Multipart/Form-Data")
        answer = client.send(request)
    assert answer.status_code == 200 and Image.open(io.BytesIO(answer.content)).mode == "L"


def test_dns_rebinding_and_cross_origin_posts_are_refused():
    """A page of another site that renames itself to 127.0.0.1 (DNS rebinding) sends its own
    Host; a cross-origin form or fetch sends its Origin. Neither reaches the engine."""
    photo = _png(_photo())
    with running(create_app(ConstantEngine(), ServiceLimits(hosts=("127.0.0.1", "localhost", "::1")))) as url:
        rebound = httpx.post(f"{url}/v1/matte", content=photo, headers={"Host": "evil.example:8000"})
        crossed = httpx.post(f"{url}/v1/matte", content=photo, headers={"Origin": "https://evil.example"})
        same = httpx.post(f"{url}/v1/matte", content=photo, headers={"Origin": url})
        plain = httpx.post(f"{url}/v1/matte", content=photo)  # curl, scripts: no Origin
        page = httpx.get(f"{url}/", headers={"Host": f"localhost:{url.rsplit(':', 1)[1]}"})
    assert rebound.status_code == 421 and "is not this service's name" in rebound.json()["error"]
    assert crossed.status_code == 403 and "cross-origin requests are refused" in crossed.json()["error"]
    assert same.status_code == 200 and plain.status_code == 200 and page.status_code == 200


def test_serve_answers_only_its_own_names_on_the_loopback(monkeypatch):
    import p3m.cli.serve as serve
    from p3m.cli.main import main

    seen = []
    monkeypatch.setattr(serve, "open_engine_from", lambda args: ConstantEngine())
    monkeypatch.setattr("p3m.serve.app.create_app", lambda engine, limits: seen.append(limits))
    monkeypatch.setattr("p3m.serve.server.serve", lambda app, host, port: None)
    monkeypatch.setenv("P3M_TOKEN", "s3cret")
    assert main(["serve"]) == 0 and main(["serve", "--host", "0.0.0.0"]) == 0
    assert set(seen[0].hosts) == {"127.0.0.1", "localhost", "::1"} and seen[1].hosts == ()
