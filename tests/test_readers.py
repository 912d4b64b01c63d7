"""Reading tables: encodings, delimiters, formats and one-line errors."""

import pandas as pd
import pytest

from evalkit.errors import InputError
from evalkit.readers import find_table_file, read_data_folder, read_table, sha256_file

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


def test_missing_codes_stay_text_for_the_cleaner(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("centre_id,province,setting,enrolment\nC1,GP,urban,NA\nC2,GP,urban,\n")
    frame = read_table(path, "centres")
    assert frame["enrolment"].tolist() == ["NA", ""]


def test_excel_table(tmp_path):
    path = tmp_path / "centres.xlsx"
    pd.DataFrame({"centre_id": ["C1"], "province": ["GP"], "setting": ["urban"]}).to_excel(path, index=False)
    assert read_table(path, "centres")["province"].tolist() == ["GP"]


def test_stata_table_with_value_labels(tmp_path):
    path = tmp_path / "centres.dta"
    frame = pd.DataFrame({"centre_id": ["C1", "C2"], "province": pd.Categorical(["Gauteng", "Limpopo"]),
                          "setting": ["urban", "rural"]})
    frame.to_stata(path, write_index=False)
    assert read_table(path, "centres")["province"].tolist() == ["Gauteng", "Limpopo"]


def test_missing_required_column_names_file_and_column(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("centre_id,setting\nC1,urban\n")
    with pytest.raises(InputError) as err:
        read_table(path, "centres")
    assert "centres.csv" in str(err.value) and "'province'" in str(err.value)


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


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_data_folder(tmp_path / "nope")


def test_sha256_of_known_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
