"""results/results.xlsx: every results table as a sheet, numbers as numbers, no formula injection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from evalkit.export import FORMULA_TRIGGERS, safe_cell, write_results_workbook
from test_render import write_prepared_run

HOSTILE = ['=HYPERLINK("http://evil.example","click")', "@SUM(A1:A9)", "+cmd|' /C calc'!A0", "-2+3",
           "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_a_spreadsheet_would_run_is_written_as_text(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value, expected", [
    (-1.5, -1.5), (np.float64(2.25), 2.25), (np.int64(7), 7), (True, True), (float("nan"), None),
    (None, None), (pd.NA, None), (pd.NaT, None), ("Gauteng", "Gauteng"), ("−1.0 to 2.0", "−1.0 to 2.0"),
])
def test_numbers_stay_numbers_and_missing_is_empty(value, expected):
    assert safe_cell(value) == expected


def _all_cells(book):
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            yield from row


def test_workbook_holds_every_results_table_with_numbers_as_numbers(tmp_path):
    out, _, estimates = write_prepared_run(tmp_path, full=True)
    hostile = estimates.copy()
    hostile.loc[0, "note"] = HOSTILE[0]
    hostile.loc[1, "note"] = HOSTILE[1]
    hostile.loc[2, "subgroup"] = "=1+1"
    hostile.to_csv(out / "results" / "estimates.csv", index=False)

    path = write_results_workbook(out)
    assert path == (out / "results" / "results.xlsx").resolve()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary file left behind"
    book = load_workbook(path)
    assert book.sheetnames == ["About", "estimates", "balance", "balance_joint", "power", "indicators",
                               "satisfaction", "scorecard", "milestones", "data_quality", "rows_kept_dropped"]

    sheet = book["estimates"]
    header = [c.value for c in sheet[1]]
    assert header == list(hostile.columns)
    assert sheet.max_row == len(hostile) + 1
    first = dict(zip(header, [c.value for c in sheet[2]]))
    assert first["region"] == "Gauteng" and first["estimate"] == 2.0 and first["ci_low"] == 0.5
    assert first["note"] == "'" + HOSTILE[0]
    cr2 = dict(zip(header, [c.value for c in sheet[4]]))
    assert cr2["ci_low"] == pytest.approx(-0.1)  # a negative number is a number, not text
    assert cr2["subgroup"] == "'=1+1"

    for cell in _all_cells(book):
        assert cell.data_type != "f", (cell.coordinate, cell.value)
        if isinstance(cell.value, str):
            assert not cell.value.startswith(FORMULA_TRIGGERS), (cell.parent.title, cell.coordinate, cell.value)

    rows = pd.DataFrame(book["rows_kept_dropped"].values)
    assert rows.iloc[1:, 0].tolist().count("child_assessments") == 3  # total + two reasons
    about = [c.value for c in book["About"]["A"]]
    assert "estimates" in about and "rows_kept_dropped" in about


def test_absent_tables_are_listed_and_data_quality_is_counted_from_the_log(tmp_path):
    out, _, _ = write_prepared_run(tmp_path)
    book = load_workbook(write_results_workbook(out))
    assert book.sheetnames == ["About", "estimates", "data_quality", "rows_kept_dropped"]
    quality = pd.DataFrame(book["data_quality"].values)
    quality.columns = quality.iloc[0]
    quality = quality.iloc[1:].set_index("rule")
    assert quality.loc["exact_duplicate_row", "n_rows"] == 25  # 25 log rows, counted
    assert quality.loc["province_alias", "n_rows"] == 14
    about = pd.DataFrame(book["About"].values)
    absent = about.loc[about[1] == "Not produced by this run.", 0].tolist()
    assert absent == ["balance", "balance_joint", "power", "indicators", "satisfaction", "scorecard",
                      "milestones"]
    text = " ".join(str(c.value) for c in _all_cells(book))
    assert "KID-" not in text and "GP01" not in text  # record ids never leave the log
