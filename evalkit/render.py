"""Execute the regional notebook per region and convert it to a self-contained HTML report.

One region = one papermill run of the regional notebook (the study's own copy, else the package's) into
``<output_dir>/notebooks/<slug>.ipynb``, then nbconvert with the
``templates/evalkit_report`` template into ``<output_dir>/regions/<slug>.html``.
A region that fails gets a plain "unavailable" page (the traceback goes to
``<output_dir>/logs/<slug>.log``) and the batch goes on.

How the regions are spread over processes is :mod:`evalkit.executors`' job:
by default a few pre-warmed worker processes on this machine, each region in
its own forked process with its own kernel, or a Dask cluster. This module does
one region at a time. Each kernel talks over IPC sockets in its own temporary
folder (no TCP port races), a kernel that fails to start is retried once with a
freshly launched kernel, and every cell has a time limit.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import pandas as pd

from . import reporting
from .config import NATIONAL
from .study import REPORT_TEMPLATE, package_notebook, package_templates_dir

__all__ = ["RegionRender", "preload", "record_failure", "render_region_report", "warm_up", "write_index"]

Status = Literal["ok", "not_estimable", "failed"]

#: Cell tags whose cells never reach the HTML (also listed in the template's conf.json).
REMOVED_CELL_TAGS = ("parameters", "injected-parameters", "remove-cell")
KERNEL_NAME = "python3"
#: The package's regional report notebook and templates (a study may use its own notebook).
REGIONAL_NOTEBOOK = package_notebook()
TEMPLATES = package_templates_dir()
KERNEL_START_TIMEOUT = 60
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: src/href/action (or CSS url()/@import) pointing at another host: the report must work offline.
_NETWORK_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|action|poster|srcset)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])\s*"""
    r"""(?:https?:)?//""", re.IGNORECASE)
#: :data:`_NETWORK_REFERENCE` spelt backwards, to test only where a match could end (at a ``//``).
_NETWORK_REFERENCE_BACKWARDS = re.compile(
    r"""//(?::s?ptth)?\s*(?:["']?\s*=\s*(?:crs|ferh|noitca|retsop|tescrs)\b|["']?\s*\(lru|["']\s+tropmi@)""",
    re.IGNORECASE)


def _network_reference(page: str) -> re.Match | None:
    """The first network reference in ``page`` (:data:`_NETWORK_REFERENCE`), or None.

    The same answer as searching the whole page, many times faster on a report (the
    pattern's alternatives make a plain search try every position of a few hundred
    kilobytes): every match ends with ``//``, so the backwards pattern is tried only at
    the few places where ``//`` occurs, and the page is searched in full only when one
    of them is a match, to report the same text.
    """
    backwards = page[::-1]
    at = page.find("//")
    while at >= 0:
        if _NETWORK_REFERENCE_BACKWARDS.match(backwards, len(page) - at - 2):
            return _NETWORK_REFERENCE.search(page)
        at = page.find("//", at + 1)
    return None


@dataclass(frozen=True)
class RegionRender:
    """What happened to one region's report.

    Attributes
    ----------
    region, slug : str
        Canonical name and file-name form.
    status : {"ok", "not_estimable", "failed"}
        "failed" means the report could not be built; an unavailable page was written.
    path : str
        The HTML page relative to the output folder (``regions/<slug>.html``).
    reason : str
        Plain-language reason for "not_estimable" and "failed"; empty for "ok".
    seconds : float
        Wall time to execute and convert.
    """

    region: str
    slug: str
    status: Status
    path: str
    reason: str
    seconds: float


class _RenderError(Exception):
    """A failure with a plain-language reason for the unavailable page."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------- validation

def _check_slug(slug: str) -> None:
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise ValueError(f"invalid region slug {slug!r}: use lower-case letters, digits and hyphens")


_PARAMETERS_CACHE: dict[tuple[str, int, int], frozenset[str]] = {}


def _notebook_parameters(notebook: Path | None = None) -> set[str]:
    """The parameters a notebook declares; remembered while the file is unchanged."""
    import papermill as pm

    notebook = Path(notebook or REGIONAL_NOTEBOOK)
    stat = notebook.stat()
    key = (str(notebook), stat.st_mtime_ns, stat.st_size)
    if key not in _PARAMETERS_CACHE:
        _PARAMETERS_CACHE[key] = frozenset(pm.inspect_notebook(str(notebook)))
    return set(_PARAMETERS_CACHE[key])


def _validate(region: str, output_dir: Path, processed_dir: Path,
              notebook: Path | None = None) -> pd.Series | None:
    """Check everything a kernel would need; return the primary row (or None)."""
    notebook = Path(notebook or REGIONAL_NOTEBOOK)
    if not isinstance(region, str) or not region.strip() or "\n" in region:
        raise _RenderError("The region name is empty or not valid.")
    if not notebook.is_file():
        raise _RenderError("The report notebook is missing from this installation of evalkit.",
                           f"not found: {notebook}")
    declared = _notebook_parameters(notebook)
    if not {"region", "output_dir", "processed_dir"} <= declared:
        raise _RenderError("The report notebook does not take the expected parameters.",
                           f"{notebook} declares {sorted(declared)}")
    if not (TEMPLATES / REPORT_TEMPLATE / "index.html.j2").is_file():
        raise _RenderError("The report template is missing from this installation of evalkit.",
                           f"not found: {TEMPLATES / REPORT_TEMPLATE}")
    estimates_path = output_dir / "results" / "estimates.csv"
    if not estimates_path.is_file():
        raise _RenderError("The results table (results/estimates.csv) was not found, so there was "
                           "nothing to report.", f"not found: {estimates_path}")
    if not processed_dir.is_dir():
        raise _RenderError("The folder with the prepared child data was not found.",
                           f"not a folder: {processed_dir}")
    outcomes = processed_dir / "child_outcomes.parquet"
    if not outcomes.is_file():
        raise _RenderError("The prepared child data (child_outcomes.parquet) was not found.",
                           f"not found: {outcomes}")
    try:
        estimates = reporting.read_shared_csv(estimates_path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same plain reason
        raise _RenderError("The results table (results/estimates.csv) could not be read.",
                           f"{type(exc).__name__}: {exc}") from exc
    if "region" not in estimates or not (estimates["region"].astype(str) == region).any():
        raise _RenderError(f"The results table has no row for {region}, so there was nothing to report.",
                           f"region {region!r} not in {estimates_path}")
    return reporting.primary_row(estimates, region)


def _status_of(row: pd.Series | None) -> tuple[Status, str]:
    if row is None:
        return "not_estimable", "the results hold no primary estimate (ELOM total, ANCOVA, CR1)"
    if str(row.get("status")) == "ok":
        return "ok", ""
    note = row.get("note")
    return "not_estimable", note.strip() if isinstance(note, str) and note.strip() else "no reason recorded"


# --------------------------------------------------------------------------- execution

def _is_kernel_start_failure(exc: BaseException, notebook: Path) -> bool:
    """True when no cell ran: the kernel never started (port clash, slow start)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, (PapermillExecutionError, CellTimeoutError, DeadKernelError)):
        return False
    try:
        import nbformat

        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # noqa: BLE001 - no notebook written means nothing ran either
        return True
    return all(c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


#: papermill engine that runs a notebook's cells in the calling process, without a kernel.
IN_PROCESS_ENGINE = "evalkit-in-process"


def _in_process_engine_class():
    """A papermill engine that executes each code cell in this process, as a kernel would.

    Used by the executors' forked region processes, where a kernel would only add its start
    and messages: the cells run top to bottom in one fresh namespace; the value of a cell's last
    expression becomes its ``execute_result`` through IPython's own display formatter
    (the same ``text/html`` and ``text/plain`` a kernel sends); anything printed becomes
    a stream output; an exception becomes an ``error`` output and stops the run, which
    papermill turns into the usual :class:`~papermill.exceptions.PapermillExecutionError`.
    papermill itself parameterises the notebook, times the cells and writes the result,
    so the executed notebook has the same cells, outputs and metadata as a kernel's.
    Only safe in a process of its own (cells change the process's stdout and matplotlib
    state while they run), which is how the executors call it.
    """
    import ast
    import contextlib
    import io

    import nbformat
    from IPython.core.formatters import DisplayFormatter
    from papermill.engines import Engine

    class InProcessEngine(Engine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            from ipykernel.ipkernel import IPythonKernel

            namespace = {"__name__": "__main__", "__builtins__": __builtins__}
            formatter = DisplayFormatter()
            count = 0
            nb_man.nb.metadata["language_info"] = dict(IPythonKernel.language_info)
            for index, cell in enumerate(nb_man.nb.cells):
                nb_man.cell_start(cell, index)
                try:
                    if cell.cell_type != "code" or not cell.source.strip():
                        continue
                    count += 1
                    cell.execution_count = count
                    cell.outputs = outputs = []
                    failed = cls._run_cell(cell.source, namespace, formatter, count, outputs, index)
                    if failed is not None:
                        nb_man.cell_exception(cell, cell_index=index, exception=failed)
                        break
                finally:
                    nb_man.cell_complete(cell, cell_index=index)
            return nb_man.nb

        @staticmethod
        def _run_cell(source, namespace, formatter, count, outputs, index):
            printed = io.StringIO()
            failed = None
            try:
                tree = ast.parse(source, filename=f"<cell {index}>")
                last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
                with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                    exec(compile(tree, f"<cell {index}>", "exec"), namespace)
                    value = None
                    if last is not None:
                        value = eval(compile(ast.Expression(last.value), f"<cell {index}>", "eval"), namespace)
            except Exception as exc:  # noqa: BLE001 - recorded as the cell's error output, as a kernel does
                import traceback as tb_module

                failed = exc
                value = None
                outputs.append(nbformat.v4.new_output(
                    "error", ename=type(exc).__name__, evalue=str(exc),
                    traceback=tb_module.format_exception(exc)))
            text = printed.getvalue()
            if text:
                outputs.insert(0, nbformat.v4.new_output("stream", name="stdout", text=text))
            if value is not None and not source.rstrip().endswith(";"):
                data, metadata = formatter.format(value)
                if data:
                    outputs.append(nbformat.v4.new_output("execute_result", data=data, metadata=metadata,
                                                          execution_count=count))
            return failed

    return InProcessEngine


def _register_in_process_engine() -> None:
    from papermill.engines import papermill_engines

    if IN_PROCESS_ENGINE not in papermill_engines._engines:
        papermill_engines.register(IN_PROCESS_ENGINE, _in_process_engine_class())


def _execute(region: str, output_dir: Path, processed_dir: Path, target: Path, timeout: int,
             notebook: Path | None = None, kernel_manager_class: type | None = None, *,
             in_process: bool = False):
    """Run the notebook into ``target``; a kernel that fails to start is retried once.

    ``kernel_manager_class`` (e.g. :class:`evalkit.executors.ForkedKernelManager`)
    is used for the first attempt only: the retry always launches an ordinary
    kernel process, so a problem with the fast path cannot fail a region.
    With ``in_process`` the cells run in this process with no kernel at all (see
    :func:`_in_process_engine_class`). Returns the executed notebook (papermill's,
    or None when papermill returned none).
    """
    import papermill as pm
    from traitlets.config import Config

    notebook = Path(notebook or REGIONAL_NOTEBOOK)
    parameters = {"region": region, "output_dir": str(output_dir), "processed_dir": str(processed_dir)}
    if in_process:
        _register_in_process_engine()
        return pm.execute_notebook(
            str(notebook), str(target), parameters=parameters, engine_name=IN_PROCESS_ENGINE,
            kernel_name=KERNEL_NAME, progress_bar=False, log_output=False, request_save_on_cell_execute=False)
    for attempt in (1, 2):
        socket_dir = Path(tempfile.mkdtemp(prefix="evalkit-kernel-"))
        config = Config()
        if os.name != "nt":  # IPC sockets are Unix-only; Windows keeps TCP
            config.KernelManager.transport = "ipc"
            config.KernelManager.ip = str(socket_dir / "k")
        fast = {}
        if attempt == 1 and kernel_manager_class is not None:
            prepare = getattr(kernel_manager_class, "prepare", None)
            if prepare is not None:  # e.g. fork the kernel-to-be while no event loop exists yet
                prepare()
            # The kernel is thrown away after the notebook: no need to wait for a polite shutdown.
            # The notebook is written once at the end (and when a cell fails) rather than twice
            # per cell, which cost more than the cells; a region stopped by its executor for
            # running too long therefore leaves no partial notebook.
            fast = {"kernel_manager_class": kernel_manager_class, "shutdown_kernel": "immediate",
                    "request_save_on_cell_execute": False}
        try:
            return pm.execute_notebook(
                str(notebook), str(target), parameters=parameters,
                kernel_name=KERNEL_NAME, progress_bar=False, log_output=False,
                start_timeout=KERNEL_START_TIMEOUT, execution_timeout=timeout,
                config=config, resources={"metadata": {"path": os.getcwd()}}, **fast,
            )
        except Exception as exc:
            if attempt == 1 and _is_kernel_start_failure(exc, target):
                continue
            raise
        finally:
            shutil.rmtree(socket_dir, ignore_errors=True)


_EXPORTERS = threading.local()
_IMG_WITHOUT_ALT = re.compile(r"<img\b(?![^>]*\balt\s*=)", re.IGNORECASE)
_NOTEBOOK_CONTAINER = re.compile(r"""\bclass\s*=\s*["'](?:[^"']*\s)?jp-Notebook(?:\s[^"']*)?["']""")


def _report_exporter_class():
    """nbconvert's HTML exporter, without a re-parse of the whole page that would change nothing.

    ``HTMLExporter.from_notebook_node`` renders the template, then parses the page with
    BeautifulSoup only to give images without alt text a placeholder and to make cells
    inside a ``.jp-Notebook`` element focusable, and serialises it again: about nine tenths
    of a report's conversion time. evalkit's pages need neither (every figure has its own alt
    text and the report template has no ``.jp-Notebook`` container), so they are the
    template's output as it is, the same document nbconvert's pass would give. A page that
    does need either change, or an nbconvert whose internals differ, goes through
    nbconvert's own method.
    """
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class ReportExporter(HTMLExporter):
        def from_notebook_node(self, nb, resources=None, **kw):
            try:
                # What HTMLExporter.from_notebook_node does before its BeautifulSoup pass.
                langinfo = nb.metadata.get("language_info", {})
                lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
                highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
                resources = self._init_resources(resources)
                filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self,
                                                         resources=resources)
                self.register_filter("highlight_code", highlight_code)
                self.register_filter("filter_data_type", filter_data_type)
                page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            except AttributeError:
                return super().from_notebook_node(nb, resources, **kw)
            # (the substring test first: the container pattern takes milliseconds on a whole page)
            if _IMG_WITHOUT_ALT.search(page) or ("jp-Notebook" in page and _NOTEBOOK_CONTAINER.search(page)):
                return super().from_notebook_node(nb, resources, **kw)
            return page, resources

    return ReportExporter


def _exporter():
    """This thread's HTML exporter: built once, so its compiled templates are reused."""
    from traitlets.config import Config

    key = (str(TEMPLATES), REPORT_TEMPLATE)
    cached = getattr(_EXPORTERS, "value", None)
    if cached is None or cached[0] != key:
        config = Config()
        config.TemplateExporter.exclude_input = True
        config.TemplateExporter.exclude_input_prompt = True
        config.TemplateExporter.exclude_output_prompt = True
        config.TagRemovePreprocessor.enabled = True
        config.TagRemovePreprocessor.remove_cell_tags = set(REMOVED_CELL_TAGS)
        # Validate the notebook once after all preprocessors rather than after each of them
        # (a dozen validations of a notebook that none of them makes invalid).
        config.Exporter.optimistic_validation = True
        exporter = _report_exporter_class()(config=config, template_name=REPORT_TEMPLATE,
                                            extra_template_basedirs=[str(TEMPLATES)])
        exporter.language_code = "en"
        _EXPORTERS.value = cached = (key, exporter)
    return cached[1]


def _convert(executed: Path, region: str, nb=None):
    """The executed notebook (``nb``, or read from ``executed``) as the report's HTML page."""
    import copy

    import nbformat

    exporter = _exporter()
    # A copy: conversion's preprocessors change the notebook, which was already written as executed.
    nb = nbformat.read(executed, as_version=4) if nb is None else copy.deepcopy(nb)
    nb.metadata["title"] = f"{region}: ECD partnership evaluation"
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    remote = _network_reference(body)
    if remote:
        raise _RenderError("The report would load content from the internet, which funders' offline "
                           "copies cannot do, so it was not published.",
                           f"network reference in the HTML: {remote.group(0)[:120]!r}")
    return body


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _plain_reason(exc: BaseException, timeout: int) -> str:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, _RenderError):
        return exc.reason
    if isinstance(exc, PapermillExecutionError):
        # The error's message may quote data values, so the page names only its kind;
        # the whole message and traceback are in the region's log.
        return ("The report stopped with an error while reading or summarising this region's data"
                f" ({exc.ename}).")
    if isinstance(exc, CellTimeoutError) or "timed out" in str(exc).lower():
        return (f"Building the report took longer than the limit of {timeout} seconds per step "
                "and was stopped.")
    if isinstance(exc, DeadKernelError):
        return "The process building the report stopped unexpectedly (it may have run out of memory)."
    return f"The report could not be built ({type(exc).__name__})."


_UNAVAILABLE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{region}: report unavailable</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; line-height: 1.6;
  color: #1d1d1f; max-width: 40rem; margin: 0 auto; padding: 2rem 1rem; }}
.box {{ border-left: 6px solid #E69F00; background: #f3f5f7; padding: 0.75rem 1rem; }}
</style>
</head>
<body>
<main>
<h1>{region}</h1>
<div class="box">
<p class="ek-lead"><strong>This region's report is unavailable.</strong></p>
<p>{reason}</p>
</div>
<p>The other regions' reports are not affected. The evaluation team can find the technical details
in <code>logs/{slug}.log</code> in the output folder.</p>
<p><a href="../index.html">Back to all regions</a></p>
<p><small>evalkit {version} · {date}</small></p>
</main>
</body>
</html>
"""


def _unavailable_page(region: str, slug: str, reason: str) -> str:
    return _UNAVAILABLE.format(region=html.escape(region), slug=html.escape(slug),
                               reason=html.escape(reason), version=html.escape(reporting.evalkit_version()),
                               date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def _log_header(region: str, slug: str, output_dir: Path, processed_dir: Path) -> list[str]:
    return [f"region: {region}", f"slug: {slug}", f"output_dir: {output_dir}",
            f"processed_dir: {processed_dir}", f"started: {datetime.now(timezone.utc).isoformat()}"]


def record_failure(region: str, slug: str, output_dir: Path, reason: str, *, detail: str = "",
                   tb: str = "", seconds: float = 0.0, log_header: list[str] | None = None) -> RegionRender:
    """Write the unavailable page and ``logs/<slug>.log`` for a region whose report failed.

    Used here for failures inside one region's run and by the executors when the
    process building a region was stopped (time limit, crash, interruption).
    ``reason`` is the plain sentence the page shows; ``detail`` and the traceback
    ``tb`` only go to the log.
    """
    _check_slug(slug)
    output_dir = Path(output_dir).expanduser().resolve()
    lines = list(log_header or [f"region: {region}", f"slug: {slug}", f"output_dir: {output_dir}"])
    lines += ["status: failed", f"reason: {reason}"] + ([f"detail: {detail}"] if detail else [])
    if tb:
        lines.append("traceback:\n" + _ANSI.sub("", tb))
    _write_atomic(output_dir / "logs" / f"{slug}.log", "\n".join(lines) + "\n")
    _write_atomic(output_dir / "regions" / f"{slug}.html", _unavailable_page(region, slug, reason))
    return RegionRender(region, slug, "failed", f"regions/{slug}.html", reason, seconds)


def render_region_report(region: str, slug: str, output_dir: Path, processed_dir: Path, *,
                         timeout: int = 600, notebook: Path | None = None,
                         kernel_manager_class: type | None = None,
                         in_process_notebook: bool = False) -> RegionRender:
    """Execute and convert one region's report in this process; never raises for a region-level failure.

    Parameters
    ----------
    region : str
        Canonical region name, as in ``results/estimates.csv``.
    slug : str
        File-name form (lower-case letters, digits, hyphens).
    output_dir, processed_dir : Path
        The run's output folder and the folder holding ``child_outcomes.parquet``;
        made absolute here and passed to the notebook as such.
    timeout : int
        Seconds each notebook cell may take.
    notebook : Path, optional
        The notebook to execute (default: the package's :data:`REGIONAL_NOTEBOOK`).
    kernel_manager_class : type, optional
        A jupyter_client kernel manager for the first attempt (the executors pass
        :class:`evalkit.executors.ForkedKernelManager`); the retry after a failed
        kernel start always launches an ordinary kernel.
    in_process_notebook : bool
        Run the region's notebook in this process, without a kernel (the same cells, outputs
        and page, checked byte for byte on every region of the sample; see
        :func:`_in_process_engine_class`); it saves the kernel's start and messages, about a
        third of a report's time. Only for a process that renders nothing else at the same
        time and whose time limit is enforced from outside: the executors' forked region
        processes pass True; threads, Dask workers and direct calls use a kernel.

    Returns
    -------
    RegionRender
        Status "ok" / "not_estimable" when the page was written, "failed" when an
        unavailable page was written instead.
    """
    _check_slug(slug)
    started = time.perf_counter()
    output_dir = Path(output_dir).expanduser().resolve()
    processed_dir = Path(processed_dir).expanduser().resolve()
    notebook = Path(notebook or REGIONAL_NOTEBOOK)
    page = output_dir / "regions" / f"{slug}.html"
    executed = output_dir / "notebooks" / f"{slug}.ipynb"
    log_path = output_dir / "logs" / f"{slug}.log"
    relative = f"regions/{slug}.html"
    log_lines = _log_header(region, slug, output_dir, processed_dir)
    scratch = executed.with_name(f".{slug}.{os.getpid()}.{time.monotonic_ns()}.ipynb")
    try:
        row = _validate(region, output_dir, processed_dir, notebook)
        status, reason = _status_of(row)
        executed.parent.mkdir(parents=True, exist_ok=True)
        in_process = in_process_notebook
        try:
            nb = _execute(region, output_dir, processed_dir, scratch, timeout, notebook, kernel_manager_class,
                          in_process=in_process)
        finally:
            if scratch.exists():  # keep even a failed run for inspection
                scratch.replace(executed)
        try:
            body = _convert(executed, region, nb if hasattr(nb, "cells") else None)
        except _RenderError:
            raise
        except Exception as exc:
            raise _RenderError("The report was computed but could not be converted to a web page.",
                               f"{type(exc).__name__}: {exc}") from exc
        _write_atomic(page, body)
        seconds = time.perf_counter() - started
        log_lines.append(f"status: {status}\nseconds: {seconds:.2f}")
        _write_atomic(log_path, "\n".join(log_lines) + "\n")
        return RegionRender(region, slug, status, relative, reason, seconds)
    except Exception as exc:  # noqa: BLE001 - failure isolation: one region never stops the batch
        tb = "".join(traceback.format_exception(exc))
        ename_tb = getattr(exc, "traceback", None)  # PapermillExecutionError: the cell's traceback
        if ename_tb:
            tb = "\n".join(ename_tb) + "\n\n" + tb
        return record_failure(region, slug, output_dir, _plain_reason(exc, timeout),
                              detail=getattr(exc, "detail", ""), tb=tb,
                              seconds=time.perf_counter() - started, log_header=log_lines)


def preload(output_dir: str | Path) -> None:
    """Parse a run's tables that every region reads, once, before its regions are forked.

    See :func:`evalkit.reporting.preload_shared`; never fails (a region reports its own problems).
    """
    try:
        reporting.preload_shared(Path(output_dir))
    except Exception:  # noqa: BLE001 - an optimisation only
        pass


def warm_up() -> None:
    """Fill this process's caches a region's run needs (notebook parameters, compiled templates).

    Called once in the executors' template process, so that every region forked
    from it starts with them.
    """
    import nbformat

    _notebook_parameters(REGIONAL_NOTEBOOK)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Warm-up\n\nA *short* [note](#x)."),
        nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("display_data", data={
            "text/html": '<div class="ek-table-wrap"><table class="ek-table"><caption>Table 1.</caption>'
                         '<tr><th scope="row">a &amp; b</th><td>1&nbsp;&lt;&nbsp;2</td></tr></table></div>'
                         '<figure><img src="data:image/svg+xml;base64," alt="x"></figure>'})])])
    nbformat.validate(nb)
    exporter = _exporter()
    nb.metadata["title"] = "Warm-up"
    exporter.from_notebook_node(nb, resources={"metadata": {"name": "warm-up"}})
    nbformat.writes(nb)


# --------------------------------------------------------------------------- index

_STATUS_LABELS = {"ok": "Effect estimated", "not_estimable": "Not estimable", "failed": "Report failed"}


def _names(regions: list[str], limit: int = 4) -> str:
    return f" ({', '.join(regions)})" if 0 < len(regions) <= limit else ""


#: Readings of a region whose direction the small-sample checks do not confirm (reporting._reading).
_NOT_CERTAIN = ("probably higher, not certain", "probably lower, not certain")


def _national_summary(rows: list[dict]) -> str:
    """What the regions found, counted and (when few) named, in one or two sentences."""
    n = len(rows)
    usable = [r for r in rows if r["status"] == "ok" and r["direction"]]
    by = {d: [r["region"] for r in usable if r["direction"] == d]
          for d in ("no clear difference", "partnered higher", "partnered lower", *_NOT_CERTAIN)}
    plural = "s" if n != 1 else ""
    if usable:
        clauses = []
        if by["no clear difference"]:
            k = len(by["no clear difference"])
            clauses.append(f"in {k}{_names(by['no clear difference'])} there is no clear difference between "
                           "partnered and comparison centres")
        if by["partnered higher"]:
            clauses.append(f"in {len(by['partnered higher'])}{_names(by['partnered higher'])} children in "
                           "partnered centres scored clearly higher")
        if by["partnered lower"]:
            clauses.append(f"in {len(by['partnered lower'])}{_names(by['partnered lower'])} they scored clearly lower")
        unsure = [r for d in _NOT_CERTAIN for r in by[d]]
        if unsure:
            clauses.append(f"in {len(unsure)}{_names(unsure)} a difference is likely but the small-sample "
                           "checks cannot rule out none")
        joined = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
        text = f"Of {n} region{plural}, {len(usable)} {'has' if len(usable) == 1 else 'have'} an estimate: {joined}."
    else:
        text = f"None of the {n} region{plural} has a usable estimate of the effect."
    suppressed = [r["region"] for r in rows if r["status"] == "ok" and not r["direction"]]
    not_estimable = [r["region"] for r in rows if r["status"] == "not_estimable"]
    failed = [r["region"] for r in rows if r["status"] == "failed"]
    if suppressed:
        text += f" {len(suppressed)}{_names(suppressed)} rest on too few children or centres to publish."
    if not_estimable:
        text += f" {len(not_estimable)}{_names(not_estimable)} could not be estimated."
    if failed:
        text += f" {len(failed)} report{'s' if len(failed) != 1 else ''}{_names(failed)} failed to build."
    return text


def _national_lead(rows: list[dict]) -> str:
    """The one-line finding across regions when there is no pooled estimate."""
    usable = [r["direction"] for r in rows if r["status"] == "ok" and r["direction"]]
    k = len(usable)
    if not k:
        return "No region has a usable estimate of the effect."
    higher, lower = usable.count("partnered higher"), usable.count("partnered lower")
    unclear = usable.count("no clear difference") + sum(usable.count(d) for d in _NOT_CERTAIN)
    if unclear * 2 > k:
        return f"No clear difference in most regions ({unclear} of {k} with an estimate)."
    if higher * 2 > k:
        return f"Children in partnered centres scored clearly higher in most regions ({higher} of {k})."
    if lower * 2 > k:
        return f"Children in partnered centres scored clearly lower in most regions ({lower} of {k})."
    return (f"Mixed results: clearly higher in {higher}, clearly lower in {lower} and no clear difference "
            f"in {unclear} of {k} regions.")


def _tally(rows: list[dict]) -> list[dict]:
    """Regions by reading, for the picture under the headline (colour plus words)."""
    kinds = (("partnered higher", "clearly higher in partnered", "#0072B2"),
             ("probably higher, not certain", "probably higher, not certain", "#9ecae1"),
             ("no clear difference", "no clear difference", "#8c8c8c"),
             ("probably lower, not certain", "probably lower, not certain", "#f4b183"),
             ("partnered lower", "clearly lower in partnered", "#D55E00"))
    out = [dict(label=label, count=sum(1 for r in rows if r["status"] == "ok" and r["direction"] == key),
                colour=colour) for key, label, colour in kinds]
    out.append(dict(label="no estimate", colour="#e3e3e3",
                    count=sum(1 for r in rows if not (r["status"] == "ok" and r["direction"]))))
    return [t for t in out if t["count"]]


def _chance_note(rows: list[dict]) -> str:
    usable = sum(1 for r in rows if r["status"] == "ok" and r["direction"])
    if usable < 3:
        return ""
    return (f"Each region is estimated separately; among {usable} estimates, one clear result can turn up by "
            "chance alone, so a consistent pattern across regions says more than any single region.")


#: Region name of the pooled estimate in ``results/estimates.csv``.
#: Files under the output folder that the index offers for download, when present: only what keeps the
#: small-cell rule (the workbook, :mod:`evalkit.export`). The results/*.csv tables are the evaluation
#: team's, at full precision, and are not offered to funders.
DOWNLOADS = (("results/results.xlsx", "All results as an Excel workbook, small cells suppressed (for M&E teams)"),)


def _index_forest(rows: list[dict], national: pd.Series | None, checks: list[dict] = ()) -> str:
    """Forest plot of every region's primary estimate, the national one first."""
    forest = []
    if national is not None and reporting.effect_direction(national) is not None:
        result = reporting.short_result(national, checks)
        forest.append(dict(label="All regions", note=f"{result['estimate']} ({result['interval']})",
                           estimate=national["estimate"], low=national["ci_low"], high=national["ci_high"],
                           emphasis=True))
    for row in rows:
        drawable = row["status"] == "ok" and row["interval"] != reporting.DASH
        note = (f"{row['estimate']} ({row['interval']})" if drawable
                else {"failed": "report failed", "not_estimable": "not estimable"}.get(row["status"], row["estimate"]))
        if row["status"] == "ok" and not drawable:
            note = "suppressed (too few children or centres)"
        forest.append(dict(label=row["region"], note=note, missing=note,
                           estimate=row["_estimate"] if drawable else None,
                           low=row["_low"] if drawable else None, high=row["_high"] if drawable else None))
    if not any(r["estimate"] is not None for r in forest):
        return ""
    described = "; ".join(f"{r['label']}: {r['note']}" for r in forest)
    return reporting.forest_svg(forest, unit="ELOM points",
                                label=f"Difference in ELOM total, partnered minus comparison, with 95% interval, "
                                      f"by region. {described}.")


def write_index(output_dir: Path, estimates: pd.DataFrame, renders: list[RegionRender],
                briefs: dict[str, str] | None = None) -> Path:
    """Write ``<output_dir>/index.html``: the national result, a forest plot and every region's report.

    The national headline comes from the ``National`` rows of the estimates
    when present; otherwise the page opens with a count of what the regions found.
    ``briefs`` maps a region (and ``National``) to its PDF brief (``briefs/<slug>.pdf``, see
    :mod:`evalkit.brief`): each region's row links its brief, the downloads the national one.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    output_dir = Path(output_dir).expanduser().resolve()
    estimates = reporting.in_display_units(estimates)
    rows, n_children = [], 0
    for item in renders:
        row = reporting.primary_row(estimates, item.region) if "region" in estimates else None
        if item.status == "ok" and row is not None and pd.notna(row.get("n_children")):
            n_children += int(row["n_children"])
        checks = reporting.few_cluster_checks(estimates, row)
        result = reporting.short_result(row if item.status != "failed" else None, checks)
        if item.status == "failed" and row is not None:
            result["n_children"] = reporting.suppress_count(row.get("n_children"))
        reading = {"failed": "Report failed", "not_estimable": "Not estimable"}.get(
            item.status, result["direction"].capitalize() if result["direction"] else "Suppressed")
        usable = result["direction"] != ""
        rows.append(dict(region=item.region, slug=item.slug, href=item.path, status=item.status,
                         brief=(briefs or {}).get(item.region, ""),
                         status_label=_STATUS_LABELS.get(item.status, item.status),
                         reason=item.reason, reading=reading,
                         _estimate=row["estimate"] if usable else None,
                         _low=row["ci_low"] if usable else None, _high=row["ci_high"] if usable else None,
                         **result))
    problems = [r for r in rows if r["status"] != "ok"]
    national = (reporting.primary_row(estimates, NATIONAL)
                if "region" in estimates and not any(r.region == NATIONAL for r in renders) else None)
    national_html = ""
    if national is not None:
        national_html = reporting.headline_html(
            national, "all regions combined", heading="What we found across all regions",
            extra=["Each region's own result is below; they can differ from the overall one."],
            checks=reporting.few_cluster_checks(estimates, national))
    downloads = [dict(href=href, label=label) for href, label in DOWNLOADS if (output_dir / href).is_file()]
    if (briefs or {}).get(NATIONAL):
        downloads.insert(0, dict(href=briefs[NATIONAL], label="Board brief for all regions (PDF, A4); each region's "
                                                              "own brief is linked beside its name in Table 1"))
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    page = env.get_template("index.html.j2").render(
        rows=rows, problems=problems, summary=_national_summary(rows), chance_note=_chance_note(rows),
        lead=_national_lead(rows), tally=_tally(rows),
        national=national_html,
        forest=_index_forest(rows, national, reporting.few_cluster_checks(estimates, national)), downloads=downloads,
        n_children=reporting.suppress_count(n_children), version=reporting.evalkit_version(),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        min_children=reporting.min_children_per_cell(), min_centres=reporting.min_centres_per_cell(),
        report_title=reporting.report_names()["title"], names_line=reporting.names_line())
    path = output_dir / "index.html"
    _write_atomic(path, page)
    return path
