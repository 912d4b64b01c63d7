"""No silent failure: a contract column most of whose values cannot be read stops the run.

Hand-made data folders: a date column in a format no rule knows, a numeric column typed as
words, category codes without their labels; and a column with fewer unreadable values, which
is flagged value by value as before and does not stop anything.
"""

import csv
from pathlib import Path

import pandas as pd
import pytest

from evalkit.cli import main
from evalkit.config import load_rules

N_CENTRES, N_CHILDREN = 4, 5  # children per centre, each assessed at baseline and endline
CHILD_COLUMNS = ["child_id", "centre_id", "wave", "assessment_date", "date_of_birth", "sex", "elom_gmd",
                 "elom_fmc", "elom_enm", "elom_cef", "elom_ell"]


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _children() -> list[dict]:
    rows = []
    for c in range(1, N_CENTRES + 1):
        for k in range(1, N_CHILDREN + 1):
            for wave, date in (("baseline", "2025-02-03"), ("endline", "2025-10-06")):
                rows.append({"child_id": f"K{c}{k}", "centre_id": f"C{c}", "wave": wave, "assessment_date": date,
                             "date_of_birth": "2020-05-17", "sex": "F" if k % 2 else "M",
                             **{d: str(8 + (c + k) % 5) for d in CHILD_COLUMNS[6:]}})
    return rows


def _folder(tmp_path: Path, **columns: list[str]) -> Path:
    """A small data folder; ``columns`` replaces child-assessment columns (one value per row, cycled)."""
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "centres.csv", [{"centre_id": f"C{c}", "province": "Gauteng", "setting": "urban" if c % 2 else
                                   "rural"} for c in range(1, N_CENTRES + 1)])
    _write(data / "partnerships.csv", [{"partnership_id": "P1", "centre_id": "C1", "mou_signed_date": "2024-03-01",
                                        "status": "active"}])
    children = _children()
    for column, values in columns.items():
        for i, row in enumerate(children):
            row[column] = values[i % len(values)]
    _write(data / "child_assessments.csv", children)
    _write(data / "parent_survey.csv", [{"response_id": "R1", "centre_id": "C1",
                                         "submission_time": "2025-09-29 09:24:29", "sat_overall": "5"}])
    return data


def _run(data: Path, out: Path, capsys) -> tuple[int, list[str]]:
    code = main(["run", "--data", str(data), "--out", str(out), "--no-reports", "--no-cache"])
    return code, capsys.readouterr().err.strip().splitlines()


def _check(data: Path, out: Path, capsys) -> pd.DataFrame:
    assert main(["check", "--data", str(data), "--out", str(out)]) == 0
    capsys.readouterr()
    return pd.read_csv(out / "results" / "data_quality_checks.csv", keep_default_na=False)


def _formats() -> str:
    return ", ".join(f"'{f}'" if " " in f or "," in f else f for f in load_rules("cleaning")["date_formats"])


def test_a_date_column_in_an_unknown_format_stops_the_run_with_one_line(tmp_path, capsys):
    data = _folder(tmp_path, assessment_date=["03.02.2025", "06.10.2025"])
    code, err = _run(data, tmp_path / "out", capsys)
    assert code == 1
    n = 2 * N_CENTRES * N_CHILDREN
    assert err == [f"evalkit: error: {data / 'child_assessments.csv'}, column 'assessment_date': {n} of {n} "
                   f"values cannot be read as dates (e.g. '03.02.2025'); formats tried: {_formats()}; add the "
                   "format to the codebook (date_formats)"]
    assert not (tmp_path / "out" / "results").exists()  # nothing published

    checks = _check(data, tmp_path / "check", capsys)
    error = checks[checks["check"] == "unreadable_column"]
    assert error[["table", "column", "n", "n_flagged", "severity"]].values.tolist() == [
        ["child_assessments", "assessment_date", n, n, "error"]]
    flags = pd.read_excel(tmp_path / "check" / "data_quality_flags.xlsx", sheet_name="Flags", dtype=str)
    flag = flags[flags["check"] == "unreadable_column"]
    assert flag[["severity", "column", "value"]].values.tolist() == [["error", "assessment_date", "03.02.2025"]]
    assert "cannot be read as dates" in flag["detail"].iloc[0]
    assert "unreadable column" in (tmp_path / "check" / "data_quality.html").read_text(encoding="utf-8")


def test_the_codebook_format_makes_the_same_folder_run(tmp_path, capsys):
    data = _folder(tmp_path, assessment_date=["03.02.2025", "06.10.2025"])
    (data / "codebook.yml").write_text('tables:\n  child_assessments:\n    date_formats: ["%d.%m.%Y"]\n',
                                       encoding="utf-8")
    code, err = _run(data, tmp_path / "out", capsys)
    assert code == 0, err
    log = pd.read_csv(tmp_path / "out" / "cleaning_log.csv", keep_default_na=False)
    assert not (log["rule"] == "unparseable_date").any()
    assert set(log.loc[log["column"] == "assessment_date", "new_value"]) == {"2025-02-03", "2025-10-06"}


def test_a_numeric_column_of_words_stops_the_run(tmp_path, capsys):
    data = _folder(tmp_path, elom_fmc=["five"])
    code, err = _run(data, tmp_path / "out", capsys)
    n = 2 * N_CENTRES * N_CHILDREN
    assert code == 1
    assert err == [f"evalkit: error: {data / 'child_assessments.csv'}, column 'elom_fmc': {n} of {n} values "
                   "cannot be read as numbers (e.g. 'five'); expected numbers such as 12 or 3.5 (or 3,5), or a "
                   "missing code; correct the export, or recode the values in the codebook (values)"]
    checks = _check(data, tmp_path / "check", capsys)
    error = checks[checks["check"] == "unreadable_column"]
    assert error[["column", "n_flagged", "severity"]].values.tolist() == [["elom_fmc", n, "error"]]


def test_category_codes_without_their_labels_stop_the_run(tmp_path, capsys):
    data = _folder(tmp_path, sex=["1", "2", "3"])  # "1" and "2" are not spellings of sex; "-99" would be a code
    code, err = _run(data, tmp_path / "out", capsys)
    assert code == 1
    assert len(err) == 1 and "column 'sex'" in err[0] and "cannot be read as categories (e.g. '1')" in err[0]
    assert "expected one of: female, male" in err[0]


def test_missing_codes_are_read_and_do_not_count(tmp_path, capsys):
    # Every score is -99 (don't know) or a number: nothing is unreadable, nothing stops.
    data = _folder(tmp_path, elom_ell=["-99", "-99", "-99", "7"])
    code, err = _run(data, tmp_path / "out", capsys)
    assert code == 0, err


def test_a_column_with_forty_percent_unreadable_values_is_flagged_as_before(tmp_path, capsys):
    values = ["03.02.2025", "03.02.2025", "06.10.2025", "06.10.2025", "2025-02-03",
              "2025-10-06", "2025-02-03", "2025-10-06", "2025-02-03", "2025-10-06"]
    data = _folder(tmp_path, assessment_date=values)
    code, err = _run(data, tmp_path / "out", capsys)
    assert code == 0, err
    log = pd.read_csv(tmp_path / "out" / "cleaning_log.csv", keep_default_na=False)
    bad = log[log["rule"] == "unparseable_date"]
    n = 2 * N_CENTRES * N_CHILDREN
    assert len(bad) == n * 4 // 10 and (bad["action"] == "flagged").all() and (bad["new_value"] == "").all()
    checks = _check(data, tmp_path / "check", capsys)
    assert not (checks["check"] == "unreadable_column").any()
    assert checks.loc[checks["check"] == "cleaning: unparseable_date", "n_flagged"].tolist() == [n * 4 // 10]


@pytest.mark.parametrize("share, stops", [(None, False), (0.9, False), (0.3, True)])
def test_the_share_is_a_rule(tmp_path, share, stops):
    from evalkit.cleaning import clean_all
    from evalkit.readers import read_data_folder

    raw = read_data_folder(_folder(tmp_path, assessment_date=["03.02.2025", "03.02.2025", "2025-02-03",
                                                              "2025-02-03", "2025-02-03"]))
    rules = {**raw.rules, "unreadable_share_error": share}
    unreadable = clean_all(raw.tables, rules).unreadable
    assert unreadable[["table", "column", "rule", "n_values", "n_unreadable"]].values.tolist() == [
        ["child_assessments", "assessment_date", "unparseable_date", 40, 16]]
    assert unreadable["share"].iloc[0] == pytest.approx(0.4)
    assert unreadable["is_error"].iloc[0] == stops
