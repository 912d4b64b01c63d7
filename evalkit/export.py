"""The run's results as one Excel workbook for M&E teams: ``results/results.xlsx``.

One sheet per results table that the run wrote (estimates, balance, indicators,
satisfaction, scorecard, milestones, power, data quality …), a sheet of rows
read, kept and dropped from the run manifest, and an "About" sheet saying what
each sheet holds and where the numbers came from. Tables that the run did not
write are listed on the About sheet as absent, not invented.

It is offered to funders, so the small-cell rule holds in it as in the reports
(:func:`evalkit.disclosure.suppressed_results`): a cell describing fewer than 10 children
or 3 centres shows ``"suppressed"``, ``"<10"`` or ``"<3"``. The analysts' ``results/*.csv``
keep full precision.

Text cells are protected against formula injection: a value that a spreadsheet
would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is written as text with a leading apostrophe, as OWASP
recommends for CSV and spreadsheet exports. Numbers stay numbers.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .disclosure import groups_from_indicators, min_centres, min_children, suppressed_results

__all__ = ["WORKBOOK", "SHEETS", "FORMULA_TRIGGERS", "safe_cell", "workbook_tables", "write_results_workbook"]

#: Where the workbook is written, relative to the output folder.
WORKBOOK = Path("results") / "results.xlsx"
#: Results tables copied into the workbook (file stem under results/ → what the sheet holds).
SHEETS = {
    "estimates": "Effect estimates: one row per region × outcome × estimator × inference (× subgroup).",
    "balance": "Baseline balance of partnered and comparison children: means, standardised differences, verdicts.",
    "balance_joint": "Joint tests of baseline balance per region.",
    "power": "Minimum detectable effects and power for each region's design.",
    "indicators": "Child indicators by region × group × wave.",
    "satisfaction": "Parent satisfaction by region × group × item (top-2-box share; net promoter score).",
    "scorecard": "SCSPR-25 programme scorecard: value against target, national and per region.",
    "milestones": "Partnership MOUs signed against plan, by month.",
    "data_quality": "Cleaning actions by table, action and rule (counts of rows).",
}
#: First characters that make a spreadsheet treat text as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_MAX_COLUMN_WIDTH = 60


def safe_cell(value: Any) -> Any:
    """A value as it may go into a spreadsheet cell.

    Numbers and booleans pass through; missing values become empty cells;
    text that a spreadsheet would run as a formula gets a leading apostrophe.

    Examples
    --------
    >>> safe_cell('=HYPERLINK("http://x")')
    '\\'=HYPERLINK("http://x")'
    >>> safe_cell(-1.5), safe_cell("Gauteng")
    (-1.5, 'Gauteng')
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if isinstance(value, float) and math.isnan(value) else value
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return safe_cell(value.item())
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _rows_frame(manifest: dict | None) -> pd.DataFrame:
    rows = []
    for table, counts in ((manifest or {}).get("rows") or {}).items():
        if not isinstance(counts, dict):
            continue
        rows.append(dict(table=table, reason="(all rows)", rows_in=counts.get("rows_in"),
                         rows_kept=counts.get("rows_kept"), rows_dropped=counts.get("rows_dropped")))
        for rule, n in (counts.get("dropped_by_rule") or {}).items():
            rows.append(dict(table=table, reason=rule, rows_in=None, rows_kept=None, rows_dropped=n))
    return pd.DataFrame(rows, columns=["table", "reason", "rows_in", "rows_kept", "rows_dropped"])


def workbook_tables(output_dir: str | Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The tables the workbook holds, by sheet name, and the results tables that were absent.

    When ``results/data_quality.csv`` is absent the data-quality sheet is
    counted from ``cleaning_log.csv`` (table, action, rule → rows): record
    ids and values never enter the workbook. Small cells are suppressed
    (:func:`evalkit.disclosure.suppressed_results`, with the groups of ``indicators``).
    """
    output_dir = Path(output_dir)
    tables: dict[str, pd.DataFrame] = {}
    absent = []
    for name in SHEETS:
        path = output_dir / "results" / f"{name}.csv"
        if path.is_file():
            tables[name] = pd.read_csv(path, keep_default_na=True)
        else:
            absent.append(name)
    log = output_dir / "cleaning_log.csv"
    if "data_quality" not in tables and log.is_file():
        counts = (pd.read_csv(log, dtype=str, keep_default_na=False, usecols=["table", "action", "rule"])
                  .groupby(["table", "action", "rule"]).size().rename("n_rows").reset_index())
        tables["data_quality"] = counts
        absent.remove("data_quality")
    manifest_path = output_dir / "run_manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else None
    rows = _rows_frame(manifest)
    if not rows.empty:
        tables["rows_kept_dropped"] = rows
    groups = groups_from_indicators(tables.get("indicators"))
    return {name: suppressed_results(name, frame, groups) for name, frame in tables.items()}, absent


def _about(output_dir: Path, tables: dict[str, pd.DataFrame], absent: list[str]) -> list[list[Any]]:
    from .reporting import evalkit_version

    manifest_path = output_dir / "run_manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    lines: list[list[Any]] = [
        ["ECD partnership evaluation: results workbook"],
        [],
        ["Built", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
        ["evalkit version", evalkit_version()],
        ["Run started", manifest.get("started_at", "unknown")],
        ["Level", (manifest.get("parameters") or {}).get("level", "unknown")],
        [],
        ["Sheet", "What it holds", "Rows"],
    ]
    descriptions = dict(SHEETS, rows_kept_dropped="Rows read, kept and dropped per input table, with the "
                                                  "reason for each dropped row (from the run manifest).")
    for name, frame in tables.items():
        lines.append([name, descriptions.get(name, ""), len(frame)])
    for name in absent:
        lines.append([name, "Not produced by this run.", 0])
    lines += [[], ["Input file", "SHA-256"]]
    for name, info in (manifest.get("inputs") or {}).items():
        lines.append([name, (info or {}).get("sha256", "")])
    lines += [[], ["Notes"],
              ["Partnership was not randomised: estimates are adjusted comparisons, not proof of cause."],
              [f"Cells describing fewer than {min_children()} children or {min_centres()} centres show "
               f"\"suppressed\", \"<{min_children()}\" or \"<{min_centres()}\"; the evaluation team's "
               "results/*.csv keep full precision."],
              ["Text that a spreadsheet would read as a formula starts with an apostrophe; numbers are numbers."]]
    return lines


def _write_sheet(sheet, frame: pd.DataFrame) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet.append([safe_cell(str(c)) for c in frame.columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for record in frame.itertuples(index=False, name=None):
        sheet.append([safe_cell(v) for v in record])
    _protect_text(sheet)
    sheet.freeze_panes = "A2"
    if len(frame.columns):
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(frame.columns))}{len(frame) + 1}"
    for i, column in enumerate(frame.columns, start=1):
        values = [str(column)] + [str(v) for v in frame[column].head(200)]
        sheet.column_dimensions[get_column_letter(i)].width = min(_MAX_COLUMN_WIDTH, max(len(v) for v in values) + 2)


def _protect_text(sheet) -> None:
    """openpyxl treats any string starting with "=" as a formula: make every string a string."""
    for row in sheet.iter_rows():
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"


def write_results_workbook(output_dir: str | Path) -> Path:
    """Write ``<output_dir>/results/results.xlsx`` from the run's results tables; return its path.

    Parameters
    ----------
    output_dir : path
        A finished run's output folder (with ``results/estimates.csv``; the other
        tables are included when present).

    Returns
    -------
    Path
        The workbook, written atomically (a half-written file never replaces a good one).
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font

    output_dir = Path(output_dir).expanduser().resolve()
    tables, absent = workbook_tables(output_dir)
    workbook = Workbook()
    about = workbook.active
    about.title = "About"
    for line in _about(output_dir, tables, absent):
        about.append([safe_cell(v) for v in line])
    _protect_text(about)
    about["A1"].font = Font(bold=True, size=14)
    about.column_dimensions["A"].width = 24
    about.column_dimensions["B"].width = 90
    for name, frame in tables.items():
        _write_sheet(workbook.create_sheet(name[:31]), frame)
    path = output_dir / WORKBOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    workbook.save(tmp)
    tmp.replace(path)
    return path
