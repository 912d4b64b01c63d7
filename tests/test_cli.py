"""The command line: one-line errors with exit status 1, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.cli import main


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=cwd)


def test_missing_data_folder_is_one_line_exit_1(tmp_path):
    result = _run("run", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "does not exist" in lines[0]


def test_missing_required_column_names_file_and_column(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "centres.csv").write_text("centre_id,setting\nC1,urban\n")
    for table in ("partnerships", "child_assessments", "parent_survey"):
        (data / f"{table}.csv").write_text("x\n1\n")
    assert main(["run", "--data", str(data), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "centres.csv" in err and "'province'" in err and "required column is missing" in err


def test_debug_shows_the_traceback(tmp_path):
    result = _run("--debug", "run", "--data", str(tmp_path / "nowhere"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_bad_jobs_and_scale(tmp_path, capsys):
    assert main(["run", "--jobs", "0"]) == 1
    assert main(["simulate", "--out", str(tmp_path / "x"), "--scale", "0"]) == 1
    assert "--scale" in capsys.readouterr().err


def test_help_lists_the_commands():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("run", "check", "simulate"):
        assert command in result.stdout


@pytest.mark.slow
def test_sigterm_leaves_no_partial_output(tmp_path):
    import signal
    import time

    from evalkit.simulate import simulate

    simulate(tmp_path / "data", seed=3, scale=0.3)
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", "run", "--data", str(tmp_path / "data"),
                             "--out", str(tmp_path / "out"), "--jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "out" / ".evalkit-staging").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "index.html").exists()
    assert not (tmp_path / "out" / ".evalkit-staging").exists()
    assert not (tmp_path / "out" / ".evalkit.lock").exists()
