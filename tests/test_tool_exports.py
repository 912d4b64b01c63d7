"""Survey tool exports read as they come: group paths and meta columns with no codebook lines,
repeat groups linked to their parent rows, file globs, several files per table, zip downloads,
value labels that never replace numbers or valid codes, and sheets named in errors.

Small hand-made exports with hand-computed expectations; the exports made by the tools' own
code are in tests/test_exports.py."""

from __future__ import annotations

import shutil
import zipfile

import openpyxl
import pandas as pd
import pyreadstat
import pytest

from conftest import SAMPLE
from evalkit.errors import InputError
from evalkit.exports import leaf_name, parent_rows, resolve_file, zip_member
from evalkit.readers import read_data_folder


def _csv(path, rows, sep=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n", encoding="utf-8")


def _sample_folder(tmp_path, without=()):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("centres", "partnerships", "child_assessments", "parent_survey"):
        if name not in without:
            shutil.copy(SAMPLE / f"{name}.csv", folder / f"{name}.csv")
    return folder


def test_leaf_names_of_kobo_and_odk_headers():
    assert leaf_name("child/anthro/height_cm") == "height_cm"
    assert leaf_name("centre-location-province") == "province"
    assert leaf_name(" Centre_ID ") == "centre_id"


def test_a_glob_takes_the_newest_file_by_name_and_says_so(tmp_path):
    for stamp in ("2025-11-01", "2025-11-30", "2025-10-15"):
        (tmp_path / f"ECD register - {stamp}.xlsx").write_bytes(b"")
    path, note = resolve_file(tmp_path, "ECD register*.xlsx", "centres")
    assert path.name == "ECD register - 2025-11-30.xlsx"
    assert note.startswith("'ECD register*.xlsx' matches 3 files; read the newest by name, "
                           "ECD register - 2025-11-30.xlsx")
    assert resolve_file(tmp_path, "ECD register - 2025-11-01.xlsx", "centres") == (
        tmp_path / "ECD register - 2025-11-01.xlsx", "")
    with pytest.raises(InputError, match="no file matches"):
        resolve_file(tmp_path, "Centres*.csv", "centres")


def test_a_zip_member_is_the_main_csv_or_the_named_repeat(tmp_path):
    archive = tmp_path / "register.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("register.csv", "KEY,centre_id\nuuid:1,C1\n")
        zf.writestr("register-partners.csv", "PARENT_KEY,KEY,partner_name\nuuid:1,uuid:1/partners[1],A\n")
        zf.writestr("media/photo.jpg", b"\xff")
    assert zip_member(archive, None, "centres")[0] == "register.csv"
    name, data = zip_member(archive, "partners", "partnerships")
    assert name == "register-partners.csv" and data.startswith(b"PARENT_KEY")
    with pytest.raises(InputError, match="no CSV in the zip archive is 'teachers'"):
        zip_member(archive, "teachers", "partnerships")


def test_repeat_rows_find_their_parents_by_each_tools_link():
    parent = pd.DataFrame({"_index": ["1", "2", "3"], "centre_id": ["C1", "C2", "C3"]})
    child = pd.DataFrame({"_parent_index": ["3", "1", "9"]})
    positions, note = parent_rows(child, parent, child_where="partners", parent_where="centres")
    assert positions.tolist() == [2, 0, -1]
    assert note.startswith("1 row(s) point to a parent row that centres does not have (_parent_index 9)")
    odk = pd.DataFrame({"PARENT_KEY": ["uuid:b"]})
    assert parent_rows(odk, pd.DataFrame({"KEY": ["uuid:a", "uuid:b"]}), child_where="c",
                       parent_where="p")[0].tolist() == [1]
    with pytest.raises(InputError, match="no row's '_parent_index' matches"):
        parent_rows(pd.DataFrame({"_parent_index": ["7"]}), parent, child_where="c", parent_where="p")
    with pytest.raises(InputError, match="has no link to its parent"):
        parent_rows(pd.DataFrame({"x": ["1"]}), parent, child_where="c", parent_where="p")


def _kobo_register(path):
    """A Kobo XLSX export: centres with a partners repeat in its own sheet, group paths, meta."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "ECD centre register"
    ws.append(["start", "end", "centre/centre_id", "centre/location/province", "centre/setting",
               "centre/centre_name", "_id", "_uuid", "_submission_time", "_validation_status", "_index"])
    ws.append(["2025-02-03", "2025-02-03", "C1", "gp", "urban", "Siyakhula", "11", "u-1",
               "2025-02-03T10:14:53", "", "1"])
    ws.append(["2025-02-03", "2025-02-03", "C2", "kzn", "rural", "Little Stars", "12", "u-2",
               "2025-02-03T11:14:53", "", "2"])
    rep = wb.create_sheet("partners")
    rep.append(["partners/partner_name", "partners/partner_type", "partners/mou_signed_date", "partners/status",
                "_index", "_parent_index", "_parent_table_name", "_submission__uuid"])
    rep.append(["Wellness Co", "wellness", "2024-05-01", "active", "1", "2", "ECD centre register", "u-2"])
    rep.append(["City", "municipality", "2024-06-01", "active", "2", "1", "ECD centre register", "u-1"])
    wb.save(path)


def test_a_kobo_workbook_with_a_repeat_sheet_needs_only_its_files_sheets_and_parent(tmp_path):
    folder = _sample_folder(tmp_path, without=("centres", "partnerships"))
    _kobo_register(folder / "ECD_centre_register_-_all_versions_-_2025-11-30.xlsx")
    (folder / "codebook.yml").write_text(
        "tables:\n"
        "  centres: {file: 'ECD_centre_register*.xlsx', sheet: ECD centre register}\n"
        "  partnerships: {file: 'ECD_centre_register*.xlsx', sheet: partners, parent: centres}\n")
    raw = read_data_folder(folder)
    centres, partners = raw.tables["centres"], raw.tables["partnerships"]
    assert centres[["centre_id", "province", "setting", "centre_name"]].values.tolist() == [
        ["C1", "gp", "urban", "Siyakhula"], ["C2", "kzn", "rural", "Little Stars"]]
    assert partners[["partnership_id", "centre_id", "partner_name"]].values.tolist() == [
        ["1", "C2", "Wellness Co"], ["2", "C1", "City"]]
    notes = " ".join(raw.sources["partnerships"].notes)
    assert "centre_id taken from each row's parent in centres" in notes
    assert "partnership_id is the repeat row's own _index" in notes
    assert set(raw.sources["centres"].columns_meta) >= {"start", "end", "_id", "_uuid", "_submission_time",
                                                        "_validation_status", "_index"}


def test_an_odk_central_zip_with_a_repeat_csv(tmp_path):
    folder = _sample_folder(tmp_path, without=("centres", "partnerships"))
    with zipfile.ZipFile(folder / "ECD centre register.zip", "w") as zf:
        zf.writestr("ECD centre register.csv",
                    "SubmissionDate,centre-centre_id,centre-location-province,centre-setting,meta-instanceID,"
                    "KEY,SubmitterID,Status,ReviewState\n"
                    "2025-02-03T10:14:53.000Z,C1,gp,urban,uuid:a,uuid:a,5,,\n"
                    "2025-02-03T11:14:53.000Z,C2,kzn,rural,uuid:b,uuid:b,5,,\n")
        zf.writestr("ECD centre register-partners.csv",
                    "partners-partnership_id,partners-partner_name,partners-mou_signed_date,partners-status,"
                    "PARENT_KEY,KEY\n"
                    "P9,City,2024-06-01,active,uuid:b,uuid:b/partners[1]\n")
    (folder / "codebook.yml").write_text(
        "tables:\n  centres: {file: ECD centre register.zip}\n"
        "  partnerships: {file: ECD centre register.zip, sheet: partners, parent: centres}\n")
    raw = read_data_folder(folder)
    assert raw.tables["centres"]["province"].tolist() == ["gp", "kzn"]
    assert raw.tables["partnerships"][["partnership_id", "centre_id"]].values.tolist() == [["P9", "C2"]]
    assert "keyed" not in raw.sources["centres"].columns_unused
    assert {"SubmissionDate", "meta-instanceID", "KEY", "SubmitterID", "ReviewState"} <= set(
        raw.sources["centres"].columns_meta)


def test_one_export_per_wave_with_constants(tmp_path):
    folder = _sample_folder(tmp_path, without=("child_assessments",))
    both = pd.read_csv(SAMPLE / "child_assessments.csv", dtype=str, keep_default_na=False)
    for wave in ("baseline", "endline"):
        both.loc[both["wave"].str.strip().str.lower() == wave].drop(columns="wave").to_csv(
            folder / f"ELOM {wave} 2025.csv", index=False)
    (folder / "codebook.yml").write_text(
        "tables:\n  child_assessments:\n    files:\n"
        "      - {file: 'ELOM baseline*.csv', constants: {wave: baseline}}\n"
        "      - {file: 'ELOM endline*.csv', constants: {wave: endline}}\n")
    raw = read_data_folder(folder)
    kids = raw.tables["child_assessments"]
    known = both["wave"].str.strip().str.lower().isin(["baseline", "endline"])
    assert len(kids) == int(known.sum())
    assert kids["wave"].value_counts().to_dict() == (
        both.loc[known, "wave"].str.strip().str.lower().value_counts().to_dict())
    assert raw.sources["child_assessments"].notes[0].startswith("stacked 2 files: ELOM baseline 2025.csv")


def test_labels_never_replace_numbers_or_valid_codes(tmp_path):
    folder = _sample_folder(tmp_path, without=("parent_survey",))
    survey = pd.read_csv(SAMPLE / "parent_survey.csv", sep=";", dtype=str, encoding="cp1252",
                         keep_default_na=False).head(50)
    frame = survey.drop(columns=["respondent_phone"]).copy()
    likert = {1.0: "Very dissatisfied", 2.0: "Dissatisfied", 3.0: "Neutral", 4.0: "Satisfied", 5.0: "Very satisfied"}
    for column in [c for c in frame.columns if c.startswith("sat_")]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    pyreadstat.write_dta(frame, str(folder / "parent_survey.dta"),
                         variable_value_labels={c: likert for c in frame.columns if c.startswith("sat_")})
    raw = read_data_folder(folder)
    got = raw.tables["parent_survey"]["sat_overall"]
    assert not got.str.contains("satisfied", case=False).any()
    expected = frame["sat_overall"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    assert got.tolist() == expected.tolist()


def test_xlsform_labels_apply_only_where_the_value_is_not_a_valid_code():
    from evalkit.codebook import _labels_for
    from evalkit.config import load_rules

    rules = load_rules("cleaning")
    labels = {"low": "R1-R200", "2": "Middle (R201-R800)"}
    assert _labels_for(labels, "centres", "fee_band", rules) == {"2": "Middle (R201-R800)"}
    assert _labels_for({"5": "Very satisfied"}, "parent_survey", "sat_overall", rules) == {}
    assert _labels_for({"gp": "Gauteng", "7": "Gauteng"}, "centres", "province", rules) == {"7": "Gauteng"}


def test_a_column_missing_from_the_chosen_sheet_names_the_sheets_that_have_it(tmp_path):
    folder = _sample_folder(tmp_path, without=("centres",))
    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.active.append(["about", "this export"])
    ws = wb.create_sheet("Register")
    ws.append(["centre_id", "province", "setting"])
    ws.append(["C1", "GP", "urban"])
    wb.save(folder / "centres.xlsx")
    (folder / "codebook.yml").write_text("tables:\n  centres: {sheet: Notes}\n")
    with pytest.raises(InputError) as caught:
        read_data_folder(folder)
    assert str(caught.value) == (f"{folder / 'centres.xlsx'}, column 'centre_id': required column is missing "
                                 "(after the codebook's renames) from sheet 'Notes'; the sheets that have it: "
                                 "Register")


def test_two_group_paths_with_one_leaf_need_the_codebook(tmp_path):
    folder = _sample_folder(tmp_path, without=("centres",))
    _csv(folder / "centres.csv", [["a/centre_id", "b/centre_id", "province", "setting"], ["C1", "C1", "gp", "urban"]])
    with pytest.raises(InputError, match="columns 'a/centre_id' and 'b/centre_id' could both be 'centre_id'"):
        read_data_folder(folder)
