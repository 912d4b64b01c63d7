"""The codebook: a Kobo-style export gives the same clean tables as the canonical files."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from evalkit.cleaning import clean_all
from evalkit.codebook import apply_codebook, load_codebook, merge_rules, read_xlsform
from evalkit.config import TABLES, load_rules
from evalkit.errors import InputError
from evalkit.hashing import sha256_file
from evalkit.readers import read_data_folder

FIXTURES = Path(__file__).parent / "fixtures"
CANONICAL, KOBO = FIXTURES / "canonical", FIXTURES / "kobo"
PERSONAL_VALUES = ["Thandi Mokoena", "082 111 2222", "Zoë Ndlovu", "Musa Adams", "072 815 4478",
                   "+27 72 270 2601", "Sipho Dlamini"]


@pytest.fixture(scope="module")
def both():
    canonical, kobo = read_data_folder(CANONICAL), read_data_folder(KOBO)
    return (canonical, clean_all(canonical.tables, canonical.rules)), (kobo, clean_all(kobo.tables, kobo.rules))


@pytest.mark.parametrize("table", TABLES)
def test_kobo_export_and_canonical_files_give_identical_clean_tables(both, table):
    (_, canonical), (_, kobo) = both
    assert len(canonical.tables[table]) > 0
    pd.testing.assert_frame_equal(kobo.tables[table], canonical.tables[table])


def test_and_the_same_row_account(both):
    (_, canonical), (_, kobo) = both
    assert kobo.row_counts == canonical.row_counts
    assert kobo.row_counts["child_assessments"] == {
        "rows_in": 14, "rows_kept": 10, "rows_dropped": 4,
        "dropped_by_rule": {"centre_id_not_in_centres": 2, "conflicting_duplicate": 1, "exact_duplicate_row": 1}}


def test_the_fixture_exercises_the_mess(both):
    (_, canonical), _ = both
    children = canonical.tables["child_assessments"].set_index(["child_id", "wave"])
    assert children.loc[("K01", "endline"), "height_cm"] == pytest.approx(108.2)  # 1082 mm
    assert pd.isna(children.loc[("K02", "baseline"), "elom_gmd"])  # -99 / -999
    assert pd.isna(children.loc[("K06", "baseline"), "elom_gmd"])  # 25 is out of range
    assert pd.isna(children.loc[("K04", "baseline"), "date_of_birth"])  # born after the assessment
    assert children.loc[("K02", "endline"), "elom_fmc"] == 10  # the more complete duplicate kept
    centres = canonical.tables["centres"].set_index("centre_id")
    assert centres["feedback_channel"].tolist()[:4] == ["yes", "no", "yes", "yes"]
    assert pd.isna(centres.loc["C05", "feedback_channel"])
    assert "C06" not in centres.index  # Gondwana
    assert set(canonical.log["rule"]) >= {"unit_slip", "missing_code", "out_of_range", "birth_after_assessment",
                                          "attended_exceeds_possible", "trained_exceeds_practitioners",
                                          "conflicting_duplicate", "exact_duplicate_row", "unknown_province",
                                          "centre_id_not_in_centres", "mou_date_missing", "harmonise_spelling"}


def test_the_codebook_gives_minus_999_its_organisations_reason(both):
    (_, canonical), (kobo_raw, kobo) = both
    codes = kobo.log[kobo.log["rule"] == "missing_code"]
    assert set(codes.loc[codes["old_value"] == "-999", "reason"]) == {"don't know"}
    assert kobo_raw.rules["missing_codes"]["-999"] == "don't know"
    assert "-999" not in kobo_raw.rules["missing_codes_assumed"]


def test_no_personal_data_leaves_ingestion(both):
    (canonical_raw, canonical), (kobo_raw, kobo) = both
    text = "".join(frame.to_csv() for frame in [*kobo_raw.tables.values(), *kobo.tables.values(), kobo.log,
                                                 *canonical_raw.tables.values(), canonical.log])
    leaked = [value for value in PERSONAL_VALUES if value in text]
    assert not leaked
    assert kobo_raw.sources["centres"].columns_personal == ("centre/contact/principal_name",
                                                            "centre/contact/principal_phone")
    assert kobo_raw.sources["child_assessments"].columns_personal == ("child/name",)
    assert kobo_raw.sources["parent_survey"].columns_personal == ("parent/phone",)


def test_meta_columns_are_dropped_unless_mapped(both):
    _, (kobo_raw, _) = both
    child = kobo_raw.sources["child_assessments"]
    assert {"_uuid", "_id", "_index", "_submission_time", "_submitted_by", "start", "end", "deviceid"} <= set(
        child.columns_meta)
    survey = kobo_raw.sources["parent_survey"]
    assert survey.columns_used["_submission_time"] == "submission_time"
    assert kobo_raw.sources["centres"].sheet == "ECD centre register"
    assert kobo_raw.sources["partnerships"].sheet == "partners"
    assert kobo_raw.sources["child_assessments"].delimiter == "semicolon"


def test_reading_the_kobo_folder_leaves_it_byte_identical(tmp_path):
    folder = tmp_path / "kobo"
    shutil.copytree(KOBO, folder)
    before = {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in folder.iterdir()}
    raw = read_data_folder(folder)
    clean_all(raw.tables, raw.rules)
    assert {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in folder.iterdir()} == before
    assert set(before) <= set(raw.hashes) | {"make_fixtures.py"}


def test_xlsform_group_paths_labels_and_options():
    form = read_xlsform(KOBO / "centre_register_form.xlsx")
    assert form.labels["centre/location/province"]["kzn"] == "KwaZulu-Natal"
    assert form.labels["centre/setting"] == {"1": "Urban", "2": "Peri-urban", "3": "Rural"}
    assert form.labels["partners/partner_type"]["wellness"] == "Wellness / nutrition"  # inside a repeat
    assert form.options["centre/engagement/feedback_channels"] == ("suggestion_box", "whatsapp", "parent_forum",
                                                                    "none")
    child = read_xlsform(KOBO / "child_assessment_form.xlsx", separator=".")
    assert child.labels["child.sex"] == {"1": "Female", "2": "Male"}  # "begin group" with a space


def _write_codebook(folder: Path, text: str) -> Path:
    (folder / "codebook.yml").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("text, message", [
    ("tables: [", "is not valid YAML on line 1"),
    ("colums: {}", "unknown key 'colums' in the codebook"),
    ("tables:\n  children: {}", "tables.children is not a table of the data contract"),
    ("tables:\n  centres:\n    colums: {}", "unknown key 'colums' in tables.centres"),
    ("tables:\n  centres:\n    columns:\n      prov: provinse", "not a column of centres in the data contract"),
    ("tables:\n  centres:\n    columns:\n      a: province\n      b: province", "maps both 'a' and 'b'"),
    ("ranges:\n  height_cm: [160, 45]", "ranges.height_cm must be [low, high]"),
    ("ranges:\n  height_cm: tall", "ranges.height_cm must be [low, high]"),
    ("xlsform: form.xlsx", "XLSForm named in the codebook is missing"),
    ("tables:\n  centres:\n    select_multiple:\n      q: {to: feedback_channel}", "needs yes_if_any"),
    ("- a\n- b", "'the codebook' must be a mapping"),
])
def test_a_bad_codebook_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(InputError) as err:
        load_codebook(_write_codebook(tmp_path, text))
    assert "codebook.yml" in str(err.value) or "form.xlsx" in str(err.value)
    assert message in str(err.value)


def test_no_codebook_means_none(tmp_path):
    assert load_codebook(tmp_path) is None


def test_codebook_ranges_and_codes_merge_into_the_rules(tmp_path):
    codebook = load_codebook(_write_codebook(tmp_path, 'missing_codes:\n  "-99": refused\n  "-9": skipped\n'
                                                       "ranges:\n  height_cm: [60, 140]\n"))
    rules = merge_rules(load_rules("cleaning"), codebook)
    assert rules["missing_codes"]["-99"] == "refused" and rules["missing_codes"]["-9"] == "skipped"
    assert rules["ranges"]["height_cm"] == [60, 140]
    assert load_rules("cleaning")["missing_codes"]["-99"] == "don't know"  # the shipped rules are untouched


def _apply(tmp_path, codebook_text, frame, table="centres"):
    codebook = load_codebook(_write_codebook(tmp_path, codebook_text))
    return apply_codebook(frame.astype(str), table, codebook, tmp_path / f"{table}.csv", {})


def test_select_multiple_from_the_list_column_or_from_one_column_per_option(tmp_path):
    text = ("tables:\n  centres:\n    select_multiple:\n      eng/channels:\n"
            "        to: feedback_channel\n        yes_if_any: [whatsapp, forum]\n")
    listed = pd.DataFrame({"centre_id": ["C1", "C2", "C3", "C4"],
                           "eng/channels": ["whatsapp box", "none", "", "-99"],
                           "eng/channels/whatsapp": ["1", "0", "", ""], "eng/channels/none": ["0", "1", "", ""]})
    out, info = _apply(tmp_path, text, listed)
    assert out["feedback_channel"].tolist() == ["yes", "no", "", "-99"]  # a missing code stays a code
    assert "eng/channels/whatsapp" not in out.columns
    assert info["columns_used"]["eng/channels"] == "feedback_channel"
    ticks = listed.drop(columns=["eng/channels"])
    out, _ = _apply(tmp_path, text, ticks)
    assert out["feedback_channel"].tolist() == ["yes", "no", "", ""]


def test_select_multiple_option_unknown_to_the_form_is_passed_on_for_the_cleaner(tmp_path):
    shutil.copy(KOBO / "centre_register_form.xlsx", tmp_path / "form.xlsx")
    text = ("xlsform: form.xlsx\ntables:\n  centres:\n    select_multiple:\n      centre/engagement/feedback_channels:\n"
            "        to: feedback_channel\n        yes_if_any: [whatsapp]\n")
    frame = pd.DataFrame({"centre_id": ["C1", "C2", "C3"],
                          "centre/engagement/feedback_channels": ["whatsapp", "telepathy", "-99"]})
    out, _ = _apply(tmp_path, text, frame)
    assert out["feedback_channel"].tolist() == ["yes", "telepathy", "-99"]


def test_recodes_win_over_form_labels_and_strip_groups_finds_contract_names(tmp_path):
    text = ("strip_groups: true\ntables:\n  child_assessments:\n    values:\n      wave: {'1': baseline, '2': endline}\n"
            "      sex: {'9': female}\n")
    frame = pd.DataFrame({"grp/child_id": ["K1", "K2"], "grp/wave": ["1", "2"], "sex": ["9", "m"],
                          "other/thing": ["x", "y"]})
    out, info = _apply(tmp_path, text, frame, "child_assessments")
    assert out["wave"].tolist() == ["baseline", "endline"] and out["sex"].tolist() == ["female", "m"]
    assert out["child_id"].tolist() == ["K1", "K2"]
    assert info["columns_used"]["grp/child_id"] == "child_id"


def test_a_column_mapped_twice_into_one_contract_name_is_an_error(tmp_path):
    text = "tables:\n  centres:\n    columns:\n      prov: province\n"
    frame = pd.DataFrame({"centre_id": ["C1"], "prov": ["GP"], "province": ["WC"], "setting": ["urban"]})
    codebook = load_codebook(_write_codebook(tmp_path, text))
    folder = tmp_path
    frame.to_csv(folder / "centres.csv", index=False)
    for name in ("partnerships", "child_assessments", "parent_survey"):
        shutil.copy(CANONICAL / f"{name}.csv", folder / f"{name}.csv")
    assert codebook is not None
    with pytest.raises(InputError, match="column 'province': column appears twice"):
        read_data_folder(folder)


def test_missing_required_column_after_the_codebook_says_so(tmp_path):
    for name in TABLES:
        shutil.copy(CANONICAL / f"{name}.csv", tmp_path / f"{name}.csv")
    _write_codebook(tmp_path, "tables:\n  centres:\n    columns:\n      provincia: province\n")
    (tmp_path / "centres.csv").write_text("centre_id,setting\nC1,urban\n")
    with pytest.raises(InputError) as err:
        read_data_folder(tmp_path)
    assert "'province'" in str(err.value) and "after the codebook" in str(err.value)


def test_a_file_named_by_the_codebook_must_exist(tmp_path):
    _write_codebook(tmp_path, "tables:\n  centres:\n    file: register.csv\n")
    with pytest.raises(InputError, match="register.csv: file is missing: the codebook names it"):
        read_data_folder(tmp_path)
