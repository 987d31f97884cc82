"""Live: the live engine, the /v1/live stream (token, origin, places, newest frame,
bad frames), the page's Live tab with Chromium's fake camera playing a real portrait,
and p3m.live on a file and on frames."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from p3m.video.synthetic import moving_portrait, write_clip, write_y4m
from serving import ConstantEngine, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GREEN = (0, 255, 0)


@pytest.fixture()
def home(fetched_home, monkeypatch):
    """P3M_HOME with the segmentation model (the live engine's), for the test and its servers."""
    monkeypatch.setenv("P3M_HOME", str(fetched_home))
    return fetched_home


@pytest.fixture(scope="module")
def scene(fetched_home):
    """A real portrait (the astronaut, cut out by the photo path) over a plain dark
    background, 640 x 360, swaying: frames and their true alphas."""
    import p3m
    from p3m.inference.compose import estimate_foreground

    photo = data.astronaut()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("P3M_HOME", str(fetched_home))
        alpha = p3m.open_engine("default").predict([photo])[0]
    foreground = np.round(estimate_foreground(photo, alpha) * 255).astype(np.uint8)
    backdrop = np.full((360, 640, 3), (40, 40, 90), np.uint8)
    return moving_portrait(foreground, alpha, backdrop, (360, 640), frames_per_part=4, noise=2)


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def test_the_live_engine_keeps_the_person_and_follows_the_photo_path(scene, home):
    import p3m

    frames, truth = scene
    live, photo_path = p3m.open_engine("live"), p3m.open_engine("default")
    for rgb, true in zip(frames[::5], truth[::5]):
        alpha = live.predict([rgb])[0]
        assert alpha.dtype == np.float32 and alpha.shape == rgb.shape[:2]
        assert np.abs(alpha - true).mean() < 0.05  # the person kept, the backdrop out
        assert np.abs(alpha - photo_path.predict([rgb])[0]).mean() < 0.05
    with pytest.raises(p3m.EngineError, match="live engine .* takes no engine options"):
        p3m.open_engine("live", work_size=200)


def _connect(url: str, query: str = "", **kwargs):
    from websockets.sync.client import connect

    return connect(url.replace("http://", "ws://") + "/v1/live" + query, open_timeout=10, **kwargs)


def _closed_reason(socket) -> str:
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            socket.recv(timeout=10)
    except ConnectionClosed as closed:
        return f"{closed.rcvd.code} {closed.rcvd.reason}" if closed.rcvd else "closed"


def test_the_stream_answers_each_frame_keeps_only_the_newest_and_keeps_the_service_rules(scene):
    from websockets.exceptions import InvalidStatus

    from p3m.serve.app import ServiceLimits, create_app

    frames, _ = scene
    limits = ServiceLimits(token="s3cret", queue=0, max_pixels=300_000, header_timeout=1.0)
    with running(create_app(ConstantEngine(0.75, seconds=0.2), limits)) as url:
        with _connect(url) as socket:
            socket.send(json.dumps({"token": "wrong"}))
            assert _closed_reason(socket) == "1008 a valid token is required"
        with _connect(url, "?engine=service&temporal=off") as socket:
            socket.send(json.dumps({"token": "s3cret"}))
            socket.send(jpeg(frames[0]))
            meta = json.loads(socket.recv(timeout=10))
            mask = cv2.imdecode(np.frombuffer(socket.recv(timeout=10), np.uint8), cv2.IMREAD_UNCHANGED)
            assert (meta["frame"], meta["width"], meta["height"], meta["dropped"]) == (0, 640, 360, 0)
            assert mask.shape == (360, 640, 4) and set(np.unique(mask[..., 3])) == {191}  # 0.75 as its alpha
            for _ in range(8):  # faster than frames are matted (0.2 s): no backlog, the newest is answered
                socket.send(jpeg(frames[1]))
            socket.send(b"not an image")
            answers = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(answers) < 3:
                answers.append(socket.recv(timeout=10))
            assert json.loads(answers[0])["frame"] == 1 and json.loads(answers[0])["dropped"] >= 6
            assert json.loads(answers[2]) == {"error": "frame: not an image file (or an unsupported format)"}
            big = cv2.resize(frames[0], (800, 450))  # over max_pixels: one line, the stream goes on
            socket.send(jpeg(big))
            assert "exceeds the limit of 0.3" in json.loads(socket.recv(timeout=10))["error"]
            time.sleep(1.5)  # a stream outlives the HTTP header timeout (1 s here) of the connection it came from
            socket.send(jpeg(frames[2]))
            assert json.loads(socket.recv(timeout=10))["frame"] == 2
        with _connect(url, "?engine=p3m") as socket:
            assert _closed_reason(socket) == "1008 engine must be one of live, service"
        with pytest.raises(InvalidStatus, match="403"):  # another site's page cannot open a stream
            with _connect(url, origin="http://evil.example"):
                pass


def test_a_full_service_refuses_a_stream_as_busy():
    from p3m.serve.app import ServiceLimits, create_app

    with running(create_app(ConstantEngine(0.5), ServiceLimits(queue=0))) as url:
        with _connect(url, "?engine=service") as first:
            first.send("{}")
            first.send(jpeg(np.zeros((32, 32, 3), np.uint8)))
            first.recv(timeout=10)
            with _connect(url) as second:
                second.send("{}")  # the place is looked for after the hello
                assert _closed_reason(second) == "1013 busy: the service is full, retry shortly"
        with _connect(url) as without_model:  # the live engine's model is not on this server: what to run
            without_model.send("{}")
            assert _closed_reason(without_model).startswith("1011 the default engine's model is not installed")


class NoiseEngine(ConstantEngine):
    """Alphas of noise (answers that do not compress); ``fail`` makes the given calls raise."""

    def __init__(self, fail: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.calls, self.fail = 0, fail

    def predict(self, images):
        self.calls += 1
        if self.calls in self.fail:
            raise RuntimeError("the engine broke on this frame")
        return [np.random.default_rng(self.calls).random(image.shape[:2], dtype=np.float32) for image in images]


def _raw_stream(url: str, hello: bytes | None) -> socket.socket:
    """A WebSocket by hand that reads nothing after the handshake (its receive buffer kept small)."""
    port = int(url.rsplit(":", 1)[1])
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall((f"GET /v1/live?engine=service HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b" 101 " in raw.recv(4096).split(b"\r\n")[0]
    for payload, opcode in ((hello, 1), *((jpeg(np.full((600, 800, 3), 90, np.uint8)), 2) for _ in range(3))):
        if payload is None:
            break
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
                                           if size < 65536 else bytes([0x80 | 127]) + size.to_bytes(8, "big"))
        body = (np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), size)).tobytes()
        raw.sendall(head + mask + body)
    return raw


def _waiting(url: str) -> int:
    import urllib.request

    return json.loads(urllib.request.urlopen(url + "/healthz", timeout=10).read())["waiting"]


def test_no_client_holds_a_place_without_the_token_or_without_reading(scene):
    from p3m.serve.app import ServiceLimits, create_app

    frames, _ = scene
    limits = ServiceLimits(token="s3cret", queue=0, timeout=2.0, header_timeout=1.0)
    with running(create_app(NoiseEngine(fail=(2,)), limits)) as url:
        silent = _raw_stream(url, None)  # never says hello: no place taken, closed after header_timeout
        with _connect(url, "?engine=service") as socket_:
            socket_.send(json.dumps({"token": "s3cret"}))
            socket_.send(jpeg(frames[0]))
            assert json.loads(socket_.recv(timeout=10))["frame"] == 0  # the one place was free
            socket_.recv(timeout=10)
            socket_.send(jpeg(frames[1]))  # the engine raises: one line, and the stream goes on
            assert json.loads(socket_.recv(timeout=10)) == {"error": "the engine broke on this frame"}
            socket_.send(jpeg(frames[2]))
            assert json.loads(socket_.recv(timeout=10))["frame"] == 1
        silent.close()
        deaf = _raw_stream(url, json.dumps({"token": "s3cret"}).encode())  # sends frames, never reads answers
        time.sleep(1.0)
        assert _waiting(url) == 1
        deadline = time.monotonic() + 15
        while _waiting(url) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert _waiting(url) == 0  # its answers were not taken within timeout: the place is given back
        deaf.close()
        from websockets.exceptions import ConnectionClosed

        with _connect(url, "?engine=service") as chatty:  # text only is not a frame: idle all the same
            chatty.send(json.dumps({"token": "s3cret"}))
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(40):
                    chatty.send("still here")
                    assert "binary messages" in json.loads(chatty.recv(timeout=5))["error"]
                    time.sleep(0.3)
            assert closed.value.rcvd.reason == "no frame for 2 s" and time.monotonic() - started < 5


def test_few_streams_may_wait_for_their_hello_messages_are_bounded_and_answers_stay_whole(scene):
    from websockets.exceptions import ConnectionClosed

    from p3m.serve.app import ServiceLimits, create_app
    from p3m.serve.live import GREETINGS_PER_PLACE

    frames, _ = scene
    limits = ServiceLimits(queue=0, max_frame=200_000)
    with running(create_app(ConstantEngine(0.5), limits)) as url:
        waiting = [_raw_stream(url, None) for _ in range(GREETINGS_PER_PLACE)]  # each could hold max_frame
        time.sleep(0.5)
        with _connect(url) as one_more:
            assert _closed_reason(one_more) == "1013 busy: too many streams are starting, retry shortly"
        for raw in waiting:
            raw.close()
        time.sleep(0.5)
        with _connect(url, "?engine=service&temporal=off") as socket_:
            socket_.send("{}")
            answers = []
            for index in range(6):  # text beside frames: every frame's JSON is followed by its PNG
                socket_.send(jpeg(frames[index]))
                socket_.send("noise")
                answers += [socket_.recv(timeout=10) for _ in range(3)]  # the frame's two, the text's one
            for first, second in zip(answers, answers[1:]):
                if isinstance(first, str) and '"frame"' in first:
                    assert isinstance(second, bytes)
            socket_.send(b"\xff" * 300_000)  # over max_frame: the stream is closed by the WebSocket layer
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    socket_.recv(timeout=10)
            assert closed.value.rcvd is None or closed.value.rcvd.code == 1009


def test_p3m_live_mattes_a_file_and_any_frames_with_the_options_of_files(scene, tmp_path, home):
    import p3m
    from p3m.errors import VideoError

    frames, truth = scene
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames[:6])
    from_file = list(p3m.live(clip))
    assert [f.index for f in from_file] == list(range(6))
    assert from_file[0].outputs["alpha"].dtype == np.uint8
    assert np.abs(from_file[3].alpha - truth[3]).mean() < 0.05
    composites = list(p3m.live(iter(frames[:3]), save=("composite",), background="#00ff00", temporal="off"))
    corner = composites[0].outputs["composite"][:20, :20].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - GREEN).max() < 10  # the backdrop replaced
    with pytest.raises(VideoError, match="no such file"):
        next(p3m.live(tmp_path / "missing.mp4"))
    with pytest.raises(VideoError, match="one image is not a frame source"):
        next(p3m.live(frames[0]))
    from p3m.errors import OptionError
    with pytest.raises(OptionError, match="temporal"):
        next(p3m.live(frames, temporal="smooth"))
    with pytest.raises(VideoError, match="a camera index is 0 to 255"):  # OpenCV crashed on -1
        next(p3m.live(-1))


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (make test installs it)")
def test_the_live_tab_streams_a_camera_and_replaces_the_background(scene, home, tmp_path):
    """Chromium's fake camera plays a real portrait swaying over a dark backdrop; the
    Live tab on a colour background must show the person kept and the backdrop green."""
    from playwright.sync_api import sync_playwright

    import p3m
    from p3m.serve.app import create_app

    frames, truth = scene
    camera = tmp_path / "camera.y4m"
    write_y4m(camera, frames, rate=15)
    with running(create_app(p3m.open_engine("default"))) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"])
        shots = {}
        for name, viewport in (("desktop", {"width": 1280, "height": 800}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            page.goto(url)
            page.click("#tab-live")
            page.select_option("#live-bg", "colour")
            page.fill("#live-colour", "#00ff00")
            page.click("#live-start")
            page.wait_for_function("Number(document.querySelector('#live-stats').dataset.frames || 0) >= 40", polling=250,
                                   timeout=60_000)
            shots[name] = tmp_path / f"serve_live_{name}.png"
            page.screenshot(path=str(shots[name]), full_page=True)
            stats = page.eval_on_selector("#live-stats", "e => ({...e.dataset, text: e.textContent})")
            assert page.inner_text("#live-status") == ""  # no error line: the stream runs on
            shown = page.eval_on_selector("#live-canvas", "c => c.toDataURL('image/png')")
            page.click("#tab-matte")  # leaving the tab stops the camera
            assert page.get_attribute("body", "data-live") is None
            page.close()
        browser.close()
    canvas = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(shown.split(",", 1)[1]), np.uint8),
                                       cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(float)
    assert canvas.shape == (360, 640, 3)
    person = np.mean(truth, axis=0) > 0.99  # inside the person in every frame
    backdrop = np.mean(truth, axis=0) < 0.01
    green = np.all(np.abs(canvas - GREEN) < 40, axis=2)
    assert green[backdrop].mean() > 0.9  # the backdrop replaced
    assert green[person].mean() < 0.05   # the person kept
    assert float(stats["fps"]) > 1 and float(stats["latency"]) > 0 and "frames/s" in stats["text"]
    target = os.environ.get("P3M_SCREENSHOTS")  # set it to refresh docs/images
    if target:
        for path in shots.values():
            shutil.copy(path, Path(target) / path.name)
