"""The ``p3m`` command: version, help, doctor, convert, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import p3m
from p3m.cli.main import main


def test_version_and_help(capsys):
    for argv in (["--version"], ["--help"]):
        try:
            main(argv)
        except SystemExit as exit_:
            assert exit_.code == 0
    out = capsys.readouterr().out
    assert f"p3m {p3m.__version__}" in out and "doctor" in out and "convert" in out


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["evaluate", "--help"], ["matte", "--help"]])
def test_the_command_line_starts_without_torch(argv):
    """Help and version import no torch: they answer in the time of importing numpy."""
    code = ("import sys\nfrom p3m.cli.main import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)" % argv)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr


def test_evaluate_runs_without_torch(tmp_path):
    import numpy as np
    from PIL import Image

    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / folder / "a.png")
    code = ("import sys\nfrom p3m.cli.main import main\n"
            f"status = main(['evaluate', '--pred', {str(tmp_path / 'pred')!r}, '--gt', {str(tmp_path / 'gt')!r}])\n"
            "print(status, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "0 False", done.stdout + done.stderr


def test_console_script_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "p3m", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"p3m {p3m.__version__}"


def test_doctor_says_what_is_missing_and_what_to_run(tmp_path, monkeypatch):
    from p3m.doctor import installation_report

    monkeypatch.setenv("P3M_HOME", str(tmp_path / "empty"))
    report = "\n".join(installation_report())
    assert "default engine model: not fetched" in report and "run: p3m weights fetch default" in report
    assert "P3M-Net weights: none installed; run: p3m weights install p3mnet-vitae-s" in report
    assert "[privacy] face anonymization" in report and "dlib and its face models: installed" in report


def test_doctor_runs_without_torch_and_lists_every_extra(tmp_path):
    """The base install (no PyTorch) is the one that most needs a diagnosis: the report
    runs, says what torch would bring, skips the network checks, and names every extra
    of pyproject.toml with its install command."""
    import os
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    script = ("import sys; sys.modules['torch'] = None; from p3m.cli.main import main; rc = main(['doctor']); "
              "print('torch imported:', sys.modules.get('torch') is not None); sys.exit(rc)")
    env = {**os.environ, "P3M_HOME": str(tmp_path / "empty")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PyTorch: not installed" in out and "pip install 'p3m[torch]'" in out
    assert "Network checks: skipped" in out and "[ok] metrics on a hand-worked case" in out
    assert "torch imported: False" in out
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"]) - {"test"}
    assert extras == {line.split("]")[0].lstrip("[ ") for line in out.splitlines() if line.strip().startswith("[")
                      and "]" in line and not line.strip().startswith("[ok]")}
    assert "[torch] P3M-Net weights" in out and "missing torch; run: pip install 'p3m[torch]'" in out


@pytest.mark.slow
def test_doctor_reports_environment_and_passes(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "threads" in out
    assert "[ok] P3M-Net (ResNet-34) reference outputs" in out and "FAILED" not in out


def test_convert_then_load(tmp_path, published_checkpoint, capsys):
    dst = tmp_path / "m.safetensors"
    assert main(["convert", str(published_checkpoint), str(dst)]) == 0
    assert "p3mnet-r34" in capsys.readouterr().out
    assert p3m.load_model(dst).arch_config["arch"] == "p3mnet-r34"


def test_bad_checkpoint_gives_one_line_no_traceback(tmp_path, capsys):
    bad = tmp_path / "broken.pth"
    bad.write_text("garbage")
    assert main(["convert", str(bad), str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("p3m: error: ") and str(bad) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.safetensors").exists()


def test_quiet_prints_only_what_went_wrong(tmp_path, published_checkpoint, capsys):
    """--quiet (on any command) drops the engine line, progress and totals; a failed
    input still gets its line, and the exit status still says so."""
    import numpy as np
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"not an image")
    args = ["matte", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--engine", str(published_checkpoint)]
    assert main(args) == 1
    loud = capsys.readouterr().err
    assert "p3m: engine" in loud and "1 done" in loud
    assert main([*args, "--overwrite", "-q"]) == 1
    quiet = capsys.readouterr().err.strip().splitlines()
    assert len(quiet) == 1 and "bad.png" in quiet[0] and "failed" in quiet[0]
    assert main(["weights", "list", "-q"]) == 0  # nested commands take it too
    assert list((tmp_path / "out").rglob("good.png"))
