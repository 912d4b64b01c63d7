"""Malformed inputs, each with its expected outcome.

Every case starts from the canonical fixture folder (tests/fixtures/canonical), breaks
one thing, and runs what a run does with a data folder: read (with the codebook),
clean, check the clean tables' schemas. The outcome is either one InputError line
naming the file, the column and the problem, or specific cleaning-log rows with the
rest of the data intact. In every case the raw files are byte-identical afterwards
and, when the data can be used, every input row is accounted for.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from evalkit.cleaning import CleanData, clean_all
from evalkit.cli import main
from evalkit.errors import InputError
from evalkit.hashing import sha256_file
from evalkit.readers import read_data_folder
from evalkit.schemas import validate_clean_tables

CANONICAL = Path(__file__).parent / "fixtures" / "canonical"


@dataclass(frozen=True)
class Raises:
    """The run stops with one InputError line naming ``file`` (and ``column``) and matching ``problem``."""

    file: str
    problem: str
    column: str | None = None


@dataclass(frozen=True)
class Logs:
    """The run goes on; the log holds ``n`` rows of ``rule`` in ``table`` (and ``check`` holds)."""

    table: str
    rule: str
    n: int
    action: str | None = None
    check: Callable[[CleanData], None] | None = field(default=None, compare=False)


def _csv(folder: Path, table: str) -> pd.DataFrame:
    path = folder / f"{table}.csv"
    if table == "parent_survey":
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=";", encoding="cp1252")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _write(folder: Path, table: str, frame: pd.DataFrame) -> None:
    (folder / f"{table}.csv").unlink(missing_ok=True)
    frame.to_csv(folder / f"{table}.csv", index=False)


def _edit(table: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        _write(folder, table, change(_csv(folder, table)))
    return apply


def _set(table: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame
    return _edit(table, change)


def _bytes(name: str, data: bytes, *, remove: str | None = None) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        if remove:
            (folder / remove).unlink()
        (folder / name).write_bytes(data)
    return apply


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _codebook(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "codebook.yml").write_text(text, encoding="utf-8")


def _excel_with_title_rows(folder: Path) -> None:
    frame = _csv(folder, "centres")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Centres"
    sheet.append(["ECD centre register, November 2025"])
    sheet.append(["Exported by the M&E team — do not edit"])
    sheet.append([])
    sheet.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        sheet.append([int(v) if v.isdigit() else v for v in row])
    sheet.append([None] * len(frame.columns))
    workbook.save(folder / "centres.xlsx")
    (folder / "centres.csv").unlink()


def _excel_and_codebook(text: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        _excel_with_title_rows(folder)
        (folder / "codebook.yml").write_text(text, encoding="utf-8")
    return apply


def _windows_1252_semicolons(folder: Path) -> None:
    frame = _csv(folder, "centres")
    frame.loc[0, "centre_name"] = "Crèche Fête – Ons Kleuterskool"
    frame.loc[1, "province"] = "\xa0Wes-Kaap\xa0"  # non-breaking spaces around the value
    text = frame.to_csv(index=False, sep=";", lineterminator="\r\n")
    (folder / "centres.csv").write_bytes(text.encode("cp1252"))


def _statistics_file(suffix: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        frame = _csv(folder, "child_assessments").drop(columns=["child_name"])
        numeric = ["elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell", "weight_kg", "days_attended",
                   "days_possible"]
        for column in numeric:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        frame["height_cm"] = pd.to_numeric(frame["height_cm"], errors="coerce")
        sex_codes = {"f": 1.0, "girl": 1.0, "m": 2.0, "male": 2.0}
        frame["sex"] = frame["sex"].str.lower().map(sex_codes).fillna(-99.0)
        frame.loc[0, "sex"] = -99.0  # "don't know", labelled in the file
        labels = {"sex": {1.0: "female", 2.0: "male", -99.0: "Don't know"}}
        path = folder / f"child_assessments{suffix}"
        if suffix == ".sav":
            pyreadstat.write_sav(frame, path, variable_value_labels=labels, missing_ranges={"elom_fmc": [-98]})
        else:
            pyreadstat.write_dta(frame, path, variable_value_labels=labels)
        (folder / "child_assessments.csv").unlink()
    return apply


def _sex_code_kept(clean: CleanData) -> None:
    log = clean.log
    coded = log[(log["rule"] == "missing_code") & (log["column"] == "sex")]
    assert coded["reason"].tolist() == ["don't know"]
    assert set(clean.tables["child_assessments"]["sex"].dropna()) == {"female", "male"}
    fmc = log[(log["rule"] == "missing_code") & (log["column"] == "elom_fmc")]
    assert fmc["old_value"].tolist() == ["-98"] and fmc["reason"].tolist() == ["refused"]


def _kept(table: str, column: str, expected: list) -> Callable[[CleanData], None]:
    def check(clean: CleanData) -> None:
        values = clean.tables[table][column].tolist()
        assert values[: len(expected)] == expected, values
    return check


def _excel_sheet(rows: list[list], sheet: str = "Sheet") -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        workbook = openpyxl.Workbook()
        workbook.active.title = sheet
        for row in rows:
            workbook.active.append(row)
        workbook.save(folder / "centres.xlsx")
        (folder / "centres.csv").unlink()
    return apply


def _reasons_of(clean: CleanData, column: str, first: list[str]) -> None:
    coded = clean.log[(clean.log["rule"] == "missing_code") & (clean.log["column"] == column)]
    assert coded["reason"].tolist()[: len(first)] == first


def _personal_extra_column(folder: Path) -> None:
    frame = _csv(folder, "child_assessments")
    frame["mother_cellphone"] = "083 999 0000"
    frame["Caregiver Name"] = "Nomsa Zulu"
    _write(folder, "child_assessments", frame)


def _no_personal_left(clean: CleanData) -> None:
    text = clean.log.to_csv() + "".join(t.to_csv() for t in clean.tables.values())
    assert "083 999 0000" not in text and "Nomsa Zulu" not in text


CASES: dict[str, tuple[Callable[[Path], None], Raises | Logs]] = {
    # ---------------------------------------------------------------- unusable input: one line, exit 1
    "empty file": (_bytes("centres.csv", b""), Raises("centres.csv", "file is empty")),
    "only blank lines": (_bytes("centres.csv", b"\r\n  \r\n\r\n"), Raises("centres.csv", "file is empty")),
    "binary garbage": (_bytes("centres.csv", bytes(range(256)) * 40), Raises("centres.csv", "binary data")),
    "control characters without NUL": (_bytes("centres.csv", b"\x01\x02\x03\x04\x05\x06\x07\x08" * 200),
                                       Raises("centres.csv", "binary data")),
    "missing file": (_remove("partnerships.csv"), Raises("partnerships.csv", "file is missing")),
    "table given twice": (_bytes("centres.xlsx", b"PK"), Raises("canonical", "given twice")),
    "old Excel format": (_bytes("centres.xls", b"\xd0\xcf\x11\xe0", remove="centres.csv"),
                         Raises("centres.xls", "old Excel (.xls) files cannot be read")),
    "missing required column": (_edit("centres", lambda f: f.drop(columns=["province"])),
                                Raises("centres.csv", "required column is missing", "province")),
    "header without rows": (_bytes("centres.csv", b"centre_id,province,setting\n"),
                            Raises("centres.csv", "has a header but no data rows")),
    "a column twice in the header": (_bytes("centres.csv", b"centre_id,province,Province,setting\nC1,GP,GP,urban\n"),
                                     Raises("centres.csv", "column appears twice", "province")),
    "row with too many fields": (_bytes("centres.csv", b"centre_id,province,setting\nC1,GP,urban\nC2,GP,urban,x\n"),
                                 Raises("centres.csv", "line 3 has 4 fields but the header has 3")),
    "unclosed quote": (_bytes("centres.csv", b'centre_id,province,setting\nC1,"GP,urban\nC2,GP,urban\n'),
                       Raises("centres.csv", "quote opened in data row 1 is never closed")),
    "corrupt xlsx": (_bytes("centres.xlsx", b"PK\x03\x04 not really a zip", remove="centres.csv"),
                     Raises("centres.xlsx", "cannot be read as an Excel workbook")),
    "empty Excel sheet": (_excel_sheet([]), Raises("centres.xlsx", "sheet 'Sheet' is empty")),
    "corrupt SPSS file": (_bytes("child_assessments.sav", b"$FL2 garbage", remove="child_assessments.csv"),
                          Raises("child_assessments.sav", "cannot be read as an SPSS file")),
    "corrupt Stata file": (_bytes("child_assessments.dta", b"<stata_dta> garbage", remove="child_assessments.csv"),
                           Raises("child_assessments.dta", "cannot be read as a Stata file")),
    "codebook that is not YAML": (_codebook("tables: [centres"), Raises("codebook.yml", "is not valid YAML")),
    "codebook mapping to no contract column": (
        _codebook("tables:\n  centres:\n    columns:\n      prov: provence\n"),
        Raises("codebook.yml", "not a column of centres in the data contract", "prov")),
    "codebook naming a missing file": (_codebook("tables:\n  centres:\n    file: register.xlsx\n"),
                                       Raises("register.xlsx", "file is missing: the codebook names it")),
    "codebook naming a missing sheet": (_excel_and_codebook("tables:\n  centres:\n    sheet: Register\n"),
                                        Raises("centres.xlsx", "has no sheet 'Register'")),
    # ---------------------------------------------------------------- usable input: logged, the rest intact
    "text in a numeric column": (_set("child_assessments", 0, "elom_gmd", "ten"),
                                 Logs("child_assessments", "not_a_number", 1, "flagged")),
    "wrong type: a word in a date column": (_set("child_assessments", 0, "assessment_date", "yesterday"),
                                            Logs("child_assessments", "unparseable_date", 1, "flagged")),
    "month-first date is never guessed": (_set("partnerships", 0, "mou_signed_date", "06/13/2024"),
                                          Logs("partnerships", "unparseable_date", 1, "flagged")),
    "unknown category code": (_set("child_assessments", 0, "sex", "X"),
                              Logs("child_assessments", "unknown_category", 1, "flagged")),
    "unknown province": (_set("centres", 0, "province", "Atlantis"),
                         Logs("centres", "unknown_province", 2, "dropped")),
    "unknown centre id": (_set("child_assessments", 0, "centre_id", "C404"),
                          Logs("child_assessments", "centre_id_not_in_centres", 3, "dropped")),
    "duplicate ids with different values": (
        _edit("partnerships", lambda f: pd.concat([f, f.iloc[[0]].assign(partner_name="Other Trust")],
                                                  ignore_index=True)),
        Logs("partnerships", "conflicting_duplicate", 1, "dropped")),
    "exact duplicate rows": (_edit("centres", lambda f: pd.concat([f, f.iloc[[2, 2]]], ignore_index=True)),
                             Logs("centres", "exact_duplicate_row", 2, "dropped")),
    "blank rows below the data": (_edit("centres", lambda f: pd.concat([f, f.iloc[[0, 0]].replace(r".*", "", regex=True)],
                                                                      ignore_index=True)),
                                  Logs("centres", "blank_row", 2, "dropped")),
    "blank record id": (_set("parent_survey", 2, "response_id", ""),
                        Logs("parent_survey", "missing_record_id", 1, "dropped")),
    "unknown wave": (_set("child_assessments", 0, "wave", "midline"),
                     Logs("child_assessments", "unknown_wave", 1, "dropped")),
    "Windows-1252 with semicolons and non-breaking spaces": (
        _windows_1252_semicolons,
        Logs("centres", "harmonise_province", 5, "changed",
             check=_kept("centres", "centre_name", ["Crèche Fête – Ons Kleuterskool"]))),
    "Excel with title rows above the header": (
        _excel_with_title_rows, Logs("centres", "unknown_province", 1, "dropped",
                                     check=_kept("centres", "enrolment", [40.0, 25.0, 18.0]))),
    "SPSS .sav with value labels and user-missing codes": (
        _statistics_file(".sav"), Logs("child_assessments", "missing_code", 5, check=_sex_code_kept)),
    "Stata .dta with value labels": (
        _statistics_file(".dta"), Logs("child_assessments", "missing_code", 5, check=_sex_code_kept)),
    "=HYPERLINK formula in a name": (
        _set("centres", 0, "centre_name", '=HYPERLINK("http://evil.example","Click")'),
        Logs("centres", "formula_like_text", 1, "flagged",
             check=_kept("centres", "centre_name", ['=HYPERLINK("http://evil.example","Click")']))),
    "<script> in a name": (_set("partnerships", 0, "partner_name", "<script>alert(1)</script>"),
                           Logs("partnerships", "markup_in_text", 1, "flagged")),
    "height in millimetres": (_set("child_assessments", 4, "height_cm", "1039"),
                              Logs("child_assessments", "unit_slip", 2, "changed")),
    "score out of range": (_set("child_assessments", 0, "elom_ell", "21"),
                           Logs("child_assessments", "out_of_range", 2, "flagged")),
    "rating that is not a whole number": (_set("parent_survey", 0, "sat_overall", "4.5"),
                                          Logs("parent_survey", "not_a_whole_number", 1, "flagged")),
    "Excel serial number in a date column": (_set("partnerships", 0, "mou_signed_date", "45444"),
                                             Logs("partnerships", "excel_serial_date", 1, "changed")),
    "date with a mistyped year": (_set("partnerships", 0, "mou_signed_date", "2204-06-01"),
                                  Logs("partnerships", "date_out_of_range", 1, "flagged")),
    "another organisation's missing codes": (
        _edit("child_assessments", lambda f: f.assign(weight_kg=["-999", "-77", "-97", *f["weight_kg"][3:]])),
        Logs("child_assessments", "missing_code", 8,
             check=lambda clean: _reasons_of(clean, "weight_kg", ["no reason recorded", "refused", "not asked"]))),
    "more trained than practitioners": (_set("centres", 2, "practitioners_trained", "9"),
                                        Logs("centres", "trained_exceeds_practitioners", 2, "flagged")),
    "personal data under other column names": (
        _personal_extra_column, Logs("child_assessments", "exact_duplicate_row", 1, check=_no_personal_left)),
}


def _run(folder: Path) -> CleanData:
    raw = read_data_folder(folder)
    clean = clean_all(raw.tables, raw.rules)
    validate_clean_tables(clean.tables, raw.rules)
    return clean


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in folder.iterdir() if p.is_file()}


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25
    assert sum(isinstance(e, Raises) for _, e in CASES.values()) >= 10
    assert sum(isinstance(e, Logs) for _, e in CASES.values()) >= 10


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input(tmp_path, name):
    breaker, expected = CASES[name]
    folder = tmp_path / "canonical"
    shutil.copytree(CANONICAL, folder)
    breaker(folder)
    before = _snapshot(folder)
    if isinstance(expected, Raises):
        with pytest.raises(InputError) as err:
            _run(folder)
        message = str(err.value)
        assert "\n" not in message
        assert expected.file in err.value.file, message
        assert expected.problem in message, message
        if expected.column:
            assert err.value.column == expected.column, message
    else:
        clean = _run(folder)
        log = clean.log
        hits = log[(log["table"] == expected.table) & (log["rule"] == expected.rule)]
        assert len(hits) == expected.n, hits
        if expected.action:
            assert set(hits["action"]) == {expected.action}
        for table, counts in clean.row_counts.items():
            assert counts["rows_in"] == counts["rows_kept"] + counts["rows_dropped"], table
            assert sum(counts["dropped_by_rule"].values()) == counts["rows_dropped"], table
        if expected.check:
            expected.check(clean)
    assert _snapshot(folder) == before


@pytest.mark.parametrize("name", [n for n, (_, e) in CASES.items() if isinstance(e, Raises)])
def test_unusable_input_gives_one_line_and_exit_1_from_the_command_line(tmp_path, capsys, name):
    breaker, expected = CASES[name]
    folder = tmp_path / "canonical"
    shutil.copytree(CANONICAL, folder)
    breaker(folder)
    assert main(["check", "--data", str(folder), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: ")
    assert expected.problem in lines[0] and "Traceback" not in captured.err


def test_a_missing_data_folder(tmp_path):
    with pytest.raises(InputError, match="data folder does not exist"):
        read_data_folder(tmp_path / "nowhere")


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from evalkit import readers

    folder = tmp_path / "canonical"
    shutil.copytree(CANONICAL, folder)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 100)
    with pytest.raises(InputError, match="file is too large"):
        read_data_folder(folder)


def test_random_bytes_never_crash_the_reader(tmp_path, rng):
    """Whatever the bytes, the outcome is a table or an InputError, never another exception."""
    folder = tmp_path / "canonical"
    shutil.copytree(CANONICAL, folder)
    for trial in range(30):
        size = int(rng.integers(1, 400))
        data = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
        if trial % 3 == 0:
            data = b"centre_id,province,setting\n" + data
        (folder / "centres.csv").write_bytes(data)
        try:
            _run(folder)
        except InputError as err:
            assert "\n" not in str(err)
