"""Cleaning rules: harmonisation, missing codes, dates, duplicates, unit slips, checks, the log."""

import copy
import numpy as np
import pandas as pd
import pytest

from evalkit.cleaning import (
    LOG_COLUMNS,
    CleaningLog,
    clean_all,
    clean_centres,
    clean_child_assessments,
    clean_parent_survey,
    clean_partnerships,
    formula_safe,
    harmonise_category,
    harmonise_province,
    missing_code_reasons,
    parse_dates,
)
from conftest import REPO as PROJECT_ROOT
from evalkit.config import load_rules


@pytest.mark.parametrize("value, expected", [
    ("EC", "Eastern Cape"), ("e. cape", "Eastern Cape"), ("  Eastern Cape Province ", "Eastern Cape"),
    ("Kwazulu Natal", "KwaZulu-Natal"), ("KZN", "KwaZulu-Natal"), ("NL", "KwaZulu-Natal"),
    ("kwazulu-natal", "KwaZulu-Natal"), ("GT", "Gauteng"), ("gp", "Gauteng"), ("Vrystaat", "Free State"),
    ("Wes-Kaap", "Western Cape"), ("North-West", "North West"), ("NORTH WEST PROVINCE", "North West"),
    ("Northern Province", "Limpopo"), ("NC", "Northern Cape"), ("mpumalanga", "Mpumalanga"),
])
def test_province_variants(value, expected):
    assert harmonise_province(pd.Series([value])).iloc[0] == expected


@pytest.mark.parametrize("value", ["Gondwana", "", "Cape", "Natal Midlands"])
def test_unknown_province_is_not_guessed(value):
    assert pd.isna(harmonise_province(pd.Series([value])).iloc[0])


def test_every_variant_in_the_rules_maps_to_its_province():
    for province in load_rules("provinces")["provinces"]:
        values = pd.Series([province["name"], province["code"], *province["variants"]])
        assert (harmonise_province(values) == province["name"]).all(), province["name"]


def test_categories():
    values = pd.Series(["F", " male", "Girl", "x"])
    assert harmonise_category(values, "sex").tolist()[:3] == ["female", "male", "female"]
    assert pd.isna(harmonise_category(values, "sex").iloc[3])
    assert harmonise_category(pd.Series(["BASELINE", "End line"]), "wave").tolist() == ["baseline", "endline"]


def test_mixed_date_formats_are_day_first():
    parsed = parse_dates(pd.Series(["2025-02-03", "03/02/2025", "2025/02/03", "", "31/31/2025"]))
    assert parsed.iloc[:3].tolist() == [pd.Timestamp("2025-02-03")] * 3
    assert parsed.iloc[3:].isna().all()


def test_every_configured_missing_code_has_its_reason():
    values = pd.Series(["-99", "-98", "-97", "-88", "-77", "-999", "na", "N/A", "", "-99.0", "-99,0", "12", "-5"])
    reasons = missing_code_reasons(values).tolist()
    assert reasons[:6] == ["don't know", "refused", "not asked", "not applicable", "refused",
                           "no reason recorded"]
    assert reasons[6:11] == ["not available", "not available", "blank", "don't know", "don't know"]
    assert pd.isna(reasons[11]) and pd.isna(reasons[12])


def test_missing_code_list_is_configurable():
    rules = copy.deepcopy(load_rules("cleaning"))
    rules["missing_codes"] = {"": "blank", "-9": "skipped by design"}
    reasons = missing_code_reasons(pd.Series(["-9", "-99"]), rules)
    assert reasons.iloc[0] == "skipped by design" and pd.isna(reasons.iloc[1])


def test_formula_safe_quotes_formulas_but_not_numbers():
    values = pd.Series(["=HYPERLINK(\"http://x\",\"y\")", "+27 82", "@SUM(A1)", "-99", "-3.5", "Crèche", None])
    assert formula_safe(values).tolist() == ["'=HYPERLINK(\"http://x\",\"y\")", "'+27 82", "'@SUM(A1)", "-99",
                                             "-3.5", "Crèche", ""]


def _children(**overrides):
    base = {
        "child_id": ["K1", "K1", "K2", "K3"], "centre_id": ["C1"] * 4,
        "wave": ["baseline", "endline", "Baseline", "baseline"],
        "assessment_date": ["2025-02-10", "10/10/2025", "2025/02/11", "2025-02-12"],
        "date_of_birth": ["2020-09-01"] * 4, "sex": ["F", "F", "m", "male"],
        "child_name": ["Zoë N", "Zoë N", "Sipho M", "Lerato K"],
        "elom_gmd": ["10", "12", "-99", "9"], "elom_fmc": ["10"] * 4, "elom_enm": ["10"] * 4,
        "elom_cef": ["10"] * 4, "elom_ell": ["10"] * 4,
        "height_cm": ["105.2", "1071", "104", "NA"], "weight_kg": ["17", "17500", "16", "18"],
        "days_attended": ["50", "55", "70", "40"], "days_possible": ["60", "60", "60", "60"],
        "assessor_id": ["A1"] * 4,
    }
    base.update(overrides)
    return pd.DataFrame(base).astype(str)


def test_child_cleaning_rules_and_log():
    log = CleaningLog()
    out = clean_child_assessments(_children(), log, pd.Index(["C1"]))
    frame = log.to_frame()
    assert list(frame.columns) == LOG_COLUMNS
    assert "child_name" not in out.columns
    assert "Zoë" not in frame.to_csv() and "Sipho" not in frame.to_csv()
    by_id = out.set_index(["child_id", "wave"])
    assert np.isnan(by_id.loc[("K2", "baseline"), "elom_gmd"])
    assert by_id.loc[("K1", "endline"), "height_cm"] == pytest.approx(107.1)
    assert by_id.loc[("K1", "endline"), "weight_kg"] == pytest.approx(17.5)
    assert by_id.loc[("K1", "endline"), "assessment_date"] == pd.Timestamp("2025-10-10")
    assert np.isnan(by_id.loc[("K2", "baseline"), "days_attended"])  # 70 > 60 possible
    assert np.isnan(by_id.loc[("K2", "baseline"), "days_possible"])
    code = frame[frame["rule"] == "missing_code"].set_index("column")
    assert code.loc["elom_gmd", ["record_id", "old_value", "new_value", "reason", "action"]].tolist() == [
        "K2/baseline", "-99", "", "don't know", "changed"]
    assert code.loc["height_cm", "reason"] == "not available"
    slips = frame[frame["rule"] == "unit_slip"].set_index("column")
    assert slips.loc["height_cm", ["old_value", "new_value"]].tolist() == ["1071", "107.1"]
    assert slips.loc["weight_kg", ["old_value", "new_value"]].tolist() == ["17500", "17.5"]
    attended = frame[frame["rule"] == "attended_exceeds_possible"].iloc[0]
    assert attended["record_id"] == "K2/baseline" and attended["severity"] == "warning"
    assert "days_attended 70 > days_possible 60" in attended["reason"]
    # The wave was "Baseline" in the file; the log names the record by its canonical wave.
    assert set(frame.loc[frame["row"] == 3, "record_id"]) == {"K2/baseline"}


def test_exact_and_conflicting_duplicates():
    raw = _children()
    raw = pd.concat([raw, raw.iloc[[0]]], ignore_index=True)  # exact duplicate of row 1
    conflict = raw.iloc[[3]].copy()
    conflict["elom_fmc"] = "-99"  # less complete copy of K3 baseline
    raw = pd.concat([conflict, raw], ignore_index=True)
    log = CleaningLog()
    out = clean_child_assessments(raw, log, pd.Index(["C1"]))
    assert not out.duplicated(["child_id", "wave"]).any()
    frame = log.to_frame()
    assert (frame["rule"] == "exact_duplicate_row").sum() == 1
    dropped = frame[frame["rule"] == "conflicting_duplicate"]
    assert dropped["record_id"].tolist() == ["K3/baseline"] and dropped["row"].tolist() == [1]
    assert dropped["reason"].iloc[0] == ("same child_id/wave as row 5, which was kept (the more complete); "
                                         "differs in: elom_fmc")
    assert out.set_index(["child_id", "wave"]).loc[("K3", "baseline"), "elom_fmc"] == 10


def test_conflicting_duplicates_of_equal_completeness_keep_the_first():
    raw = _children(child_id=["K1", "K1", "K1", "K3"], wave=["baseline"] * 4, elom_gmd=["10", "11", "12", "9"],
                    height_cm=["105"] * 4, weight_kg=["17"] * 4, days_attended=["50"] * 4)
    log = CleaningLog()
    out = clean_child_assessments(raw, log, pd.Index(["C1"]))
    assert out.loc[out["child_id"] == "K1", "elom_gmd"].tolist() == [10]
    dropped = log.to_frame().query("rule == 'conflicting_duplicate'")
    assert dropped["row"].tolist() == [2, 3]
    assert dropped["reason"].str.contains("as row 1, which was kept \\(the first in the file\\)").all()
    assert dropped["reason"].str.contains("differs in: .*elom_gmd").all()


def test_birth_after_assessment_is_flagged():
    log = CleaningLog()
    out = clean_child_assessments(_children(date_of_birth=["2026-01-01"] * 4), log, pd.Index(["C1"]))
    assert out["date_of_birth"].isna().all()
    assert (log.to_frame()["rule"] == "birth_after_assessment").sum() == 4


def test_unknown_wave_row_is_dropped_once_and_not_flagged_as_a_category():
    log = CleaningLog()
    out = clean_child_assessments(_children(wave=["baseline", "endline", "midline", "-99"]), log, pd.Index(["C1"]))
    frame = log.to_frame()
    assert len(out) == 2
    dropped = frame[frame["rule"] == "unknown_wave"]
    assert dropped["old_value"].tolist() == ["midline", "-99"] and (dropped["action"] == "dropped").all()
    assert not ((frame["rule"] == "unknown_category") & (frame["column"] == "wave")).any()
    # Nothing else is logged for a dropped row.
    assert set(frame.loc[frame["row"].isin([3, 4]), "rule"]) == {"unknown_wave"}


def test_numbers_decimal_comma_whole_numbers_text_and_ranges():
    survey = pd.DataFrame({"response_id": ["R1", "R2", "R3", "R4"], "centre_id": ["C1"] * 4,
                           "submission_time": ["2025-09-29 09:24:29"] * 4,
                           "sat_overall": ["4", "3,0", "3.5", "seven"], "recommend": ["11", "-98", "9", "0"]})
    log = CleaningLog()
    out = clean_parent_survey(survey, log, pd.Index(["C1"]))
    assert out["sat_overall"].tolist()[:2] == [4, 3] and out["sat_overall"].iloc[2:].isna().all()
    assert np.isnan(out["recommend"].iloc[0]) and out["recommend"].iloc[2:].tolist() == [9, 0]
    frame = log.to_frame().set_index("rule")
    assert frame.loc["decimal_comma", ["record_id", "old_value", "new_value"]].tolist() == ["R2", "3,0", "3"]
    assert frame.loc["not_a_whole_number", "record_id"] == "R3"
    assert frame.loc["not_a_number", ["record_id", "old_value"]].tolist() == ["R4", "seven"]
    assert frame.loc["out_of_range", ["record_id", "old_value", "reason"]].tolist() == [
        "R1", "11", "outside [0, 10]: set missing"]
    assert frame.loc["missing_code", "reason"] == "refused"
    # An ISO date-time is already canonical: no date_format_to_iso row.
    assert "date_format_to_iso" not in frame.index


def test_dates_excel_serials_out_of_range_and_unparseable():
    partnerships = pd.DataFrame({"partnership_id": ["P1", "P2", "P3", "P4", "P5"], "centre_id": ["C1"] * 5,
                                 "partner_type": ["cbo"] * 5, "status": ["active"] * 5,
                                 "mou_signed_date": ["45658", "2205-01-01", "02/13/2025", "-99", "2025-01-01"]})
    log = CleaningLog()
    out = clean_partnerships(partnerships, log, pd.Index(["C1"]))
    assert out["mou_signed_date"].iloc[0] == pd.Timestamp("2025-01-01")
    assert out["mou_signed_date"].iloc[1:4].isna().all()
    frame = log.to_frame()
    rules = frame.groupby("rule")["record_id"].apply(list).to_dict()
    assert rules["excel_serial_date"] == ["P1"]
    assert rules["date_out_of_range"] == ["P2"]
    assert rules["unparseable_date"] == ["P3"]  # month first is never guessed
    assert rules["missing_code"] == ["P4"]
    assert rules["mou_date_missing"] == ["P2", "P3", "P4"]


def _tables():
    centres = pd.DataFrame({"centre_id": ["C1", "C2", "C3"], "province": ["GT", "Gondwana", "kzn"],
                            "setting": ["Urban ", "rural", "RURAL"], "practitioners": ["4", "3", "2"],
                            "practitioners_trained": ["5", "1", "-88"]}).astype(str)
    partnerships = pd.DataFrame({"partnership_id": ["P1", "P2"], "centre_id": ["C1", "C9"],
                                 "mou_signed_date": ["01/06/2025", "2025-01-01"], "status": ["Active", "active"]})
    survey = pd.DataFrame({"response_id": ["R1", "R1", "R2"], "centre_id": ["C1", "C1", "C3"],
                           "respondent_phone": ["082 123 4567"] * 2 + ["+27 82 000 1111"],
                           "sat_overall": ["5", "5", "-88"], "recommend": ["10", "10", "3"]})
    return {"centres": centres, "partnerships": partnerships, "child_assessments": _children(),
            "parent_survey": survey}


def test_clean_all_accounts_for_every_row():
    clean = clean_all(_tables())
    counts = clean.row_counts
    assert counts["centres"] == {"rows_in": 3, "rows_kept": 2, "rows_dropped": 1,
                                 "dropped_by_rule": {"unknown_province": 1}}
    assert counts["partnerships"]["dropped_by_rule"] == {"centre_id_not_in_centres": 1}  # C9 unknown
    assert counts["parent_survey"]["rows_kept"] == 2  # the exact duplicate of R1 is dropped
    assert counts["parent_survey"]["dropped_by_rule"] == {"exact_duplicate_row": 1}
    assert "respondent_phone" not in clean.tables["parent_survey"].columns
    assert "082 123" not in clean.log.to_csv()
    flagged = clean.log[clean.log["rule"] == "trained_exceeds_practitioners"]
    assert flagged["record_id"].tolist() == ["C1"]
    assert clean.tables["centres"].loc[0, "practitioners_trained"] == 5  # flagged, kept


def test_children_of_an_unknown_province_are_dropped_with_their_centre():
    tables = _tables()
    tables["child_assessments"] = _children(centre_id=["C1", "C2", "C2", "C3"])
    clean = clean_all(tables)
    dropped = clean.log.query("table == 'child_assessments' and action == 'dropped'")
    assert dropped["record_id"].tolist() == ["K1/endline", "K2/Baseline"]
    assert set(dropped["rule"]) == {"centre_id_not_in_centres"}


def test_duplicate_centre_ids_keep_the_most_complete_row():
    centres = pd.DataFrame({"centre_id": ["C1", "C1", "C2"], "province": ["GP", "GP", "WC"],
                            "setting": ["", "urban", "rural"], "enrolment": ["30", "30", "12"]})
    log = CleaningLog()
    out = clean_centres(centres, log)
    assert out["setting"].tolist() == ["urban", "rural"]
    assert log.to_frame().query("rule == 'conflicting_duplicate'")["row"].tolist() == [1]


def test_consistency_checks_are_rules_as_data():
    rules = copy.deepcopy(load_rules("cleaning"))
    rules["tables"]["child_assessments"]["checks"].append(
        {"rule": "height_below_weight", "when": ["height_cm", "<", "weight_kg"], "set_missing": ["weight_kg"]})
    log = CleaningLog(rules)
    raw = _children(height_cm=["15", "105", "104", "106"], weight_kg=["17", "17", "16", "18"])
    rules["ranges"]["height_cm"] = [10, 160]
    out = clean_child_assessments(raw, log, pd.Index(["C1"]), rules)
    fired = log.to_frame().query("rule == 'height_below_weight'")
    assert fired["record_id"].tolist() == ["K1/baseline"]
    assert np.isnan(out["weight_kg"].iloc[0]) and out["weight_kg"].iloc[1] == 17


def test_formula_and_markup_text_is_kept_flagged_and_quoted_in_the_log():
    centres = pd.DataFrame({"centre_id": ["C1", "C2", "C3"], "province": ["GP"] * 3, "setting": ["urban"] * 3,
                            "centre_name": ['=HYPERLINK("http://evil.example","click")',
                                            "<script>alert(1)</script> Crèche", "Little Stars"]})
    log = CleaningLog()
    out = clean_centres(centres, log)
    assert out["centre_name"].iloc[0].startswith("=HYPERLINK")  # data is kept as it was typed
    frame = log.to_frame().set_index("rule")
    assert frame.loc["formula_like_text", "record_id"] == "C1"
    assert frame.loc["formula_like_text", "old_value"].startswith("'=HYPERLINK")
    assert frame.loc["markup_in_text", "record_id"] == "C2"


def test_every_logged_rule_is_in_the_catalogue_and_documented():
    catalogue = load_rules("cleaning")["log_rules"]
    docs = (PROJECT_ROOT / "docs" / "cleaning.md").read_text(encoding="utf-8")
    for rule, spec in catalogue.items():
        assert spec["severity"] in {"error", "warning", "info"}, rule
        assert f"`{rule}`" in docs, f"{rule} is not documented in docs/cleaning.md"
    tables = _tables()
    tables["child_assessments"] = _children(date_of_birth=["2026-01-01"] + ["2020-09-01"] * 3,
                                            wave=["baseline", "endline", "Baseline", "x"])
    clean = clean_all(tables)
    for table in ("centres", "partnerships"):
        assert set(clean.log.loc[clean.log["table"] == table, "rule"]) <= set(catalogue)
    assert set(clean.log["rule"]) <= set(catalogue)
    assert clean.log["severity"].isin(["error", "warning", "info"]).all()


def test_cleaning_does_not_modify_its_input():
    tables = _tables()
    before = {name: frame.copy() for name, frame in tables.items()}
    clean_all(tables)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, before[name])


def test_arbitrary_text_never_raises():
    junk = ["", " ", "\x00", "NaN", "inf", "-inf", "1e400", "🙂", "<b>", "=1+1", "٣", "0x1F", "--5", "5-", ",", "."]
    n = len(junk)
    raw = pd.DataFrame({column: junk for column in _children().columns})
    raw["child_id"] = [f"K{i}" for i in range(n)]
    raw["centre_id"] = "C1"
    raw["wave"] = "baseline"
    clean = clean_child_assessments(raw, CleaningLog(), pd.Index(["C1"]))
    assert len(clean) == n
    assert clean["elom_gmd"].isna().all()
