"""`evalkit check`: the HTML page, the flags workbook, the summary CSV, and raw files untouched."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from evalkit.checkreport import CHECKS_PATH, HTML_NAME, STATUS_CHOICES, SUMMARY_PATH, WORKBOOK_NAME, run_check
from evalkit.cli import main
from conftest import SAMPLE as DATA_RAW
from evalkit.hashing import sha256_file
from evalkit.quality import CLEANING_SUMMARY_COLUMNS, FLAG_COLUMNS, SUMMARY_COLUMNS

FIXTURES = Path(__file__).parent / "fixtures"
PERSONAL = ["Zoë Ndlovu", "Musa Adams", "Thandi Mokoena", "082 111 2222", "072 815 4478", "+27 72 270 2601"]
_NETWORK = re.compile(r"""(?:\b(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//)|url\(\s*["']?\s*(?:https?:)?//""",
                      re.IGNORECASE)


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The canonical fixture plus text that must never become markup or a formula."""
    folder = tmp_path_factory.mktemp("hostile") / "data"
    shutil.copytree(FIXTURES / "canonical", folder)
    centres = pd.read_csv(folder / "centres.csv", dtype=str, keep_default_na=False)
    centres.loc[0, "centre_name"] = '=HYPERLINK("http://evil.example/x","Click me")'
    centres.loc[1, "centre_name"] = "<script>alert('x')</script> Little Stars"
    centres["<img src=x onerror=alert(1)>"] = "unused"
    centres.to_csv(folder / "centres.csv", index=False)
    children = pd.read_csv(folder / "child_assessments.csv", dtype=str, keep_default_na=False)
    children.loc[children["assessor_id"] == "A1", "assessor_id"] = "@SUM(A1:A9)"
    children.to_csv(folder / "child_assessments.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def checked(hostile, tmp_path_factory):
    before = _snapshot(hostile)
    out = tmp_path_factory.mktemp("check-out")
    code = main(["check", "--data", str(hostile), "--out", str(out)])
    return hostile, out, before, code


def test_exit_status_and_every_output(checked):
    _, out, _, code = checked
    assert code == 0
    for name in (HTML_NAME, WORKBOOK_NAME, str(SUMMARY_PATH), str(CHECKS_PATH), "cleaning_log.csv"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp"))


def test_raw_files_are_byte_identical(checked):
    data, _, before, _ = checked
    assert _snapshot(data) == before


def test_html_is_self_contained_escaped_and_has_no_personal_data(checked):
    _, out, _, _ = checked
    page = (out / HTML_NAME).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="en">' in page
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the unused column's name, escaped
    assert not _NETWORK.search(page)
    assert "<style>" in page and "<link" not in page
    for value in PERSONAL:
        assert value not in page
    assert "respondent_phone" in page  # the name of a dropped column may be shown, never its values


def test_workbook_flags_sheet_and_formula_safety(checked):
    _, out, _, _ = checked
    workbook = openpyxl.load_workbook(out / WORKBOOK_NAME)
    assert workbook.sheetnames == ["Read me", "Flags", "Assessors", "Centres", "Missingness", "Outliers", "Rows",
                                   "Files", "Rules"]
    flags = workbook["Flags"]
    header = [c.value for c in flags[1]]
    assert header == [*FLAG_COLUMNS, "status", "comment"]
    validations = flags.data_validations.dataValidation
    assert validations and all(choice in validations[0].formula1 for choice in STATUS_CHOICES)
    texts = []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts.append(cell.value)
                    if cell.value[:1] in "=+@" or (cell.value[:1] == "-" and not re.fullmatch(r"-[\d.,]+", cell.value)):
                        raise AssertionError(f"unprotected formula-like text in {sheet.title}!{cell.coordinate}: "
                                             f"{cell.value!r}")
    joined = "\n".join(texts)
    assert "'=HYPERLINK(" in joined and "'@SUM(A1:A9)" in joined
    for value in PERSONAL:
        assert value not in joined
    rows = list(flags.iter_rows(min_row=2, values_only=True))
    assert rows and all(r[header.index("status")] == "open" for r in rows)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # flag ids in order


def test_summary_csv_and_log(checked):
    data, out, _, _ = checked
    counts = pd.read_csv(out / SUMMARY_PATH)
    assert list(counts.columns) == CLEANING_SUMMARY_COLUMNS
    log_counts = pd.read_csv(out / "cleaning_log.csv").groupby(["table", "action", "rule"]).size()
    assert counts.set_index(["table", "action", "rule"])["n_rows"].sort_index().tolist() == log_counts.tolist()
    summary = pd.read_csv(out / CHECKS_PATH)
    assert list(summary.columns) == SUMMARY_COLUMNS
    account = summary[summary["check"] == "row_account"].set_index("table")
    assert account.loc["child_assessments", "n"] == 14 and account.loc["child_assessments", "n_flagged"] == 4
    log = pd.read_csv(out / "cleaning_log.csv", dtype=str, keep_default_na=False)
    assert {"formula_like_text", "markup_in_text"} <= set(log["rule"])
    assert log.loc[log["rule"] == "formula_like_text", "old_value"].str.startswith("'").all()
    text = "".join((out / name).read_text(encoding="utf-8") for name in ("cleaning_log.csv", SUMMARY_PATH, CHECKS_PATH))
    for value in PERSONAL:
        assert value not in text


def test_kobo_folder_checks_and_stays_untouched(tmp_path):
    folder = tmp_path / "kobo"
    shutil.copytree(FIXTURES / "kobo", folder)
    before = _snapshot(folder)
    result = run_check(folder, tmp_path / "out")
    assert _snapshot(folder) == before
    page = result.html.read_text(encoding="utf-8")
    assert "codebook.yml" in page and "centre/contact/principal_phone" in page
    assert "082 111 2222" not in page


def test_the_shipped_sample_checks_without_writing_to_it(tmp_path):
    before = _snapshot(DATA_RAW)
    result = run_check(DATA_RAW, tmp_path / "out", outlier_method="sd")
    assert _snapshot(DATA_RAW) == before
    assert result.counts["schema_failures"] == 0
    assert set(result.quality.outliers["method"]) == {"sd"}


def test_output_inside_the_data_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "data"
    shutil.copytree(FIXTURES / "canonical", folder)
    before = _snapshot(folder)
    assert main(["check", "--data", str(folder), "--out", str(folder / "check")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "may not be the data folder or inside it" in err[0]
    assert _snapshot(folder) == before and not (folder / "check").exists()


def test_unusable_input_is_one_line_and_debug_shows_the_traceback(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(FIXTURES / "canonical", folder)
    (folder / "centres.csv").write_text("centre_id,setting\nC1,urban\n")
    args = [sys.executable, "-m", "evalkit", "check", "--data", str(folder), "--out", str(tmp_path / "out")]
    plain = subprocess.run(args, capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    lines = plain.stderr.strip().splitlines()
    assert len(lines) == 1 and "centres.csv" in lines[0] and "'province'" in lines[0]
    debug = subprocess.run([*args, "--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_the_cleaning_counts_are_what_the_run_reports_read(checked):
    from evalkit import reporting

    _, out, _, _ = checked
    log = pd.read_csv(out / "cleaning_log.csv", dtype=str, keep_default_na=False)
    summary = pd.read_csv(out / SUMMARY_PATH)
    pd.testing.assert_frame_equal(reporting.data_quality_summary_frame(summary), reporting.data_quality_frame(log))
