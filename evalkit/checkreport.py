"""``evalkit check``: the data-quality report for field teams, as HTML and as a workbook.

:func:`run_check` reads a data folder (with its codebook), cleans it, checks the
clean tables against their schemas, runs the data-quality checks and writes,
into an output folder that may not lie inside the data folder:

* ``data_quality.html``: a self-contained page in the report style (inline CSS,
  no scripts, no network references, ``lang`` set, Jinja2 autoescaping on);
* ``data_quality_flags.xlsx``: one row per flag with what to do about it and
  columns for the field team's answer, plus the tables behind each check; text a
  spreadsheet would run as a formula starts with ``'``;
* ``results/data_quality.csv``: rows changed, flagged and dropped by table, action
  and rule (:data:`evalkit.quality.CLEANING_SUMMARY_COLUMNS`, the shape the run's
  reports read);
* ``results/data_quality_checks.csv``: the counts behind the page, one row per
  check × table × column × group (:data:`evalkit.quality.SUMMARY_COLUMNS`);
* ``cleaning_log.csv``: every change, flag and dropped row.

No personal data reaches any of them: it is dropped as the data is read. Raw
files are only read. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .cleaning import CleanData, clean_all, formula_safe
from .config import load_rules
from .study import package_templates_dir
from .errors import InputError
from .quality import QualityReport, check_quality, cleaning_summary
from .readers import RawData, read_data_folder
from .schemas import schema_failures
from .treatment import derive_treatment

__all__ = ["CheckResult", "HTML_NAME", "WORKBOOK_NAME", "SUMMARY_PATH", "CHECKS_PATH", "STATUS_CHOICES", "run_check",
           "write_check_report", "write_flags_workbook", "render_check_html"]

HTML_NAME = "data_quality.html"
WORKBOOK_NAME = "data_quality_flags.xlsx"
SUMMARY_PATH = Path("results") / "data_quality.csv"
CHECKS_PATH = Path("results") / "data_quality_checks.csv"
LOG_NAME = "cleaning_log.csv"
#: The answers a field team can give to a flag in the workbook.
STATUS_CHOICES = ("open", "corrected in the source", "confirmed correct", "cannot be fixed")
_EXCEL_MAX_ROWS = 1_048_575
_HTML_MAX_ROWS = 60


@dataclass(frozen=True)
class CheckResult:
    """What ``evalkit check`` wrote and found."""

    out_dir: Path
    html: Path
    workbook: Path
    summary: Path
    checks: Path
    log: Path
    quality: QualityReport
    counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- writing


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    _atomic_write_bytes(path, frame.to_csv(index=False, lineterminator="\n", float_format="%.10g").encode("utf-8"))


def _safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns formula-safe; numbers stay numbers; missing values become empty cells."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            continue
        if pd.api.types.is_datetime64_any_dtype(values):
            out[column] = values.dt.strftime("%Y-%m-%d").astype("object").where(values.notna(), None)
            continue
        out[column] = formula_safe(values).where(values.notna(), None)
    return out


def _column_values(values: pd.Series) -> list[Any]:
    """A column as Python values for openpyxl: None for missing, native numbers and text."""
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return values.astype(bool).tolist()
    return values.astype("object").where(values.notna(), None).tolist()


def _sheet(workbook: Any, title: str, frame: pd.DataFrame, *, widths: dict[str, int] | None = None,
           note: str | None = None, validation: Any = None, validation_column: str | None = None) -> Any:
    """One sheet in write-only mode (fast for a hundred thousand flags): bold header, frozen,
    filtered, sized; every text cell formula-safe."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    sheet = workbook.create_sheet(title)
    start = 3 if note else 1
    safe = _safe_frame(frame.head(_EXCEL_MAX_ROWS - start))
    columns = [str(c) for c in safe.columns]
    for position, name in enumerate(columns, start=1):
        width = (widths or {}).get(name)
        if width is None:
            longest = safe[name].astype(str).str.len().head(500).max() if len(safe) else 0
            width = int(min(max(len(name), 0 if pd.isna(longest) else int(longest)) + 2, 60))
        sheet.column_dimensions[get_column_letter(position)].width = width
    sheet.freeze_panes = f"A{start + 1}"
    last = start + max(len(safe), 1)
    if columns:
        sheet.auto_filter.ref = f"A{start}:{get_column_letter(len(columns))}{last}"
    if validation is not None and validation_column in columns:
        letter = get_column_letter(columns.index(validation_column) + 1)
        validation.add(f"{letter}{start + 1}:{letter}{last}")
        sheet.data_validations.append(validation)
    if note:
        cell = WriteOnlyCell(sheet, value=note)
        cell.font = Font(italic=True)
        sheet.append([cell])
        sheet.append([])
    header = []
    for name in columns:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        header.append(cell)
    sheet.append(header)
    for row in zip(*(_column_values(safe[c]) for c in safe.columns)):
        sheet.append(row)
    return sheet


def _read_me(report: QualityReport, raw: RawData, generated: str) -> list[list[str]]:
    counts = report.flags["severity"].value_counts()
    return [
        ["Data quality flags"],
        [f"Data folder: {raw.folder.name}. Checked {generated} by evalkit check."],
        [],
        ["How to work through it"],
        ["1. Open the Flags sheet. Each row is one record or variable to check, the most serious first "
         "(error: a record was lost; warning: a value needs checking)."],
        ["2. 'what_to_do' says what to do. Look the record up by its table, record_id and row "
         "(row 1 is the first row below the header of the file as exported)."],
        ["3. Write your answer in 'status' (choose from the list) and a short 'comment'. "
         "Do not change flag_id, so answers can be matched to the next check."],
        ["4. Correct errors in the source (the form or the export), never in the raw files by hand; "
         "then export again and run evalkit check again."],
        [],
        ["Counts"],
        [f"Errors: {int(counts.get('error', 0))}; warnings: {int(counts.get('warning', 0))}; "
         f"flags in all: {len(report.flags)}."],
        [],
        ["Sheets"],
        ["Flags: one row per flag. Assessors, Centres: the tables behind those checks. Missingness: missing values "
         "by variable, arm and wave, with reasons. Outliers: the fences used. Rows: rows read, kept and dropped. "
         "Files: how each table was read. Rules: what each check means."],
        [],
        ["Text that a spreadsheet would read as a formula starts with an apostrophe ('); numbers are numbers. "
         "No personal data is in this workbook."],
    ]


def write_flags_workbook(path: Path, report: QualityReport, raw: RawData, clean: CleanData,
                         generated: str) -> Path:
    """The workbook of flags a field team works through (see the module docstring)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    readme = workbook.create_sheet("Read me")
    readme.column_dimensions["A"].width = 120
    for number, row in enumerate(_read_me(report, raw, generated), start=1):
        cells = []
        for text in formula_safe(pd.Series(row, dtype="object")).tolist():
            cell = WriteOnlyCell(readme, value=text)
            if number == 1:
                cell.font = Font(bold=True, size=14)
            elif number in (4, 10, 13):
                cell.font = Font(bold=True)
            cells.append(cell)
        readme.append(cells)

    flags = report.flags.assign(status="open", comment="")
    total = len(flags)
    note = None
    if total > _EXCEL_MAX_ROWS - 3:
        note = f"Only the first {_EXCEL_MAX_ROWS - 3:,} of {total:,} flags fit in one sheet; all are in the CSV files."
    choices = DataValidation(type="list", formula1='"' + ",".join(STATUS_CHOICES) + '"', allow_blank=True)
    _sheet(workbook, "Flags", flags, note=note, validation=choices, validation_column="status",
           widths={"flag_id": 9, "severity": 9, "source": 9, "row": 7, "detail": 60, "what_to_do": 60,
                   "status": 22, "comment": 40})
    _sheet(workbook, "Assessors", report.assessors)
    _sheet(workbook, "Centres", report.centres)
    _sheet(workbook, "Missingness", report.missingness)
    _sheet(workbook, "Outliers", report.outliers)
    _sheet(workbook, "Rows", _rows_frame(clean))
    _sheet(workbook, "Files", _files_frame(raw))
    _sheet(workbook, "Rules", _rules_frame(raw.rules), widths={"meaning": 70, "what_to_do": 70})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    workbook.save(tmp)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- tables for both outputs


def _rows_frame(clean: CleanData) -> pd.DataFrame:
    rows = []
    for table, counts in clean.row_counts.items():
        by_rule = "; ".join(f"{rule} {n}" for rule, n in sorted(counts["dropped_by_rule"].items()))
        rows.append({"table": table, "rows_in": counts["rows_in"], "rows_kept": counts["rows_kept"],
                     "rows_dropped": counts["rows_dropped"], "dropped_by_rule": by_rule})
    return pd.DataFrame(rows, columns=["table", "rows_in", "rows_kept", "rows_dropped", "dropped_by_rule"])


def _files_frame(raw: RawData) -> pd.DataFrame:
    rows = []
    for table, source in raw.sources.items():
        how = ", ".join(part for part in (source.file_format.upper(), source.encoding, source.delimiter,
                                          f"sheet '{source.sheet}'" if source.sheet else "") if part)
        rows.append({"table": table, "file": source.path.name, "read_as": how, "header_row": source.header_row,
                     "rows": source.n_rows, "columns_used": len(source.columns_used),
                     "personal_columns_dropped": len(source.columns_personal),
                     "meta_columns_dropped": len(source.columns_meta),
                     "unused_columns": ", ".join(source.columns_unused),
                     "notes": "; ".join(source.notes)})
    return pd.DataFrame(rows, columns=["table", "file", "read_as", "header_row", "rows", "columns_used",
                                       "personal_columns_dropped", "meta_columns_dropped", "unused_columns", "notes"])


def _rules_frame(cleaning_rules: dict) -> pd.DataFrame:
    rows = [{"check": rule, "source": "cleaning", "severity": spec.get("severity", ""),
             "meaning": spec.get("meaning", ""), "what_to_do": spec.get("todo", "")}
            for rule, spec in cleaning_rules.get("log_rules", {}).items()]
    rows += [{"check": check, "source": "quality", "severity": spec.get("severity", ""),
              "meaning": spec.get("meaning", ""), "what_to_do": spec.get("todo", "")}
             for check, spec in load_rules("quality").get("checks", {}).items()]
    return pd.DataFrame(rows, columns=["check", "source", "severity", "meaning", "what_to_do"])


def _fmt_pct(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.1f}%"


def _fmt_num(value: Any, digits: int = 1) -> str:
    """A number for people: fixed decimals, a true minus sign, no "−0.00", "–" when missing."""
    if value is None or pd.isna(value):
        return "–"
    value = float(value)
    if round(value, digits) == 0:
        value = 0.0
    return f"{value:,.{digits}f}".replace("-", "−")


def _html_table(caption: str, columns: list[tuple[str, str]], rows: list[list[Any]], *, note: str = "",
                wide: bool = False) -> dict[str, Any]:
    """A table for the template: (name, kind) columns with kind '', 'num' or 'severity'."""
    shown = rows[:_HTML_MAX_ROWS]
    if len(rows) > len(shown):
        note = (note + " " if note else "") + f"The first {len(shown)} of {len(rows)} rows are shown; all are in the workbook."
    return {"caption": caption, "note": note, "wide": wide,
            "columns": [{"name": name, "numeric": kind == "num", "severity": kind == "severity"} for name, kind in columns],
            "rows": [["" if v is None else str(v) for v in row] for row in shown]}


def _context(report: QualityReport, raw: RawData, clean: CleanData, generated: str, version: str,
             outlier_method: str) -> dict[str, Any]:
    flags = report.flags
    rows_in = sum(c["rows_in"] for c in clean.row_counts.values())
    rows_kept = sum(c["rows_kept"] for c in clean.row_counts.values())
    counts = {"error": int((flags["severity"] == "error").sum()), "warning": int((flags["severity"] == "warning").sum()),
              "rows_in": f"{rows_in:,}", "rows_kept": f"{rows_kept:,}", "rows_dropped": f"{rows_in - rows_kept:,}"}
    if counts["error"] or counts["warning"]:
        lead = (f"{counts['error']:,} errors and {counts['warning']:,} warnings to check before the analysis; "
                f"{rows_kept:,} of {rows_in:,} rows are usable.")
    else:
        lead = f"No problems found: all {rows_kept:,} of {rows_in:,} rows are usable."
    catalogue = {**{k: v for k, v in raw.rules.get("log_rules", {}).items()}, **load_rules("quality").get("checks", {})}
    grouped = (flags.groupby(["severity", "check", "table"], sort=False)
               .agg(n=("flag_id", "size"), records=("record_id", lambda r: r.replace("", pd.NA).nunique()))
               .reset_index()) if len(flags) else pd.DataFrame(columns=["severity", "check", "table", "n"])
    if len(grouped):
        grouped["rank"] = grouped["severity"].map({"error": 0, "warning": 1}).fillna(2)
        grouped = grouped.sort_values(["rank", "n"], ascending=[True, False])
    check_rows = [[item.check.replace("_", " "), item.severity, item.table, f"{item.n:,}",
                   catalogue.get(item.check, {}).get("meaning", ""), catalogue.get(item.check, {}).get("todo", "")]
                  for item in grouped.itertuples(index=False)]
    checks = _html_table("Flags by check, the most serious first",
                         [("Check", ""), ("Severity", "severity"), ("Table", ""), ("Flags", "num"),
                          ("What it means", ""), ("What to do", "")], check_rows, wide=True)
    rows_frame = _rows_frame(clean)
    rows = _html_table("Rows read, kept and dropped per table",
                       [("Table", ""), ("Read", "num"), ("Kept", "num"), ("Dropped", "num"), ("Dropped by rule", "")],
                       [[r.table, f"{r.rows_in:,}", f"{r.rows_kept:,}", f"{r.rows_dropped:,}",
                         r.dropped_by_rule.replace("_", " ") or "–"] for r in rows_frame.itertuples(index=False)])
    files_frame = _files_frame(raw)
    files = _html_table("How each table was read",
                        [("Table", ""), ("File", ""), ("Read as", ""), ("Header row", "num"), ("Rows", "num"),
                         ("Columns used", "num")],
                        [[f.table, f.file, f.read_as, f.header_row, f"{f.rows:,}", f.columns_used]
                         for f in files_frame.itertuples(index=False)], wide=True)
    personal = sorted({f"{s.path.name}: {c}" for s in raw.sources.values() for c in s.columns_personal})
    unused = sorted({f"{s.path.name}: {c}" for s in raw.sources.values() for c in s.columns_unused})

    missing = report.missingness
    child = missing[(missing["table"] == "child_assessments") & (missing["arm"] != "all")]
    groups = sorted(set(zip(child["arm"], child["wave"])), key=lambda g: (g[0] != "partnered", g[0], g[1]))
    wide = child.pivot_table(index="column", columns=["arm", "wave"], values="pct_missing", aggfunc="first")
    order = [c for c in load_rules("quality")["missingness"]["tables"]["child_assessments"] if c in wide.index]
    missing_rows = [[column, *[_fmt_pct(wide.loc[column].get(g)) for g in groups]] for column in order]
    missing_table = _html_table("Child assessments: percentage missing by arm and wave",
                                [("Variable", ""), *[(f"{arm}, {wave}", "num") for arm, wave in groups]],
                                missing_rows, wide=True)

    flagged = report.assessors[report.assessors["is_flagged"].astype(bool)] if len(report.assessors) else report.assessors
    assessors = _html_table("Assessors flagged",
                            [("Assessor", ""), ("Province", ""), ("Wave", ""), ("Assessments", "num"),
                             ("Mean ELOM total", "num"), ("Others' mean", "num"), ("Gap (SD)", "num"),
                             ("Most in a day", "num"), ("Why", "")],
                            [[a.assessor_id, a.province, a.wave, a.n_assessments, _fmt_num(a.mean_elom_total),
                              _fmt_num(a.others_mean), _fmt_num(a.gap_sd, 2), a.max_per_day,
                              a.reasons.replace("_", " ")] for a in flagged.itertuples(index=False)], wide=True)
    centres_flagged = report.centres[report.centres["is_flagged"]] if len(report.centres) else report.centres
    centres = _html_table("Centres flagged",
                          [("Centre", ""), ("Province", ""), ("Arm", ""), ("Baseline", "num"), ("Endline", "num"),
                           ("Followed up", "num"), ("Complete ELOM", "num"), ("Why", "")],
                          [[c.centre_id, c.province, c.arm, c.n_baseline, c.n_endline, _fmt_pct(c.follow_up_pct),
                            _fmt_pct(c.complete_elom_pct), c.reasons.replace("_", " ")]
                           for c in centres_flagged.itertuples(index=False)], wide=True)
    outliers = _html_table("Outliers by variable and group",
                           [("Variable", ""), ("Table", ""), ("Group", ""), ("Values", "num"), ("Low fence", "num"),
                            ("High fence", "num"), ("Outliers", "num")],
                           [[o.column, o.table, o.group, f"{o.n:,}", _fmt_num(o.low, 2), _fmt_num(o.high, 2),
                             o.n_outliers] for o in report.outliers.itertuples(index=False)], wide=True,
                           note="Groups with too few values are not screened (no fences).")
    schema_frame = report.schema if report.schema is not None else pd.DataFrame()
    schema = _html_table("Schema failures", [("Table", ""), ("Column", ""), ("Check", ""), ("Value", ""), ("Row", "num")],
                         [[s.table, s.column, s.check, s.failure_case, "" if pd.isna(s.row) else s.row]
                          for s in schema_frame.itertuples(index=False)] if len(schema_frame) else [])
    method = load_rules("quality")["outliers"]
    method_text = (f"outside Q1 − {method['iqr_multiplier']:g}×IQR and Q3 + {method['iqr_multiplier']:g}×IQR"
                   if outlier_method == "iqr" else f"more than {method['sd_multiplier']:g} SD from the mean")
    return {"folder": raw.folder.name, "generated": generated, "version": version, "lead": lead, "counts": counts,
            "workbook": WORKBOOK_NAME, "checks": checks, "rows": rows, "files": files,
            "codebook": raw.codebook.name if raw.codebook else "", "personal": personal, "unused": unused,
            "missing": missing_table, "assessors": assessors, "n_assessors": len(report.assessors),
            "centres": centres, "outliers": outliers, "outlier_method": method_text, "schema": schema}


def render_check_html(report: QualityReport, raw: RawData, clean: CleanData, *, generated: str,
                      outlier_method: str = "iqr") -> str:
    """The data-quality page (autoescaped: text from the data is never markup)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from . import __version__

    env = Environment(loader=FileSystemLoader(str(package_templates_dir())), autoescape=True, undefined=StrictUndefined,
                      keep_trailing_newline=True)
    context = _context(report, raw, clean, generated, __version__, outlier_method)
    return env.get_template("check.html.j2").render(**context)


def write_check_report(out_dir: Path, report: QualityReport, raw: RawData, clean: CleanData, *,
                       outlier_method: str = "iqr", generated: str | None = None) -> dict[str, Path]:
    """Write the page, the workbook, the summary CSV and the cleaning log into ``out_dir``."""
    out_dir = Path(out_dir)
    generated = generated or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    paths = {"html": out_dir / HTML_NAME, "workbook": out_dir / WORKBOOK_NAME, "summary": out_dir / SUMMARY_PATH,
             "checks": out_dir / CHECKS_PATH, "log": out_dir / LOG_NAME}
    _write_csv(clean.log, paths["log"])
    _write_csv(cleaning_summary(clean.log), paths["summary"])
    _write_csv(report.summary, paths["checks"])
    write_flags_workbook(paths["workbook"], report, raw, clean, generated)
    page = render_check_html(report, raw, clean, generated=generated, outlier_method=outlier_method)
    _atomic_write_bytes(paths["html"], page.encode("utf-8"))
    return paths


def _refuse_output_inside_data(data_dir: Path, out_dir: Path) -> None:
    data, out = data_dir.resolve(), out_dir.resolve()
    if out == data or data in out.parents:
        raise InputError(out_dir, "the output folder may not be the data folder or inside it "
                                  "(raw data is never written to); choose another --out")


def run_check(data_dir: Path | str, out_dir: Path | str, *, outlier_method: str | None = None) -> CheckResult:
    """Read, clean, check and write the data-quality report of one data folder.

    Raises
    ------
    InputError
        When the input cannot be used at all (one line: file, column, problem), or
        when ``out_dir`` is the data folder or inside it.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if data_dir.is_dir():
        _refuse_output_inside_data(data_dir, out_dir)
    raw = read_data_folder(data_dir)
    clean = clean_all(raw.tables, raw.rules)
    schema = schema_failures(clean.tables, raw.rules)
    tables = clean.tables
    treatment = derive_treatment(tables["centres"], tables["partnerships"], tables["child_assessments"])
    method = outlier_method or load_rules("quality")["outliers"]["method"]
    report = check_quality(clean, treatment=treatment, schema=schema, cleaning_rules=raw.rules, outlier_method=method)
    paths = write_check_report(out_dir, report, raw, clean, outlier_method=method)
    counts = {"errors": int((report.flags["severity"] == "error").sum()),
              "warnings": int((report.flags["severity"] == "warning").sum()),
              "schema_failures": len(schema)}
    return CheckResult(out_dir=out_dir, html=paths["html"], workbook=paths["workbook"], summary=paths["summary"],
                       checks=paths["checks"], log=paths["log"], quality=report, counts=counts)

