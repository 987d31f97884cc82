"""Matting and anonymising on a real local Ray cluster (a head node and a second node on
loopback, started and stopped here): the same outputs, records and report as one machine."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
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
def cluster(tmp_path_factory):
    """HOST:PORT of a two-node Ray cluster on this machine, one CPU per node."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    temp = tmp_path_factory.mktemp("ray")
    try:
        subprocess.run([RAY, "start", "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false",
                        f"--temp-dir={temp}", *common], check=True, capture_output=True, env=env, timeout=120)
        subprocess.run([RAY, "start", f"--address={address}", *common], check=True, capture_output=True, env=env,
                       timeout=120)
        yield address
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)


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
