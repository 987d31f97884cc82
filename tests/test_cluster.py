"""Matting and anonymising on a real local Ray cluster (a head node and a second node on
loopback, started and stopped here): the same outputs, records and report as one machine."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from p3m.inference import open_engine
from p3m.jobs.matte import MatteOptions, matte_files
from p3m.jobs.results import Status
from p3m.utils.device import torch_threads

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """HOST:PORT of a two-node Ray cluster on this machine, one CPU per node."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    # Short: Ray's sockets live under it, and a socket's path may not pass 107 bytes (pytest's
    # own temporary folders are deeper under pytest-xdist).
    temp = Path(tempfile.mkdtemp(prefix="p3m-ray-"))
    def ray(*args: str) -> None:
        done = subprocess.run([RAY, *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"ray {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    try:
        ray("start", "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false", f"--temp-dir={temp}",
            *common)
        ray("start", f"--address={address}", *common)
        yield address
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    base = cv2.resize(data.astronaut(), (128, 96), interpolation=cv2.INTER_AREA)
    paths = []
    for i in range(4):
        path = folder / f"p{i}.png"
        Image.fromarray(np.roll(base, 9 * i, axis=1)).save(path)
        paths.append(path)
    (folder / "broken.png").write_bytes(b"not a png")
    return paths


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_matte_on_the_cluster_equals_one_machine(cluster, tmp_path, published_checkpoint):
    from p3m.cluster import ClusterOptions

    _inputs(tmp_path / "in")
    options = MatteOptions(save=("alpha", "cutout"))
    network = dict(method="resize", max_size=64)
    with torch_threads(1):  # actors run on one CPU each; one thread gives the same bits
        local = matte_files(open_engine(published_checkpoint, **network), [tmp_path / "in"], tmp_path / "local", options)
    remote = matte_files(str(published_checkpoint), [tmp_path / "in"], tmp_path / "remote", options,
                         cluster=ClusterOptions(cluster, actors=2, engine_options=network))
    assert [(r.name, r.status, r.reason) for r in remote.records] == [(r.name, r.status, r.reason) for r in local.records]
    assert remote.done == 4 and remote.failed == 1 and "broken.png" in remote.failures[0].name
    assert _tree(tmp_path / "remote") == _tree(tmp_path / "local") and len(_tree(tmp_path / "local")) == 8
    import ray

    assert sum(node["Alive"] for node in ray.nodes()) == 2  # the work ran on a two-node cluster
    again = matte_files(str(published_checkpoint), [tmp_path / "in"], tmp_path / "remote", options,
                        cluster=ClusterOptions(cluster, actors=2, engine_options=network))
    assert again.skipped == 4 and again.done == 0  # resume: done items are not sent again


def test_anonymize_on_the_cluster_gives_the_same_report(cluster, tmp_path):
    pytest.importorskip("dlib")
    from p3m.cluster import ClusterOptions
    from p3m.jobs.anonymize import anonymize_files

    folder = tmp_path / "in"
    folder.mkdir()
    face = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    Image.fromarray(face).save(folder / "face.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / "wall.png")  # no face: held back
    local = anonymize_files([folder], tmp_path / "local")
    remote = anonymize_files([folder], tmp_path / "remote", cluster=ClusterOptions(cluster, actors=2))
    assert remote.rows() == local.rows() and remote.totals() == local.totals()
    assert [r.status for r in remote.records] == [Status.DONE, Status.HELD_BACK]
    assert _tree(tmp_path / "remote") == _tree(tmp_path / "local")


def test_without_ray_cluster_says_how_to_install(tmp_path):
    folder = tmp_path / "in"
    _inputs(folder)
    code = ("import sys\nsys.modules['ray'] = None\nfrom p3m.cli.main import main\n"
            f"sys.exit(main(['matte', {str(folder)!r}, '-o', {str(tmp_path / 'out')!r}, '--cluster', 'auto']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and 'pip install "p3m[cluster]"' in done.stderr
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_private_cutouts_on_the_cluster_equal_one_machine(cluster, tmp_path, published_checkpoint):
    pytest.importorskip("dlib")
    from p3m.cluster import ClusterOptions

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)).save(folder / "face.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / "wall.png")  # no face: held back
    options = MatteOptions(save=("cutout",), anonymize=True)
    network = dict(method="resize", max_size=64)
    with torch_threads(1):
        local = matte_files(open_engine(published_checkpoint, **network), [folder], tmp_path / "local", options)
    remote = matte_files(str(published_checkpoint), [folder], tmp_path / "remote", options,
                         cluster=ClusterOptions(cluster, actors=2, engine_options=network))
    assert [(r.status, r.privacy) for r in remote.records] == [(r.status, r.privacy) for r in local.records]
    # The fixture network's matte is soft over the whole face, so every face pixel is a
    # transition pixel the blur must keep: the face stays identifiable and is held back.
    assert [r.status for r in remote.records] == [Status.HELD_BACK, Status.HELD_BACK]
    assert [r.privacy["status"] for r in remote.records] == ["identifiable", "no-face"]
    assert remote.records[0].privacy["audit"]["changed_transition_pixels"] == 0
    assert not _tree(tmp_path / "remote") and not _tree(tmp_path / "local")  # nothing written for either


# A worker that dies mid-job (issue 27, item 16). Functions made inside other functions
# travel to the actors by value (cloudpickle); the actors cannot import this module.

def _killing(work, victim: str, marker: Path, always: bool = False):
    """``work()``, a function of (state, job), except that on the job whose item is named
    ``victim`` the actor's process kills itself (SIGKILL) the first time (every time with
    ``always``). ``work`` is called in the actor, where the test's monkeypatch does not reach."""

    def run(state, job):
        import signal

        if Path(job[0].path).name == victim and (always or not marker.exists()):
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return work()(state, job)

    return run


def _pictures(folder: Path, count: int, size: int = 128) -> list[str]:
    folder.mkdir()
    base = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    for i in range(count):
        Image.fromarray(np.roll(base, 3 * i, axis=1)).save(folder / f"p{i}.png")
    return [f"p{i}.png" for i in range(count)]


def test_a_killed_worker_does_not_stop_the_anonymize_job(cluster, tmp_path, monkeypatch, capsys):
    pytest.importorskip("dlib")
    import p3m.jobs.anonymize as job
    from p3m.cluster import ClusterOptions

    names = _pictures(tmp_path / "in", 6, size=256)
    local = job.anonymize_files([tmp_path / "in"], tmp_path / "local")
    marker = tmp_path / "killed"
    monkeypatch.setattr(job, "anonymize_item", _killing(lambda: job.anonymize_item, "p2.png", marker))
    remote = job.anonymize_files([tmp_path / "in"], tmp_path / "remote", cluster=ClusterOptions(cluster, actors=2))
    assert marker.exists()  # p2.png's actor did die
    assert "p3m: a cluster worker died (" in capsys.readouterr().err.replace("\n", " ")
    assert [Path(r.name).name for r in remote.records] == names  # each once, in input order
    assert remote.rows() == local.rows() and remote.totals() == local.totals()
    assert _tree(tmp_path / "remote") == _tree(tmp_path / "local")
    report = (tmp_path / "remote" / "report.csv").read_text().splitlines()
    assert len(report) == 1 + len(names) and (tmp_path / "remote" / "report.json").is_file()
    journal = [line for line in (tmp_path / "remote" / job.JOURNAL).read_text().splitlines() if line]
    assert len(journal) == len(names)  # p2.png journalled once, when it finally ran


def test_an_image_that_kills_every_worker_fails_alone_and_the_report_is_written(cluster, tmp_path, monkeypatch):
    pytest.importorskip("dlib")
    import p3m.jobs.anonymize as job
    from p3m.cluster import ClusterOptions

    names = _pictures(tmp_path / "in", 4, size=256)
    monkeypatch.setattr(job, "anonymize_item", _killing(lambda: job.anonymize_item, "p1.png", tmp_path / "killed",
                                                        always=True))
    remote = job.anonymize_files([tmp_path / "in"], tmp_path / "out", cluster=ClusterOptions(cluster, actors=2))
    rows = {Path(r["image"]).name: r for r in remote.rows()}
    assert sorted(rows) == names and rows["p1.png"]["status"] == "error"
    assert "cluster workers died while running it" in rows["p1.png"]["message"]
    assert all(rows[name]["status"] == "ok" for name in names if name != "p1.png")
    report = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert len(report) == 1 + len(names)


def test_a_killed_worker_does_not_stop_the_matte_job(cluster, tmp_path, monkeypatch, capsys, published_checkpoint):
    import p3m.jobs.matte as job
    from p3m.cluster import ClusterOptions

    _inputs(tmp_path / "in")
    options = MatteOptions(save=("alpha",))
    network = dict(method="resize", max_size=64)
    with torch_threads(1):
        local = matte_files(open_engine(published_checkpoint, **network), [tmp_path / "in"], tmp_path / "local", options)
    marker = tmp_path / "killed"
    monkeypatch.setattr(job, "matte_item", _killing(lambda: job.matte_item, "p2.png", marker))
    remote = matte_files(str(published_checkpoint), [tmp_path / "in"], tmp_path / "remote", options,
                         cluster=ClusterOptions(cluster, actors=2, engine_options=network))
    err = capsys.readouterr().err
    assert marker.exists() and err.count("its item runs again on another") == 1
    assert [(r.name, r.status, r.reason) for r in remote.records] == [(r.name, r.status, r.reason) for r in local.records]
    assert remote.done == 4 and remote.failed == 1
    assert _tree(tmp_path / "remote") == _tree(tmp_path / "local") and len(_tree(tmp_path / "local")) == 4


def _jobs(count: int) -> list[tuple]:
    from types import SimpleNamespace

    return [(SimpleNamespace(path=f"p{i}.png"),) for i in range(count)]


def test_an_item_that_keeps_killing_its_worker_fails_alone(cluster, tmp_path, capsys):
    from p3m.cluster import ClusterOptions
    from p3m.cluster.ray_pool import ActorPool, ClusterError

    items = _jobs(5)
    work = _killing(lambda: lambda _state, job: f"{job[0].path}!", "p2.png", tmp_path / "killed", always=True)
    with ActorPool(ClusterOptions(cluster, actors=2), dict) as pool:
        got = list(pool.map(work, items, failed=lambda job, reason: (job[0].path, reason)))
        assert got[:2] + got[3:] == ["p0.png!", "p1.png!", "p3.png!", "p4.png!"]
        assert got[2][0] == "p2.png" and got[2][1].startswith("3 cluster workers died while running it (")
        err = capsys.readouterr().err
        assert err.count("its item runs again on another") == 2 and err.count("its item failed") == 1
        assert "(its worker process has died; pid " in err
        got = []
        with pytest.raises(ClusterError, match="item 3 of 5: 3 cluster workers died"):
            for result in pool.map(work, items):  # no failed: the lost item raises, in its turn
                got.append(result)
        assert got == ["p0.png!", "p1.png!"]


def test_with_no_worker_left_the_rest_fail(cluster, tmp_path, capsys):
    from p3m.cluster import ClusterOptions
    from p3m.cluster.ray_pool import ActorPool

    marker = tmp_path / "killed"

    def setup():  # a replacement cannot set up once the first actor died
        if marker.exists():
            raise RuntimeError("no engine here")
        return {}

    items = _jobs(4)
    with ActorPool(ClusterOptions(cluster, actors=1), setup) as pool:
        got = list(pool.map(_killing(lambda: lambda _state, job: f"{job[0].path}!", "p1.png", marker), items,
                            failed=lambda job, reason: (job[0].path, reason)))
    assert got[0] == "p0.png!" and [g[0] for g in got[1:]] == ["p1.png", "p2.png", "p3.png"]
    assert all(g[1] == "no cluster worker was left to run it (every worker died and no replacement started)"
               for g in got[1:])
    err = capsys.readouterr().err
    assert "its item runs again on another" in err and "a replacement cluster worker did not start (it could not" in err
    assert "p3m: no cluster worker is left (every worker died and no replacement started); the 3 items not yet run fail" in err


def test_a_replacement_that_never_starts_holds_nothing_up(cluster, tmp_path, capsys):
    """As when a node is gone and no other has room: the live actor does the rest, and
    with none live the items left fail once ``start_timeout`` has passed."""
    from p3m.cluster import ClusterOptions
    from p3m.cluster.ray_pool import ActorPool

    marker = tmp_path / "killed"

    def setup():  # a replacement never gets going once the first actor died
        if marker.exists():
            import time

            time.sleep(600)
        return {}

    work = _killing(lambda: lambda _state, job: f"{job[0].path}!", "p1.png", marker)
    with ActorPool(ClusterOptions(cluster, actors=2), setup) as pool:
        pool.ray.get([actor.ready.remote() for actor in pool.actors])  # both set up before the kill
        assert list(pool.map(work, _jobs(5))) == [f"p{i}.png!" for i in range(5)]
    assert capsys.readouterr().err.count("its item runs again on another") == 1
    marker.unlink()
    with ActorPool(ClusterOptions(cluster, actors=1), setup) as pool:
        pool.start_timeout = 3
        got = list(pool.map(work, _jobs(3), failed=lambda job, reason: (job[0].path, reason)))
    assert got == ["p0.png!", *[(f"p{i}.png", "no cluster worker was left to run it (none started within 3 s)")
                                for i in (1, 2)]]
    assert "p3m: no cluster worker is left (none started within 3 s); the 2 items not yet run fail" in capsys.readouterr().err
