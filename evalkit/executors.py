"""Where the regional reports are rendered: pre-warmed local processes, or a Dask cluster.

A notebook per region costs a kernel start, and a kernel that imports pandas,
matplotlib and evalkit costs more; both used to be paid once per region. Here
they are paid once per batch:

- A **region server** (one per :class:`LocalExecutor`, one per Dask worker
  process) starts while the data are being prepared, imports everything a
  report needs and fills the caches a report run fills (compiled HTML
  templates, the notebook's parameters, fonts). It then waits for work.
- Each region runs in a **process forked from the server**: it inherits the
  imports, forks its own kernel from itself (a real ipykernel, with the heavy
  modules already loaded, talking over IPC sockets in its own temporary folder:
  no TCP ports to collide on), executes the notebook with papermill, converts it
  to HTML and exits. The executed notebooks hold exactly what an ordinarily
  launched kernel produces. A kernel that fails to start is retried once with
  an ordinarily launched kernel. The local executor's region processes need no
  kernel at all: the notebook runs in the region's own process (``render``'s
  in-process papermill engine: the same outputs and page). Before forking a run's first
  region the server parses the tables every region reads once
  (``reporting.preload_shared``).
- Every region's process is its own process group. A region that runs past
  ``timeout`` seconds, or a batch that is interrupted (Ctrl-C, SIGTERM), has its
  processes killed; a stopped or crashed region gets the usual unavailable page
  and ``logs/<slug>.log``; the others are not affected.

:class:`DaskExecutor` submits one task per region to a Dask distributed cluster;
each task renders its region from the staged files the same way, through a
region server on the worker. Workers therefore need the same filesystem paths
as the machine that runs ``evalkit run`` (see ``docs/batch.md``).

Forking a process that has numpy and matplotlib loaded is only dependable on
Linux; elsewhere (macOS, Windows) the reports are rendered in threads of this
process, one ordinarily started kernel per region, as before.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from . import render as render_mod
from .errors import InputError

__all__ = [
    "DaskExecutor",
    "ForkedKernelManager",
    "LocalExecutor",
    "RegionJob",
    "RegionServer",
    "RenderProgress",
    "ThreadExecutor",
    "make_executor",
    "render_reports",
    "serve",
]

#: Modules every report run needs, imported once by the region server.
WARM_MODULES = (
    "numpy", "pandas", "pyarrow", "pyarrow.parquet", "pyarrow.dataset", "pandas.core.reshape.reshape",
    "pandas.core.arrays.arrow.extension_types", "scipy.stats", "matplotlib", "matplotlib.figure",
    "matplotlib.backends.backend_svg", "matplotlib_inline.backend_inline", "seaborn",
    "IPython", "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
    "jupyter_client", "nbformat", "nbclient", "papermill", "nbconvert", "evalkit.reporting",
)
#: Forked region servers are used where fork after importing numpy and matplotlib is safe.
CAN_FORK = sys.platform.startswith("linux")
#: Seconds the region server gets to exit by itself when the executor closes.
_STOP_GRACE = 0.5
_POLL = 0.2


# --------------------------------------------------------------------------- the job

@dataclasses.dataclass(frozen=True)
class RegionJob:
    """Everything a process needs to render one region from the staged files.

    Attributes
    ----------
    region, slug : str
        Canonical name and file-name form.
    output_dir, processed_dir : str
        Absolute paths of the (staged) output folder and the prepared data.
    notebook : str
        Absolute path of the notebook to execute.
    timeout : int
        Seconds the whole region may take (and each cell).
    """

    region: str
    slug: str
    output_dir: str
    processed_dir: str
    notebook: str
    timeout: int = 600

    def render_here(self, kernel_manager_class: type | None = None, *,
                    in_process_notebook: bool = False) -> "render_mod.RegionRender":
        """Render in the current process (the forked child, or a thread).

        ``in_process_notebook``: the region's notebook runs in this process without a
        kernel (the same cells, outputs and page as a kernel gives); only for a process of its
        own (the forked child), whose time limit the executor enforces by stopping the process.
        """
        return render_mod.render_region_report(
            self.region, self.slug, Path(self.output_dir), Path(self.processed_dir), timeout=self.timeout,
            notebook=Path(self.notebook), kernel_manager_class=kernel_manager_class,
            in_process_notebook=in_process_notebook)


def _timeout_reason(job: RegionJob) -> str:
    return (f"Building the report took longer than the limit of {job.timeout} seconds "
            "and was stopped.")


_CRASH_REASON = "The process building the report stopped unexpectedly (it may have run out of memory)."
_INTERRUPTED_REASON = "The run was interrupted before this report was built."


# --------------------------------------------------------------------------- forked kernels

class _ForkedProcess:
    """The small part of ``subprocess.Popen`` that jupyter_client uses, for a forked kernel."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None
        self._killed = False

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                # After SIGKILL the kernel is gone within milliseconds: wait for it
                # rather than let jupyter_client poll every 100 ms.
                pid, status = os.waitpid(self.pid, 0 if self._killed else os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            if signum == signal.SIGKILL:
                self._killed = True
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class _PendingKernel:
    """A child forked before any event loop or socket exists, waiting to become the kernel.

    Forking a process that already runs an asyncio loop or a ZeroMQ context is
    unsafe, and jupyter_client launches kernels from inside its loop; so the
    region's process forks this helper first, and the kernel manager later only
    sends it the kernel's command line, working folder and environment.
    """

    def __init__(self):
        read_fd, self._write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the future kernel
            os.close(self._write_fd)
            _become_kernel(read_fd)  # never returns
        os.close(read_fd)
        self.used = False

    def launch(self, argv: list[str], cwd: str | None, env: dict | None) -> _ForkedProcess:
        self.used = True
        payload = pickle.dumps((list(argv), str(cwd) if cwd else None, dict(env if env is not None else os.environ)))
        with os.fdopen(self._write_fd, "wb") as pipe:
            pipe.write(payload)
        return _ForkedProcess(self.pid)

    def discard(self) -> None:
        """Let an unused helper exit (it reads end-of-file) and reap it."""
        if self.used:
            return
        self.used = True
        os.close(self._write_fd)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _become_kernel(read_fd: int) -> None:
    """In the forked helper: wait for the launch request, then run an ipykernel in this process."""
    code = 1
    try:
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        os.close(read_fd)
        if not chunks:  # not needed after all
            os._exit(0)
        argv, cwd, env = pickle.loads(b"".join(chunks))
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        if cwd:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        # as ipykernel_launcher does: the working folder is not on sys.path while starting
        if sys.path and (sys.path[0] == "" or Path(sys.path[0]).resolve() == Path.cwd()):
            del sys.path[0]
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        # parent_handle defaults to $JPY_PARENT_PID read at import time (in the server), so set it:
        # the kernel exits by itself if the region's process dies.
        app.initialize(argv[argv.index("ipykernel_launcher") + 1:]
                       + [f"--IPKernelApp.parent_handle={os.getppid()}"])
        _enable_inline_backend()
        app.start()
        code = 0
    except BaseException:  # noqa: BLE001 - report and exit; the kernel manager sees the death
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _enable_inline_backend() -> None:
    """Hook matplotlib's inline backend into the shell, as importing it inside a kernel does."""
    module = sys.modules.get("matplotlib_inline.backend_inline")
    if module is not None and hasattr(module, "_enable_matplotlib_integration"):
        try:
            module._enable_matplotlib_integration()
        except Exception:  # noqa: BLE001 - only matters for pyplot figures, which reports do not use
            pass


_PENDING: _PendingKernel | None = None
#: True in a region's process forked from the server (single-threaded, no event loop yet).
_IN_REGION_PROCESS = False


class _ReadyClient(AsyncKernelClient):
    """jupyter_client's client, minus a fixed 0.2 s wait at every kernel start.

    ``wait_for_ready`` asks for kernel_info until the reply comes and IOPub has
    delivered a message (so the subscription is live), as jupyter_client does; it
    then skips jupyter_client's final "drain IOPub until 0.2 s of silence": nbclient
    ignores every IOPub message that does not answer its own execute requests.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        from queue import Empty

        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)
                except Empty:
                    pass  # IOPub not subscribed yet: ask again
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")


class ForkedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is the pre-forked helper of this process.

    Everything else (connection file, IPC sockets, messages, shutdown) is
    jupyter_client's own. When no helper is waiting, or the kernel spec is not
    this Python's ipykernel, the kernel is launched ordinarily.
    """

    @default("client_factory")
    def _client_factory_default(self) -> type:
        return _ReadyClient

    @classmethod
    def prepare(cls) -> None:
        """Fork the kernel-to-be now (render calls this before papermill starts its event loop).

        Only regions that start a kernel pay for the fork: a region rendered without
        one (not estimable) never calls this.
        """
        global _PENDING
        if _PENDING is None and _IN_REGION_PROCESS:
            _PENDING = _PendingKernel()

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        global _PENDING
        pending, _PENDING = _PENDING, None
        is_this_python = (len(kernel_cmd) > 2 and kernel_cmd[1:3] == ["-m", "ipykernel_launcher"]
                          and os.path.realpath(kernel_cmd[0]) == os.path.realpath(sys.executable))
        if pending is None or not is_this_python:
            if pending is not None:
                pending.discard()
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        provisioner = self.provisioner
        provisioner.process = pending.launch(kernel_cmd, kw.get("cwd"), kw.get("env"))
        provisioner.pid = pending.pid
        # No process group of its own: the kernel shares the region's group, so stopping
        # the region stops its kernel; signals from jupyter_client go to the kernel only.
        provisioner.pgid = None
        provisioner.cwd = kw.get("cwd")
        self._reconcile_connection_info(provisioner.connection_info)


# --------------------------------------------------------------------------- the region server

def _warm_up() -> float:
    """Import and initialise everything a region's run needs; returns the seconds it took."""
    started = time.perf_counter()
    # What an ordinarily launched kernel has in its environment when it imports matplotlib.
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional module only costs speed
            print(f"evalkit region server: could not pre-import {name}", file=sys.stderr)
    try:
        render_mod.warm_up()
        _warm_figures()
    except Exception:  # noqa: BLE001 - warm-up is an optimisation, never a failure
        traceback.print_exc()
    return time.perf_counter() - started


def _warm_figures() -> None:
    """Draw the kinds of chart the reports draw once, on figures that are thrown away.

    Loads the fonts at the reports' sizes, seaborn's categorical plotting and the
    SVG writer, so that no region pays for them. Only libraries are touched:
    evalkit's own report functions are never called here.
    """
    import io
    import warnings

    import matplotlib
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    from . import reporting

    frame = pd.DataFrame({"Wave": ["Baseline", "Endline"] * 8, "arm": ["Partnered"] * 8 + ["Comparison"] * 8,
                          "elom_total": [float(i % 7 + 40) for i in range(16)]})
    with matplotlib.rc_context(dict(reporting._FIGURE_RC)):
        fig = Figure(figsize=(4.6, 3.0), layout="constrained")
        ax, ax2 = fig.subplots(1, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sns.boxplot(data=frame, x="Wave", y="elom_total", hue="arm", hue_order=["Partnered", "Comparison"],
                        palette=reporting.PALETTE, saturation=1, showfliers=False, whis=(5, 95), width=0.6,
                        ax=ax)
        ax.legend(title=None, frameon=False, loc="upper left")
        ax.set_ylabel("ELOM total (0–100)")
        ax2.barh(["a", "b"], [40.0, 60.0], color=list(reporting.PALETTE.values()))
        ax2.plot([0, 1, 2], [1, 3, 2], marker="o")
        ax2.annotate("50%", (1, 2))
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "evalkit"}):
            fig.savefig(io.BytesIO(), format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})


def serve() -> None:
    """Main loop of the region server process (started by :class:`RegionServer`).

    Reads one JSON request per line on standard input (``{"id": n, "job": {...}}``),
    forks a process per request and answers on the original standard output with
    ``{"id": n, "pid": p}`` and later ``{"id": n, "exit": code}``. End of input
    ends the server (and kills any region still running: its client is gone).
    """
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    os.close(devnull)
    out = os.fdopen(proto_out, "w", buffering=1)

    def send(message: dict) -> None:
        try:
            out.write(json.dumps(message) + "\n")
        except (BrokenPipeError, ValueError):
            pass

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle
    seconds = _warm_up()
    # Keep the collector off the inherited objects: a forked region then copies fewer pages.
    gc.collect()
    gc.freeze()
    send({"ready": True, "warm_seconds": round(seconds, 3)})

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    buffer, open_input = b"", True
    while open_input or children:
        readers = [wake_r] + ([proto_in] if open_input else [])
        ready, _, _ = select.select(readers, [], [], 1.0)
        if wake_r in ready:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                break
            send({"id": children.pop(pid), "exit": os.waitstatus_to_exitcode(status)})
        if proto_in in ready:
            data = os.read(proto_in, 1 << 16)
            if not data:
                open_input = False
                for pid in list(children):  # the client is gone: nobody will collect these
                    _kill_group(pid, signal.SIGKILL)
                continue
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    request = json.loads(line)
                    # The run's shared tables are parsed here once (a stat per file afterwards), so
                    # that every region forked from now on starts with them; frozen like the rest.
                    render_mod.preload(request["job"]["output_dir"])
                    gc.freeze()
                    pid = _fork_region(request["job"], close=(proto_in, proto_out, wake_r, wake_w))
                    children[pid] = request["id"]
                    send({"id": request["id"], "pid": pid})
    os._exit(0)


def _fork_region(job: dict, close: Iterable[int]) -> int:
    pid = os.fork()
    if pid:
        try:
            os.setpgid(pid, pid)  # also done in the child: whichever runs first wins the race
        except OSError:
            pass
        return pid
    code = 1
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for fd in close:
            os.close(fd)
        log = os.open(job["stderr_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        code = _render_in_child(job)
    except BaseException:  # noqa: BLE001 - the parent sees the exit code and writes the page
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _render_in_child(job: dict) -> int:
    global _PENDING, _IN_REGION_PROCESS
    spec = RegionJob(**{f.name: job[f.name] for f in dataclasses.fields(RegionJob)})
    _IN_REGION_PROCESS = True
    _PENDING = None  # forked by ForkedKernelManager.prepare() when the region needs a kernel
    try:
        result = spec.render_here(kernel_manager_class=ForkedKernelManager, in_process_notebook=True)
    finally:
        if _PENDING is not None:
            _PENDING.discard()
            _PENDING = None
    tmp = job["result_path"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(dataclasses.asdict(result), fh)
    os.replace(tmp, job["result_path"])
    return 0


def _kill_group(pgid: int, signum: int) -> None:
    """Signal a whole process group (a region and its kernel); gone already is fine.

    Never falls back to the single pid: once the group is empty that pid may
    belong to an unrelated process.
    """
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


@dataclasses.dataclass
class _Task:
    job: RegionJob
    id: int
    result_path: str
    stderr_path: str
    pid: int | None = None
    started: float | None = None
    exit_code: int | None = None
    stopped_for: str = ""  # "timeout" / "interrupted" when this side killed it


class RegionServer:
    """Client of one region server process: submit regions, watch them, stop them.

    Thread-safe; one server can run several regions at once (it forks one
    process per region and never waits for them itself).
    """

    def __init__(self):
        self._scratch = tempfile.mkdtemp(prefix="evalkit-render-")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from evalkit.executors import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            start_new_session=True)  # Ctrl-C in a terminal reaches only evalkit, which stops the rest
        self._lock = threading.Condition()
        self._tasks: dict[int, _Task] = {}
        self._next_id = 0
        self.warm_seconds: float | None = None
        self.dead = False
        self._reader = threading.Thread(target=self._read, name="evalkit-region-server", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if message.get("ready"):
                    self.warm_seconds = message.get("warm_seconds")
                task = self._tasks.get(message.get("id"))
                if task is not None and "pid" in message:
                    task.pid, task.started = message["pid"], time.monotonic()
                    if task.stopped_for:  # stopped before it was even started
                        _kill_group(task.pid, signal.SIGKILL)
                if task is not None and "exit" in message:
                    task.exit_code = message["exit"]
                self._lock.notify_all()
        with self._lock:
            self.dead = True
            for task in self._tasks.values():  # orphans would go on writing into the output
                if task.pid and task.exit_code is None:
                    _kill_group(task.pid, signal.SIGKILL)
            self._lock.notify_all()

    def submit(self, job: RegionJob) -> _Task:
        """Ask the server to fork a process for ``job``; returns at once."""
        with self._lock:
            self._next_id += 1
            task = _Task(job=job, id=self._next_id,
                         result_path=os.path.join(self._scratch, f"{self._next_id}.json"),
                         stderr_path=os.path.join(self._scratch, f"{self._next_id}.stderr"))
            self._tasks[task.id] = task
            request = {"id": task.id, "job": {**dataclasses.asdict(job), "result_path": task.result_path,
                                              "stderr_path": task.stderr_path}}
            try:
                self._proc.stdin.write((json.dumps(request) + "\n").encode())
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                self.dead = True
        return task

    def wait(self, timeout: float) -> None:
        """Sleep until something happens to any task, or ``timeout`` seconds."""
        with self._lock:
            self._lock.wait(timeout)

    def stop(self, task: _Task, why: str) -> None:
        """Kill a task's processes (region and kernel); ``why`` is "timeout" or "interrupted"."""
        with self._lock:
            if task.exit_code is not None:
                return
            task.stopped_for = why
            pid = task.pid
        if pid:
            _kill_group(pid, signal.SIGKILL)

    def stop_all(self, which: Callable[[RegionJob], bool]) -> int:
        """Stop every running task whose job ``which`` selects; returns how many."""
        with self._lock:
            chosen = [t for t in self._tasks.values() if t.exit_code is None and which(t.job)]
        for task in chosen:
            self.stop(task, "interrupted")
        return len(chosen)

    @property
    def busy(self) -> bool:
        """True while a region submitted here has not been collected."""
        with self._lock:
            return bool(self._tasks)

    def finished(self, task: _Task) -> bool:
        with self._lock:
            return task.exit_code is not None or (self.dead and task.exit_code is None)

    def collect(self, task: _Task) -> "render_mod.RegionRender":
        """The task's result; for a stopped or crashed task, its unavailable page and log."""
        with self._lock:
            self._tasks.pop(task.id, None)
        if task.pid and (task.exit_code != 0 or task.stopped_for):
            # The region's process died or was stopped: its kernel (same group) would otherwise
            # linger until it notices. A region that ended normally has shut its kernel down.
            _kill_group(task.pid, signal.SIGKILL)
        job = task.job
        seconds = time.monotonic() - task.started if task.started else 0.0
        output = _read_text(task.stderr_path)
        try:
            with open(task.result_path, encoding="utf-8") as fh:
                result = render_mod.RegionRender(**json.load(fh))
        except (OSError, ValueError, TypeError):
            result = None
        for path in (task.result_path, task.stderr_path):
            try:
                os.unlink(path)
            except OSError:
                pass
        if result is not None:
            if output.strip():
                _append_log(job, "process output:\n" + output)
            return result
        _keep_partial_notebook(job)
        if task.stopped_for == "timeout":
            reason, detail = _timeout_reason(job), f"stopped after {seconds:.1f} s"
        elif task.stopped_for == "interrupted":
            reason, detail = _INTERRUPTED_REASON, "the batch was interrupted"
        else:
            reason = _CRASH_REASON
            detail = (f"the region's process ended with exit code {task.exit_code}" if task.exit_code is not None
                      else "the region server stopped")
        return render_mod.record_failure(job.region, job.slug, Path(job.output_dir), reason, detail=detail,
                                         tb=output, seconds=seconds)

    def run_one(self, job: RegionJob) -> "render_mod.RegionRender":
        """Render one region and wait for it (the Dask task's body)."""
        task = self.submit(job)
        try:
            while not self.finished(task):
                self.wait(_POLL)
                if task.started and time.monotonic() - task.started > job.timeout:
                    self.stop(task, "timeout")
        except BaseException:
            self.stop(task, "interrupted")
            raise
        return self.collect(task)

    def close(self) -> None:
        """Stop the server and every region it still runs; remove the scratch folder."""
        with self._lock:
            running = [t for t in self._tasks.values() if t.exit_code is None]
        for task in running:
            self.stop(task, "interrupted")
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            # A server still warming up reads its input only afterwards: no point waiting for it.
            self._proc.wait(timeout=_STOP_GRACE if self.warm_seconds is not None else 0.01)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


def _read_text(path: str, limit: int = 200_000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return ""


def _append_log(job: RegionJob, text: str) -> None:
    log = Path(job.output_dir) / "logs" / f"{job.slug}.log"
    try:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(text.rstrip("\n") + "\n")
    except OSError:
        pass


def _keep_partial_notebook(job: RegionJob) -> None:
    """A killed region leaves its scratch notebook: keep the newest as notebooks/<slug>.ipynb."""
    folder = Path(job.output_dir) / "notebooks"
    scratch = sorted(folder.glob(f".{job.slug}.*.ipynb"), key=lambda p: p.stat().st_mtime_ns)
    if scratch:
        scratch[-1].replace(folder / f"{job.slug}.ipynb")
        for path in scratch[:-1]:
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- progress

_STATUS_WORDS = {"ok": "ok", "not_estimable": "not estimable", "failed": "FAILED"}


class RenderProgress:
    """Per-region status, elapsed time and an estimate of the time left.

    With ``live`` a table redrawn in place (rich) on a terminal; otherwise plain
    lines through ``emit``, one when a region starts and one when it ends, as CI
    logs want them. ``regions`` maps each slug to the name shown.
    """

    def __init__(self, regions: dict[str, str], *, emit: Callable[[str], None] | None = None,
                 live: bool = False, workers: int = 1):
        self.emit = emit
        self.names = dict(regions)
        self.total = len(self.names)
        self.workers = max(1, workers)
        self.started_at = time.monotonic()
        self.state = {slug: ("queued", None, None) for slug in self.names}  # status, started, seconds
        self.done = 0
        self._live = None
        if live and emit is not None:
            try:
                from rich.live import Live

                self._live = Live(self._table(), refresh_per_second=4, transient=False)
                self._live.start()
            except Exception:  # noqa: BLE001 - no rich, no live table: plain lines
                self._live = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def eta(self) -> float | None:
        """Seconds left: the mean time of a finished region × the regions left ÷ the workers."""
        times = [seconds for _, _, seconds in self.state.values() if seconds is not None]
        if not times:
            return None
        return sum(times) / len(times) * (self.total - self.done) / self.workers

    def _summary(self) -> str:
        eta = self.eta()
        left = "" if eta is None else f", about {eta:.0f} s left"
        return f"{self.done}/{self.total} done, {self.elapsed():.0f} s elapsed{left}"

    def _table(self):
        from rich.table import Table

        table = Table(title="Rendering regional reports", caption=self._summary(), expand=False)
        table.add_column("Region")
        table.add_column("Status")
        table.add_column("Seconds", justify="right")
        now = time.monotonic()
        for slug, (status, started, seconds) in self.state.items():
            shown = seconds if seconds is not None else (now - started if started else None)
            table.add_row(self.names[slug], status, "" if shown is None else f"{shown:.1f}")
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._table())

    def is_queued(self, slug: str) -> bool:
        return self.state[slug][0] == "queued"

    def started(self, slug: str) -> None:
        self.state[slug] = ("rendering", time.monotonic(), None)
        if self._live is None and self.emit is not None:
            self.emit(f"  {self.names[slug]}: rendering")
        self._refresh()

    def finished(self, result: "render_mod.RegionRender") -> None:
        self.done += 1
        word = _STATUS_WORDS.get(result.status, result.status)
        self.state[result.slug] = (word, None, result.seconds)
        if self._live is None and self.emit is not None:
            self.emit(f"  {result.region}: {word} in {result.seconds:.1f} s ({self._summary()})")
        self._refresh()

    def tick(self) -> None:
        self._refresh()

    def close(self) -> None:
        """End the display; in plain mode, one summary line when every region finished."""
        if self._live is not None:
            self._refresh()
            self._live.stop()
            self._live = None
        elif self.emit is not None and self.total and self.done == self.total:
            words = [word for word, _, _ in self.state.values()]
            counts = ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words))
            self.emit(f"Rendered {self.total} report(s) in {self.elapsed():.1f} s ({counts}).")


def _progress_for(jobs: list[RegionJob], emit: Callable[[str], None] | None, workers: int) -> RenderProgress:
    live = emit is print and sys.stdout.isatty()
    return RenderProgress({job.slug: job.region for job in jobs}, emit=emit, live=live, workers=workers)


# --------------------------------------------------------------------------- executors

class _Executor:
    """Common interface: ``run(jobs, progress=...)`` and use as a context manager."""

    def run(self, jobs: list[RegionJob], *, progress: Callable[[str], None] | None = None
            ) -> list["render_mod.RegionRender"]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(_Executor):
    """At most ``jobs`` regions at once, each in a process forked from a pre-warmed server.

    The server process starts when the executor is made, so it warms up while
    the data are prepared; :meth:`close` stops it.
    """

    def __init__(self, jobs: int | None = None):
        self.jobs = max(1, int(jobs or os.cpu_count() or 1))
        self._server: RegionServer | None = None
        self.start()

    def start(self) -> None:
        if self._server is None or self._server.dead:
            self._server = RegionServer()

    @property
    def warm_seconds(self) -> float | None:
        return self._server.warm_seconds if self._server else None

    def run(self, jobs: list[RegionJob], *, progress: Callable[[str], None] | None = None
            ) -> list["render_mod.RegionRender"]:
        self.start()
        server = self._server
        display = _progress_for(jobs, progress, self.jobs)
        queue, running, results = deque(jobs), [], {}
        try:
            while queue or running:
                while queue and len(running) < self.jobs and not server.dead:
                    running.append(server.submit(queue.popleft()))
                server.wait(_POLL)
                for task in list(running):
                    if task.started and display.is_queued(task.job.slug):
                        display.started(task.job.slug)
                    if server.finished(task):
                        running.remove(task)
                        results[task.job.slug] = result = server.collect(task)
                        display.finished(result)
                    elif task.started and time.monotonic() - task.started > task.job.timeout:
                        server.stop(task, "timeout")
                if server.dead and queue:  # the server itself died: nothing more can start
                    while queue:
                        job = queue.popleft()
                        results[job.slug] = result = render_mod.record_failure(
                            job.region, job.slug, Path(job.output_dir), _CRASH_REASON,
                            detail="the region server stopped before this region started")
                        display.finished(result)
                display.tick()
        except BaseException:
            for task in running:
                server.stop(task, "interrupted")
            self.close()
            raise
        finally:
            display.close()
        return [results[job.slug] for job in jobs]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


class ThreadExecutor(_Executor):
    """Regions in threads of this process, one ordinary kernel each (platforms without fork)."""

    def __init__(self, jobs: int | None = None):
        self.jobs = max(1, int(jobs or os.cpu_count() or 1))

    def run(self, jobs: list[RegionJob], *, progress: Callable[[str], None] | None = None
            ) -> list["render_mod.RegionRender"]:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        display = _progress_for(jobs, progress, self.jobs)
        results = {}
        try:
            with ThreadPoolExecutor(max_workers=min(self.jobs, len(jobs)),
                                    thread_name_prefix="evalkit-render") as pool:
                futures = {pool.submit(job.render_here): job for job in jobs}
                for job in jobs[: self.jobs]:
                    display.started(job.slug)
                for future in as_completed(futures):
                    results[futures[future].slug] = result = future.result()
                    display.finished(result)
        finally:
            display.close()
        return [results[job.slug] for job in jobs]


_WORKER_SERVER: tuple[RegionServer, str] | None = None
#: Replaced servers that still render regions: closed once their last region is collected.
_RETIRED: list[RegionServer] = []
_WORKER_LOCK = threading.Lock()


def _worker_server() -> RegionServer:
    """The region server of this (Dask worker) process, started on first use.

    A worker outlives runs, so its server is replaced when evalkit's code,
    notebooks or templates on disk are no longer what it imported.
    """
    from .outputs import code_fingerprint, hash_json

    global _WORKER_SERVER
    fingerprint = hash_json(code_fingerprint())
    with _WORKER_LOCK:
        if _WORKER_SERVER is not None and (_WORKER_SERVER[0].dead or _WORKER_SERVER[1] != fingerprint):
            # Regions other threads of this worker still render on it are left to finish.
            _RETIRED.append(_WORKER_SERVER[0])
            _WORKER_SERVER = None
            _close_idle_retired()
        if _WORKER_SERVER is None:
            _WORKER_SERVER = (RegionServer(), fingerprint)
        return _WORKER_SERVER[0]


def _close_idle_retired() -> None:
    """Close the replaced servers that render nothing any more (call with ``_WORKER_LOCK`` held)."""
    for server in [server for server in _RETIRED if server.dead or not server.busy]:
        _RETIRED.remove(server)
        server.close()


def _warm_worker() -> None:
    """Start this worker's region server now, so that it is warm when the first region comes."""
    _worker_server()


def _stop_worker_regions(output_dir: str) -> int:
    """Stop this worker's regions that write into ``output_dir`` (the run was interrupted)."""
    with _WORKER_LOCK:
        servers = ([_WORKER_SERVER[0]] if _WORKER_SERVER is not None else []) + list(_RETIRED)
    return sum(server.stop_all(lambda job: job.output_dir == output_dir) for server in servers)


def _close_worker_server() -> None:
    global _WORKER_SERVER
    with _WORKER_LOCK:
        if _WORKER_SERVER is not None:
            _WORKER_SERVER[0].close()
            _WORKER_SERVER = None
        while _RETIRED:
            _RETIRED.pop().close()


def render_on_worker(job: RegionJob) -> "render_mod.RegionRender":
    """The Dask task: render one region through this worker's region server."""
    if not CAN_FORK:
        return job.render_here()
    try:
        return _worker_server().run_one(job)
    finally:
        with _WORKER_LOCK:
            _close_idle_retired()


class DaskExecutor(_Executor):
    """One Dask task per region on a distributed cluster.

    Parameters
    ----------
    scheduler : str, optional
        Scheduler address (``tcp://host:8786``). With one, the executor connects at
        once and asks every worker to start its region server, so the workers
        warm up while the data are prepared. Without one, a local cluster of
        ``jobs`` threads is started when the first region is submitted (handy
        for trying the executor).
    jobs : int
        Threads of the local cluster (ignored with a scheduler).
    """

    def __init__(self, scheduler: str | None = None, jobs: int | None = None, *,
                 connect_timeout: float = 10.0):
        self.scheduler = scheduler
        self.jobs = max(1, int(jobs or os.cpu_count() or 1))
        self.connect_timeout = connect_timeout
        self._client = None
        self._cluster = None
        if scheduler:
            self._connect().run(_warm_worker)  # returns once each server has been started

    def _connect(self):
        from distributed import Client, LocalCluster

        if self._client is None:
            if self.scheduler:
                try:
                    self._client = Client(self.scheduler, set_as_default=False, timeout=self.connect_timeout)
                except (OSError, TimeoutError, ValueError) as exc:
                    raise InputError("--scheduler", f"could not connect to the Dask scheduler at "
                                                    f"{self.scheduler} ({type(exc).__name__})") from exc
            else:
                self._cluster = LocalCluster(n_workers=1, threads_per_worker=self.jobs, processes=False,
                                             dashboard_address=None)
                self._client = Client(self._cluster, set_as_default=False)
        return self._client

    def run(self, jobs: list[RegionJob], *, progress: Callable[[str], None] | None = None
            ) -> list["render_mod.RegionRender"]:
        client = self._connect()
        display = _progress_for(jobs, progress, self.jobs)
        token = f"{os.getpid()}-{time.monotonic_ns()}"
        futures = {client.submit(render_on_worker, job, key=f"evalkit-render-{job.slug}-{token}", pure=False,
                                 retries=0): job for job in jobs}
        results = {}
        try:
            for job in jobs:
                display.started(job.slug)  # queued on the cluster; Dask decides when each starts
            pending = list(futures)
            while pending:
                time.sleep(_POLL)  # polling keeps Ctrl-C and SIGTERM prompt
                for future in [f for f in pending if f.done()]:
                    pending.remove(future)
                    job = futures[future]
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001 - a lost worker fails its region only
                        result = render_mod.record_failure(
                            job.region, job.slug, Path(job.output_dir), _CRASH_REASON,
                            detail=f"the Dask task failed: {type(exc).__name__}: {exc}",
                            tb="".join(traceback.format_exception(exc)))
                    results[job.slug] = result
                    display.finished(result)
                display.tick()
        except BaseException:
            # Queued regions are cancelled; running ones are stopped on their workers, so that
            # none writes into the staging folder the interrupted run is about to discard.
            client.cancel(list(futures))
            try:
                client.run(_stop_worker_regions, jobs[0].output_dir)
            except Exception:  # noqa: BLE001 - best effort while interrupted
                pass
            raise
        finally:
            display.close()
        return [results[job.slug] for job in jobs]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
            _close_worker_server()  # the local cluster's workers were threads of this process


def make_executor(kind: str = "local", *, jobs: int | None = None, scheduler: str | None = None) -> _Executor:
    """An executor by name: ``"local"`` (default), ``"dask"``, or ``"none"`` (renders nothing).

    ``"local"`` starts its region server at once (so it warms up while the data
    are prepared); off Linux it is a :class:`ThreadExecutor`.
    Use it as a context manager, or call ``close()``.
    """
    if kind == "none":  # nothing will be rendered (``--no-reports``): start nothing
        return _Executor()
    if kind == "local":
        return LocalExecutor(jobs) if CAN_FORK else ThreadExecutor(jobs)
    if kind == "dask":
        return DaskExecutor(scheduler, jobs)
    raise ValueError(f"unknown executor {kind!r}: use 'local' or 'dask'")


# --------------------------------------------------------------------------- a batch of regions

def render_reports(regions: list[tuple[str, str]], output_dir: Path, processed_dir: Path, *,
                   jobs: int = 1, timeout: int = 600, executor: "str | _Executor" = "local",
                   scheduler: str | None = None, progress: Callable[[str], None] | None = None,
                   notebook: Path | str | None = None) -> list["render_mod.RegionRender"]:
    """Render every ``(region, slug)``, at most ``jobs`` at once, each in its own process.

    Parameters
    ----------
    regions : list of (region, slug)
        What to render; slugs must be unique and file-name safe.
    output_dir, processed_dir : Path
        The (staged) output folder and the folder holding the prepared child data.
    jobs : int
        Regions rendered at once by the local executor.
    timeout : int
        Seconds one region's report may take in all (its process is stopped after
        that and the region gets an unavailable page); also each cell's limit.
    executor : {"local", "dask"} or an executor object
        An object made by :func:`make_executor` is used as it is (and not closed).
    scheduler : str, optional
        Dask scheduler address for ``executor="dask"`` (default: a local cluster).
    progress : callable, optional
        Receives one line per region started and finished (status, elapsed, ETA);
        when it is ``print`` and standard output is a terminal, a live table is
        drawn instead.
    notebook : path, optional
        The notebook every region executes (default ``render.REGIONAL_NOTEBOOK``).

    Returns
    -------
    list of RegionRender
        One per region, in the order given. A failed region never stops the others.
    """
    regions = [(str(region), str(slug)) for region, slug in regions]
    slugs = [slug for _, slug in regions]
    for slug in slugs:
        render_mod._check_slug(slug)
    duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
    if duplicates:
        raise ValueError(f"two regions share the file name(s) {', '.join(duplicates)}")
    if not regions:
        return []
    output_dir = Path(output_dir).expanduser().resolve()
    processed_dir = Path(processed_dir).expanduser().resolve()
    notebook = Path(notebook if notebook is not None else render_mod.REGIONAL_NOTEBOOK)
    work = [RegionJob(region=region, slug=slug, output_dir=str(output_dir), processed_dir=str(processed_dir),
                      notebook=str(notebook), timeout=int(timeout))
            for region, slug in regions]
    work = _longest_first(work, output_dir)
    if isinstance(executor, str):
        with make_executor(executor, jobs=jobs, scheduler=scheduler) as runner:
            done = runner.run(work, progress=progress)
    else:
        done = executor.run(work, progress=progress)
    by_slug = {result.slug: result for result in done}
    return [by_slug[slug] for slug in slugs]


def _longest_first(work: list[RegionJob], output_dir: Path) -> list[RegionJob]:
    """Regions with an estimate first, those that are not estimable (a shorter report) last.

    With more regions than workers, the short reports then fill the end of the batch,
    when some workers would otherwise wait for the last long one. The order is otherwise
    kept; results are returned in the caller's order whatever the order of work.
    """
    import pandas as pd

    from . import reporting

    try:
        estimates = pd.read_csv(output_dir / "results" / "estimates.csv")
        if "region" not in estimates:
            return work
        estimated = {job.slug: render_mod._status_of(reporting.primary_row(estimates, job.region))[0] == "ok"
                     for job in work}
    except Exception:  # noqa: BLE001 - only an ordering hint; each region reports its own problem
        return work
    return sorted(work, key=lambda job: not estimated[job.slug])
