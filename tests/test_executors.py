"""The executors: pre-warmed local processes with forked kernels, time limits, interruption, Dask.

Known answers: a forked kernel's notebook outputs equal an ordinarily launched
kernel's (cell by cell, apart from the build time); a region that sleeps past
the time limit is stopped with the limit named on its page; a region whose
process is killed gets the "stopped unexpectedly" page; the other regions are
unaffected; after an interruption no process of the batch is left; the Dask
executor gives byte-identical estimates and the same statuses as the local one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from evalkit import executors, render
from evalkit.executors import LocalExecutor, RegionJob, RenderProgress, make_executor
from evalkit.render import RegionRender, render_region_report
from test_render import write_prepared_run

SERVER_COMMAND = "from evalkit.executors import serve"


def _session_processes(session_id: int) -> list[int]:
    """Live (non-zombie) processes of a session: the region server's, and everything it forked."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            found.append(int(entry.name))
    return found


def _processes_with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _job(out: Path, processed: Path, region: str, slug: str, notebook: Path, timeout: int = 600) -> RegionJob:
    return RegionJob(region=region, slug=slug, output_dir=str(out.resolve()), processed_dir=str(processed.resolve()),
                     notebook=str(notebook), timeout=timeout)


def _outputs(path: Path) -> list:
    """Every code cell's outputs, without the one line that holds the build time."""
    cells = nbformat.read(path, as_version=4).cells
    text = json.dumps([c.get("outputs") for c in cells if c.cell_type == "code"], sort_keys=True)
    return json.loads(re.sub(r"Report built</th><td>[^<]*<", "Report built</th><td><", text))


# --------------------------------------------------------------------------- fast unit tests

def test_progress_lines_and_eta_from_finished_regions():
    lines = []
    progress = RenderProgress({slug.lower(): slug for slug in "ABCDEF"}, emit=lines.append, workers=2)
    assert progress.eta() is None  # nothing finished yet: no guess
    progress.started("a")
    progress.finished(RegionRender("A", "a", "ok", "regions/a.html", "", 2.0))
    progress.finished(RegionRender("B", "b", "failed", "regions/b.html", "x", 4.0))
    # mean 3 s × 4 regions left ÷ 2 workers
    assert progress.eta() == pytest.approx(6.0)
    assert lines[0] == "  A: rendering"
    assert lines[1].startswith("  A: ok in 2.0 s (1/6 done, ")
    assert lines[2].startswith("  B: FAILED in 4.0 s (2/6 done, ") and "about 6 s left" in lines[2]
    progress.close()
    assert len(lines) == 3  # no summary before every region is done
    for slug in "cdef":
        progress.finished(RegionRender(slug.upper(), slug, "not_estimable", f"regions/{slug}.html", "", 1.0))
    progress.close()
    assert re.fullmatch(r"Rendered 6 report\(s\) in \d+\.\d s \(1 ok, 1 FAILED, 4 not estimable\)\.", lines[-1])


def test_forked_process_reports_exit_codes_and_kills():
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    child = executors._ForkedProcess(pid)
    assert child.wait(timeout=10) == 3
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    child = executors._ForkedProcess(pid)
    assert child.poll() is None
    child.kill()
    assert child.poll() == -signal.SIGKILL  # reaped at once after SIGKILL


def test_unreachable_scheduler_is_one_plain_error():
    from evalkit.errors import InputError

    with pytest.raises(InputError, match="could not connect to the Dask scheduler at tcp://127.0.0.1:9"):
        executors.DaskExecutor("tcp://127.0.0.1:9", connect_timeout=1)


def test_make_executor_names():
    with make_executor("none") as nothing:
        with pytest.raises(NotImplementedError):
            nothing.run([])
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("threads")


@pytest.mark.parametrize("argv, message", [
    (["--timeout", "0"], "--timeout"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
])
def test_cli_rejects_bad_executor_options(tmp_path, argv, message):
    from evalkit.cli import main

    code = main(["run", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *argv])
    assert code == 1


# --------------------------------------------------------------------------- real processes

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("executors")
    out, processed, estimates = write_prepared_run(root)
    return root, out, processed, estimates


@pytest.mark.slow
def test_forked_kernel_gives_the_outputs_of_an_ordinary_kernel(prepared, tmp_path):
    _, out, processed, _ = prepared
    ordinary = tmp_path / "ordinary"
    shutil.copytree(out, ordinary)
    assert render_region_report("Gauteng", "gauteng", ordinary, processed).status == "ok"
    with LocalExecutor(jobs=2) as executor:
        results = executor.run([_job(out, processed, "Gauteng", "gauteng", render.REGIONAL_NOTEBOOK),
                                _job(out, processed, "Northern Cape", "northern-cape", render.REGIONAL_NOTEBOOK)])
    assert [r.status for r in results] == ["ok", "not_estimable"]
    forked = _outputs(out / "notebooks" / "gauteng.ipynb")
    assert forked == _outputs(ordinary / "notebooks" / "gauteng.ipynb")
    assert any("image/svg+xml" in json.dumps(cell) for cell in forked)  # figures were drawn
    # same page apart from the build time
    strip = lambda page: re.sub(r"Report built</th><td>[^<]*<", "", page)  # noqa: E731
    assert strip((out / "regions" / "gauteng.html").read_text()) == strip(
        (ordinary / "regions" / "gauteng.html").read_text())
    log = (out / "logs" / "gauteng.log").read_text()
    assert "status: ok" in log and "Traceback" not in log


@pytest.mark.slow
def test_time_limit_and_a_crash_fail_their_region_only(prepared, tmp_path):
    root, out, processed, _ = prepared
    nb = nbformat.read(render.REGIONAL_NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, signal, time\n"
        "if region == 'Northern Cape':\n    time.sleep(600)\n"
        "if 'crash' in processed_dir:\n"
        "    try:\n        get_ipython  # in a kernel the region's process is the kernel's parent\n"
        "        target = os.getppid()\n"
        "    except NameError:  # no kernel: the notebook runs in the region's process itself\n"
        "        target = os.getpid()\n"
        "    os.kill(target, signal.SIGKILL)"))
    notebook = tmp_path / "misbehaving.ipynb"
    nbformat.write(nb, notebook)
    crash = tmp_path / "processed-crash"
    shutil.copytree(processed, crash)
    started = time.monotonic()
    executor = LocalExecutor(jobs=3)
    session = executor._server._proc.pid
    try:
        results = executor.run([_job(out, processed, "Gauteng", "gauteng-ok", notebook, timeout=15),
                                _job(out, processed, "Northern Cape", "nc-slow", notebook, timeout=15),
                                _job(out, crash, "Gauteng", "gauteng-crash", notebook, timeout=15)])
    finally:
        executor.close()
    ok, slow, crashed = results
    assert ok.status == "ok"
    assert slow.status == "failed" and "longer than the limit of 15 seconds" in slow.reason
    assert time.monotonic() - started < 300  # stopped, not slept out
    assert crashed.status == "failed" and "stopped unexpectedly" in crashed.reason
    for result in (slow, crashed):
        page = (out / result.path).read_text()
        assert "unavailable" in page and "Traceback" not in page
        assert "status: failed" in (out / "logs" / f"{result.slug}.log").read_text()
    assert "exit code -9" in (out / "logs" / "gauteng-crash.log").read_text()
    assert not list((out / "notebooks").glob(".*")), "scratch notebooks left behind"
    assert _session_processes(session) == []  # the kernels went with their regions


@pytest.mark.slow
def test_interruption_stops_every_process_of_the_batch(prepared, tmp_path):
    _, out, processed, _ = prepared
    nb = nbformat.read(render.REGIONAL_NOTEBOOK, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("import time\ntime.sleep(600)"))
    notebook = tmp_path / "sleepy.ipynb"
    nbformat.write(nb, notebook)
    executor = LocalExecutor(jobs=2)
    session = executor._server._proc.pid
    seen = []

    def interrupt_when_both_run(line: str) -> None:
        seen.append(line)
        if sum("rendering" in s for s in seen) == 2:
            time.sleep(1.0)  # let the kernels start
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.run([_job(out, processed, "Gauteng", "sleepy-1", notebook),
                      _job(out, processed, "Gauteng", "sleepy-2", notebook),
                      _job(out, processed, "Gauteng", "sleepy-3", notebook)], progress=interrupt_when_both_run)
    assert _session_processes(session) == []
    assert not (out / "regions" / "sleepy-3.html").exists()  # never started


@pytest.mark.slow
def test_sigterm_during_a_parallel_render_stops_promptly(tmp_path):
    from evalkit.simulate import simulate

    simulate(tmp_path / "data", seed=3, scale=0.3)
    marker = f"EVALKIT_TEST_{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", "run", "--data", str(tmp_path / "data"),
                             "--out", str(tmp_path / "out"), "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, marker: "1"})
    staged_notebooks = tmp_path / "out" / ".evalkit-staging" / "notebooks"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not staged_notebooks.exists():
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its regions were rendering"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    for leftover in ("index.html", ".evalkit-staging", ".evalkit.lock"):
        assert not (tmp_path / "out" / leftover).exists(), leftover
    time.sleep(0.5)
    assert _processes_with_marker(marker) == []  # no region, kernel or server outlives the run


@pytest.mark.slow
def test_dask_executor_gives_the_local_results(tmp_path):
    from distributed import LocalCluster

    from evalkit.pipeline import run
    from evalkit.simulate import simulate

    data = tmp_path / "data"
    simulate(data, seed=11, scale=0.3)
    regions = ["Gauteng", "Northern Cape", "Western Cape"]
    quiet = lambda _: None  # noqa: E731
    local = run(data, tmp_path / "local", regions=regions, jobs=2, progress=quiet)
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    try:
        with executors.DaskExecutor(cluster.scheduler_address) as dask_executor:
            dask = run(data, tmp_path / "dask", regions=regions, progress=quiet, executor=dask_executor)
    finally:
        cluster.close()
        executors._close_worker_server()
    assert (tmp_path / "dask" / "results" / "estimates.csv").read_bytes() == (
        tmp_path / "local" / "results" / "estimates.csv").read_bytes()
    statuses = lambda result: {r: (i["status"], i["render_status"]) for r, i in result.region_status.items()}  # noqa: E731
    assert statuses(dask) == statuses(local)
    assert statuses(local)["Northern Cape"] == ("not_estimable", "not_estimable")
    for region in regions:
        slug = local.region_status[region]["slug"]
        assert (tmp_path / "dask" / "regions" / f"{slug}.html").is_file()


@pytest.mark.slow
def test_thread_executor_for_platforms_without_a_safe_fork(prepared):
    """Off Linux the regions run in threads with ordinary kernels; same statuses, same pages."""
    _, out, processed, _ = prepared
    lines = []
    with executors.ThreadExecutor(jobs=2) as executor:
        results = executor.run([_job(out, processed, "Gauteng", "threaded-gp", render.REGIONAL_NOTEBOOK),
                                _job(out, processed, "Limpopo", "threaded-lp", render.REGIONAL_NOTEBOOK)],
                               progress=lines.append)
    assert [r.status for r in results] == ["ok", "failed"]  # Limpopo has no row in the results
    assert "no row for Limpopo" in results[1].reason
    assert sum("done" in line for line in lines) == 2
    assert "<h1>Gauteng</h1>" in (out / "regions" / "threaded-gp.html").read_text()


def test_a_code_change_on_a_worker_does_not_stop_regions_still_rendering(monkeypatch):
    """A Dask worker replaces its region server when evalkit's code changes; the old one finishes first."""
    from evalkit import outputs

    class FakeServer:
        made = []

        def __init__(self):
            self.busy, self.dead, self.closed = False, False, False
            FakeServer.made.append(self)

        def close(self):
            self.closed = True

        def run_one(self, job):
            return job

    code = {"version": "a"}
    monkeypatch.setattr(executors, "RegionServer", FakeServer)
    monkeypatch.setattr(executors, "_WORKER_SERVER", None)
    monkeypatch.setattr(executors, "_RETIRED", [])
    monkeypatch.setattr(outputs, "code_fingerprint", lambda: dict(code))
    first = executors._worker_server()
    first.busy = True  # another thread's region is rendering on it
    code["version"] = "b"
    second = executors._worker_server()
    assert second is not first and not first.closed and executors._RETIRED == [first]
    assert executors.render_on_worker("job") == "job" and not first.closed  # still busy
    first.busy = False
    executors.render_on_worker("job")
    assert first.closed and executors._RETIRED == [] and not second.closed
    executors._close_worker_server()
    assert second.closed
