"""Reading tables: encodings, delimiters, header rows, formats, value labels and one-line errors."""

import datetime as dt

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from evalkit.errors import InputError
from evalkit.hashing import sha256_file
from evalkit.readers import (
    RawData,
    contract_columns,
    find_table_file,
    read_data_folder,
    read_table,
)

CENTRES = "centre_id,province,setting\nC1,Gauteng,urban\nC2,KZN,rural\n"


def test_utf8_bom_and_comma(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CENTRES.encode())
    frame = read_table(path, "centres")
    assert list(frame.columns) == ["centre_id", "province", "setting"]
    assert frame["centre_id"].tolist() == ["C1", "C2"]


def test_windows_1252_with_semicolons(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_bytes("centre_id;province;setting;centre_name\nC1;Gauteng;urban;Crèche Siyakhula\n".encode("cp1252"))
    frame = read_table(path, "centres")
    assert frame.loc[0, "centre_name"] == "Crèche Siyakhula"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "cp1252", "utf-8"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_every_encoding_and_delimiter(tmp_path, encoding, delimiter):
    text = delimiter.join(["centre_id", "province", "setting", "centre_name"]) + "\r\n"
    text += delimiter.join(["C1", "Wes-Kaap", "urban", "Ons Kleuterskool – Crèche"]) + "\r\n"
    path = tmp_path / "centres.csv"
    path.write_bytes(text.encode(encoding))
    frame = read_table(path, "centres")
    assert frame.loc[0, "centre_name"] == "Ons Kleuterskool – Crèche"
    assert frame.loc[0, "province"] == "Wes-Kaap"


def test_decimal_commas_with_semicolons_stay_one_field(tmp_path):
    path = tmp_path / "child.csv"
    path.write_text("centre_id;province;setting;enrolment\nC1;GP;urban;3,5\n")
    assert read_table(path, "centres")["enrolment"].tolist() == ["3,5"]


def test_missing_codes_stay_text_for_the_cleaner(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("centre_id,province,setting,enrolment\nC1,GP,urban,NA\nC2,GP,urban,\n")
    frame = read_table(path, "centres")
    assert frame["enrolment"].tolist() == ["NA", ""]


def test_csv_title_rows_above_the_header_are_skipped(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("ECD centres, November 2025;;\nPrepared by the M&E team;;\n\n"
                    "centre_id;province;setting\nC1;GP;urban\n")
    frame = read_table(path, "centres")
    assert frame.to_dict("records") == [{"centre_id": "C1", "province": "GP", "setting": "urban"}]


def test_short_rows_are_padded_and_long_rows_are_an_error(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("centre_id,province,setting\nC1,GP\n")
    assert read_table(path, "centres")["setting"].tolist() == [""]
    path.write_text("centre_id,province,setting\nC1,GP,urban\nC2,GP,urban,Soweto\n")
    with pytest.raises(InputError, match="line 3 has 4 fields but the header has 3"):
        read_table(path, "centres")


def test_excel_table(tmp_path):
    path = tmp_path / "centres.xlsx"
    pd.DataFrame({"centre_id": ["C1"], "province": ["GP"], "setting": ["urban"]}).to_excel(path, index=False)
    assert read_table(path, "centres")["province"].tolist() == ["GP"]


def test_excel_title_row_dates_numbers_and_the_table_sheet(tmp_path):
    workbook = openpyxl.Workbook()
    notes = workbook.active
    notes.title = "Notes"
    notes.append(["This workbook holds the centre register."])
    sheet = workbook.create_sheet("Centres")
    sheet.append(["ECD centre register — November 2025"])
    sheet.append([])
    sheet.append(["Centre_ID ", "Province", "Setting", "Enrolment", "Opened", "Has_Channel"])
    sheet.append(["C1", "GP", "urban", 40, dt.datetime(2020, 1, 2), True])
    sheet.append(["C2", "KZN", "rural", 12.5, dt.datetime(2021, 3, 4, 10, 30), False])
    sheet.append([None] * 6)
    path = tmp_path / "centres.xlsx"
    workbook.save(path)
    frame = read_table(path, "centres")
    assert frame.to_dict("list") == {
        "centre_id": ["C1", "C2"], "province": ["GP", "KZN"], "setting": ["urban", "rural"],
        "enrolment": ["40", "12.5"], "opened": ["2020-01-02", "2021-03-04 10:30:00"],
        "has_channel": ["true", "false"]}


def test_stata_table_with_value_labels(tmp_path):
    path = tmp_path / "centres.dta"
    frame = pd.DataFrame({"centre_id": ["C1", "C2"], "province": pd.Categorical(["Gauteng", "Limpopo"]),
                          "setting": ["urban", "rural"], "weight": np.array([17.3, 16.0], dtype="float32")})
    frame.to_stata(path, write_index=False)
    read = read_table(path, "centres")
    assert read["province"].tolist() == ["Gauteng", "Limpopo"]
    assert read["weight"].tolist() == ["17.3", "16"]  # single precision read as typed


@pytest.mark.parametrize("suffix", [".sav", ".dta"])
def test_value_labels_apply_except_to_missing_codes(tmp_path, suffix):
    frame = pd.DataFrame({"centre_id": ["C1", "C2", "C3"], "province": [1.0, 2.0, -99.0],
                          "setting": ["urban", "rural", "urban"], "enrolment": [30.0, -99.0, np.nan],
                          "opened": [dt.date(2020, 1, 2), dt.date(2021, 5, 6), None]})
    labels = {"province": {1: "Gauteng", 2: "Limpopo", -99: "Don't know"}}
    path = tmp_path / f"centres{suffix}"
    if suffix == ".sav":
        # -99 declared user-missing: it must stay -99, not become blank, so its reason is kept.
        pyreadstat.write_sav(frame, path, variable_value_labels=labels, missing_ranges={"enrolment": [-99]})
    else:
        pyreadstat.write_dta(frame, path, variable_value_labels=labels)
    read = read_table(path, "centres")
    assert read["province"].tolist() == ["Gauteng", "Limpopo", "-99"]
    assert read["enrolment"].tolist() == ["30", "-99", ""]
    assert read["opened"].tolist() == ["2020-01-02", "2021-05-06", ""]


def test_missing_required_column_names_file_and_column(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("centre_id,setting\nC1,urban\n")
    with pytest.raises(InputError) as err:
        read_table(path, "centres")
    assert "centres.csv" in str(err.value) and "'province'" in str(err.value)


def test_a_contract_column_twice_in_the_header_is_an_error(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("centre_id,province,Province ,setting\nC1,GP,WC,urban\n")
    with pytest.raises(InputError, match="column 'province': column appears twice"):
        read_table(path, "centres")


def test_empty_and_binary_files_are_errors(tmp_path):
    empty = tmp_path / "centres.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_table(empty, "centres")
    empty.write_bytes(b"\x00\x01\x02garbage\x00")
    with pytest.raises(InputError, match="binary"):
        read_table(empty, "centres")


def test_missing_table_and_two_formats(tmp_path):
    with pytest.raises(InputError, match="missing"):
        find_table_file(tmp_path, "centres")
    (tmp_path / "centres.csv").write_text(CENTRES)
    (tmp_path / "centres.xlsx").write_bytes(b"")
    with pytest.raises(InputError, match="given twice"):
        find_table_file(tmp_path, "centres")


def test_old_excel_files_get_a_plain_reason(tmp_path):
    (tmp_path / "centres.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError, match=r"old Excel \(.xls\) files cannot be read; save it as .xlsx"):
        find_table_file(tmp_path, "centres")


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_data_folder(tmp_path / "nope")


def test_sha256_of_known_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _folder(tmp_path, **tables):
    base = {
        "centres": "centre_id,province,setting,principal_cellphone,notes\nC1,GP,urban,082 000 0000,ok\n",
        "partnerships": "partnership_id,centre_id,mou_signed_date,status\nP1,C1,2025-01-01,active\n",
        "child_assessments": ("child_id,centre_id,wave,assessment_date,date_of_birth,sex,child_name,"
                              "elom_gmd,elom_fmc,elom_enm,elom_cef,elom_ell,_uuid\n"
                              "K1,C1,baseline,2025-02-03,2020-01-01,F,Zoë N,1,2,3,4,5,abc\n"),
        "parent_survey": "response_id,centre_id,respondent_phone\nR1,C1,082 123 4567\n",
    }
    base.update(tables)
    for name, text in base.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    return tmp_path


def test_folder_keeps_contract_columns_and_names_what_it_dropped(tmp_path):
    raw = read_data_folder(_folder(tmp_path))
    assert isinstance(raw, RawData)
    assert list(raw.tables["centres"].columns) == ["centre_id", "province", "setting"]
    assert "child_name" not in raw.tables["child_assessments"].columns
    assert "respondent_phone" not in raw.tables["parent_survey"].columns
    sources = raw.sources
    assert sources["centres"].columns_personal == ("principal_cellphone",)
    assert sources["centres"].columns_unused == ("notes",)
    assert sources["child_assessments"].columns_personal == ("child_name",)
    assert sources["child_assessments"].columns_meta == ("_uuid",)
    assert sources["parent_survey"].columns_personal == ("respondent_phone",)
    assert set(raw.hashes) == {"centres.csv", "partnerships.csv", "child_assessments.csv", "parent_survey.csv"}
    # No value of a dropped column is anywhere in what was read.
    text = repr(raw.tables) + repr(raw.sources)
    assert "082 000 0000" not in text and "Zoë" not in text and "082 123 4567" not in text


def test_contract_columns_include_personal_ones():
    assert contract_columns("child_assessments")[-1] == "child_name"
    assert "assessor_id" in contract_columns("child_assessments")


def test_reading_does_not_change_the_files(tmp_path):
    folder = _folder(tmp_path)
    before = {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in folder.iterdir()}
    read_data_folder(folder)
    assert {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in folder.iterdir()} == before


@pytest.mark.parametrize("text", [
    "a,b\r\nc,d\r\n" * 40,                      # Windows line ends across the sniffing window
    "title\n\n" + "x" * 70_000 + "\nrow\n",    # one line longer than the window
    "a\rb\rc",                                  # old Mac line ends, fewer lines than asked for
    "a\x0cb\u2028c\r\nd\n" * 30,               # every line break Python knows
    "",
])
def test_head_lines_match_splitlines_of_the_whole_text(text):
    from evalkit.readers import _head_lines

    for n in (1, 5, 30):
        assert _head_lines(text, n) == text.splitlines()[:n]


def test_utf8_csv_with_bom_crlf_and_quoted_line_break_reads_as_typed(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_bytes("\ufeffcentre_id,province,setting,centre_name\r\n"
                     "C1,Gauteng,urban,\"Zoë's\r\nplace\"\r\n\r\nC2, Limpopo ,rural,\r\n".encode("utf-8"))
    frame = read_table(path, "centres")
    assert frame.to_dict("list") == {"centre_id": ["C1", "C2"], "province": ["Gauteng", " Limpopo "],
                                     "setting": ["urban", "rural"], "centre_name": ["Zoë's\r\nplace", ""]}
