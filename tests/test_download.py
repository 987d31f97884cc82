"""``p3m weights install URL``: download with resume and progress, Google Drive's
confirmation page, refusal of what is not P3M-Net weights; against a loopback server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from p3m.cli.main import main
from p3m.weights.download import download_address
from p3m.weights.store import installed


@pytest.fixture(scope="module")
def files(tmp_path_factory, reference_model):
    folder = tmp_path_factory.mktemp("served")
    torch.save({"state_dict": reference_model.state_dict()}, folder / "good.pth")
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3)}}, folder / "wrong.pth")
    return {"good": (folder / "good.pth").read_bytes(), "wrong": (folder / "wrong.pth").read_bytes()}


@pytest.fixture()
def server(files):
    state = {"flaky_served": 0, "ranges": [], "good": files["good"]}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send_file(self, data: bytes, name: str, cut: int | None = None):
            start = 0
            wanted = self.headers.get("Range")
            if wanted:
                state["ranges"].append(wanted)
                start = int(wanted.split("=")[1].rstrip("-"))
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", f'attachment; filename="{name}"')
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:cut] if cut else data[start:])

        def do_GET(self):
            if self.path == "/good.pth":
                self._send_file(files["good"], "good.pth")
            elif self.path == "/wrong.pth":
                self._send_file(files["wrong"], "wrong.pth")
            elif self.path == "/flaky.pth":
                state["flaky_served"] += 1
                first = state["flaky_served"] == 1
                self._send_file(files["good"], "flaky.pth", cut=len(files["good"]) // 3 if first else None)
                if first:
                    self.close_connection = True
            elif self.path.startswith("/uc?"):  # a Drive-like "can't scan for viruses" page
                body = (b'<html><body>Google Drive can\'t scan this file for viruses.<form id="download-form" '
                        b'action="/usercontent/download" method="get"><input type="hidden" name="id" value="XYZ">'
                        b'<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" '
                        b'value="t"></form></body></html>')
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path in ("/badlength", "/nul", "/long", "/samezip"):
                import io
                import zipfile

                data, name = files["good"], {"/nul": "a%00b.pth", "/long": "w" * 300 + ".pth"}.get(self.path, "x.pth")
                if self.path == "/samezip":
                    buffer = io.BytesIO()
                    with zipfile.ZipFile(buffer, "w") as archive:
                        archive.writestr("same.pth", files["good"])
                    data, name = buffer.getvalue(), "same.pth"
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Disposition", f'attachment; filename="{name}"')
                if self.path == "/badlength":
                    self.send_header("Content-Length", "abc")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path.startswith("/trap"):  # a confirmation-shaped page pointing at a local file
                secret = state["secret"]
                body = (f'<html><form action="file://{secret}#" method="get"><input type="hidden" name="id" '
                        f'value="XYZ"></form><a href="file://{secret}#confirm=t">x</a></html>').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/usercontent/download?id=XYZ&export=download&confirm=t":
                self._send_file(files["good"], "p3mnet_pretrained_on_p3m10k.pth")
            else:
                body = b"<html>Sign in</html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("P3M_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_good_download_is_checked_converted_and_installed(server, home, capsys):
    base, _ = server
    assert main(["weights", "install", f"{base}/good.pth"]) == 0
    assert [(w.name, w.arch) for w in installed()] == [("p3mnet-r34", "p3mnet-r34")]
    assert not list((home / "downloads").iterdir()), "the downloaded file is removed once installed"


def test_an_interrupted_download_resumes_where_it_stopped(server, home, capsys):
    base, state = server
    assert main(["weights", "install", f"{base}/flaky.pth", "--name", "resumed"]) == 1
    err = capsys.readouterr().err
    assert "download interrupted after" in err and "run the same command again to resume" in err
    part = home / "downloads" / "flaky.pth.part"
    kept = part.stat().st_size
    assert 0 < kept < len(files_of(server))
    assert main(["weights", "install", f"{base}/flaky.pth", "--name", "resumed"]) == 0
    assert state["ranges"] == [f"bytes={kept}-"], "only the rest was asked for"
    assert [w.name for w in installed()] == ["resumed"] and not part.exists()


def files_of(server) -> bytes:
    return server[1]["good"]


def test_a_drive_confirmation_page_is_followed(server, home, capsys):
    base, _ = server
    assert main(["weights", "install", f"{base}/uc?export=download&id=XYZ"]) == 0
    assert [w.arch for w in installed()] == ["p3mnet-r34"]


@pytest.mark.parametrize("path, problem", [("/wrong.pth", "not a checkpoint of a known P3M network"),
                                           ("/signin", "the server sent a web page, not a weights file")])
def test_what_is_not_p3m_net_is_refused_and_not_installed(server, home, capsys, path, problem):
    base, _ = server
    assert main(["weights", "install", f"{base}{path}"]) == 1
    assert problem in capsys.readouterr().err and installed() == []


def test_an_unreachable_server_is_one_line(home, capsys):
    assert main(["weights", "install", "http://127.0.0.1:9/p3m.pth"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot connect" in err[0]


def test_drive_share_links_become_download_addresses():
    expected = "https://drive.google.com/uc?export=download&id=1smX2YQGIpzKbfwDYHAwete00a_YMwoG1"
    for link in ("https://drive.google.com/file/d/1smX2YQGIpzKbfwDYHAwete00a_YMwoG1/view?usp=sharing",
                 "https://drive.google.com/open?id=1smX2YQGIpzKbfwDYHAwete00a_YMwoG1",
                 "https://drive.google.com/u/0/uc?id=1smX2YQGIpzKbfwDYHAwete00a_YMwoG1&export=download"):
        assert download_address(link) == expected
    assert download_address("https://example.org/a.pth") == "https://example.org/a.pth"


def test_a_page_pointing_at_a_local_file_is_not_followed(server, home, tmp_path, capsys):
    """A confirmation-shaped page whose form or link names file:///PATH must not copy that
    file into the cache (the '#' would swallow the ?id= p3m appends)."""
    url, state = server
    secret = tmp_path / "private.pth"
    secret.write_bytes(b"private bytes")
    secret.chmod(0o600)
    state["secret"] = str(secret)
    assert main(["weights", "install", f"{url}/trap"]) == 1
    err = capsys.readouterr().err
    assert "not an http(s) address; not followed" in err and len(err.strip().splitlines()) == 1
    copies = [p for p in home.rglob("*") if p.is_file() and p.read_bytes() == b"private bytes"]
    assert copies == []


@pytest.mark.parametrize("path", ["/badlength", "/nul", "/long", "/samezip"])
def test_odd_servers_and_names_still_install_or_say_why(server, home, capsys, path):
    """A nonsense Content-Length, a name with %00 or of 300 characters, a zip named like the
    checkpoint it holds: installed, with no traceback and nothing left in downloads."""
    url, _ = server
    assert main(["weights", "install", f"{url}{path}", "--name", "odd"]) == 0, capsys.readouterr().err
    assert [w.name for w in installed()] == ["odd"]
    assert not [p for p in (home / "downloads").rglob("*") if p.is_file()]


def test_a_failed_install_leaves_nothing_in_downloads(server, home, capsys):
    url, _ = server
    assert main(["weights", "install", f"{url}/wrong.pth"]) == 1
    assert not [p for p in (home / "downloads").rglob("*") if p.is_file()]
