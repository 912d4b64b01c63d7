"""The output folder: cache, staging (all-or-nothing), and the lock."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from evalkit import executors
from evalkit.errors import InputError
from evalkit.cli import main
from evalkit.outputs import (LOCK_NAME, STAGING_NAME, OutputLock, frame_digest, frame_digests_by, hash_json,
                             read_manifest, resolve_run, up_to_date)
from evalkit.pipeline import prepare, run
from evalkit.simulate import simulate

REGIONS = ["Gauteng", "Western Cape"]


def quiet(_message: str) -> None:
    pass


def test_hash_json_ignores_key_order_and_frame_digest_sees_values():
    assert hash_json({"a": 1, "b": [1, 2]}) == hash_json({"b": [1, 2], "a": 1})
    one = pd.DataFrame({"x": [1.0, 2.0]})
    assert frame_digest(one) == frame_digest(one.copy())
    assert frame_digest(one) != frame_digest(pd.DataFrame({"x": [1.0, 2.5]}))


def test_digests_by_region_equal_the_digest_of_each_regions_rows():
    frame = pd.DataFrame({"region": ["A", "B", "A", "C"], "x": [1.0, 2.0, 3.0, 4.0]})
    digests = frame_digests_by(frame, "region", ["A", "B", "D"])
    for region in ("A", "B", "D"):
        assert digests[region] == frame_digest(frame.loc[frame["region"] == region])
    assert digests["A"] != digests["B"]


def test_lock_refuses_a_live_writer_and_takes_over_a_stale_one(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / LOCK_NAME).write_text(str(sleeper.pid))
        with pytest.raises(InputError, match="another evalkit run"):
            with OutputLock(tmp_path):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with OutputLock(tmp_path) as lock:  # the sleeper is gone: its lock is stale
        assert lock.stale_taken_over
        assert (tmp_path / LOCK_NAME).read_text() == str(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()


def _fake_published_run(tmp_path, exit_code=0):
    """An output folder as a finished run leaves it (empty files are enough for the cache check), keyed
    as the command line keys a run started here (the study folder's plan and notebook)."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "centres.csv").write_text("centre_id\nC1\n")
    key = resolve_run(data, out)
    for name in ["index.html", "results/estimates.csv", "cleaning_log.csv", "processed/child_outcomes.parquet",
                 "regions/gauteng.html"]:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("")
    manifest = {"cache": {"run_key": key.key}, "exit_code": exit_code, "complete": True,
                "regions": {"Gauteng": {"report": "regions/gauteng.html"}}}
    (out / "run_manifest.json").write_text(json.dumps(manifest))
    return data, out


def test_up_to_date_needs_the_same_key_a_clean_exit_and_every_published_file(tmp_path):
    data, out = _fake_published_run(tmp_path)
    assert resolve_run(data, out).processed_dir == out / "processed"
    assert up_to_date(resolve_run(data, out), read_manifest(out))
    assert not up_to_date(resolve_run(data, out, level="district"), read_manifest(out))  # other parameters
    assert not up_to_date(resolve_run(data, out), None)
    (out / "regions" / "gauteng.html").unlink()  # a published report went missing
    assert not up_to_date(resolve_run(data, out), read_manifest(out))
    (out / "regions" / "gauteng.html").write_text("")
    (data / "centres.csv").write_text("centre_id\nC2\n")  # the data changed
    assert not up_to_date(resolve_run(data, out), read_manifest(out))


def test_up_to_date_is_false_after_a_run_with_failed_regions(tmp_path):
    data, out = _fake_published_run(tmp_path, exit_code=3)
    assert not up_to_date(resolve_run(data, out), read_manifest(out))


def test_cli_skips_an_unchanged_run_without_importing_pandas_unless_a_run_is_writing(tmp_path, capsys):
    data, out = _fake_published_run(tmp_path)
    code = ("import sys; from evalkit.cli import main; rc = main(sys.argv[1:]); "
            "assert 'pandas' not in sys.modules, 'pandas was imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "run", "--data", str(data), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Nothing changed since the last run" in done.stdout
    # Another run holds the folder: the fast path stands aside and the lock's own error is reported.
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (out / LOCK_NAME).write_text(str(sleeper.pid))
        assert main(["run", "--data", str(data), "--out", str(out), "--no-reports"]) == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    assert "another evalkit run" in capsys.readouterr().err


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache") / "data"
    simulate(folder, seed=5, scale=0.5)
    return folder


@pytest.mark.slow
def test_unchanged_rerun_does_nothing_and_one_changed_region_rerenders_alone(data_folder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for path in data_folder.iterdir():
        (data / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    first = run(data, out, regions=REGIONS, jobs=2, progress=quiet)
    assert first.exit_code == 0 and not first.cached
    index_mtime = (out / "index.html").stat().st_mtime_ns
    report_mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "regions").glob("*.html")}

    second = run(data, out, regions=REGIONS, jobs=2, progress=quiet)
    assert second.cached and second.exit_code == 0
    assert (out / "index.html").stat().st_mtime_ns == index_mtime

    # Change one Gauteng child's score: only Gauteng (and the index) are rendered again.
    outcomes = prepare(data, regions=["Gauteng"]).child_outcomes
    child = outcomes.loc[(outcomes["region"] == "Gauteng") & outcomes["elom_gmd"].notna(), "child_id"].iloc[0]
    raw = pd.read_csv(data / "child_assessments.csv", dtype=str, keep_default_na=False)
    row = raw.index[raw["child_id"] == child][0]
    raw.loc[row, "elom_gmd"] = "0.5" if raw.loc[row, "elom_gmd"] != "0.5" else "1.5"
    raw.to_csv(data / "child_assessments.csv", index=False)
    third = run(data, out, regions=REGIONS, jobs=2, progress=quiet)
    assert not third.cached
    assert third.region_status["Gauteng"]["cached"] is False
    assert third.region_status["Western Cape"]["cached"] is True
    after = {p.name: p.stat().st_mtime_ns for p in (out / "regions").glob("*.html")}
    assert after["western-cape.html"] == report_mtimes["western-cape.html"]
    assert after["gauteng.html"] != report_mtimes["gauteng.html"]
    assert (out / "index.html").stat().st_mtime_ns != index_mtime


@pytest.mark.slow
def test_interrupted_run_leaves_the_previous_output_complete(data_folder, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(data_folder, out, regions=REGIONS, jobs=1, progress=quiet)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "render_reports", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(data_folder, out, regions=REGIONS, jobs=1, use_cache=False, progress=quiet)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not (out / STAGING_NAME).exists() and not (out / LOCK_NAME).exists()
