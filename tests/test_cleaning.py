"""Cleaning rules: harmonisation, missing codes, dates, duplicates, unit slips, the log."""

import numpy as np
import pandas as pd
import pytest

from evalkit.cleaning import (
    CleaningLog,
    clean_all,
    clean_child_assessments,
    harmonise_category,
    harmonise_province,
    parse_dates,
)
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


def _children(**overrides):
    base = {
        "child_id": ["K1", "K1", "K2", "K3"], "centre_id": ["C1"] * 4,
        "wave": ["baseline", "endline", "Baseline", "baseline"],
        "assessment_date": ["2025-02-10", "10/10/2025", "2025/02/11", "2025-02-12"],
        "date_of_birth": ["2020-09-01"] * 4, "sex": ["F", "F", "m", "male"], "child_name": ["Zoë N", "Zoë N", "Sipho M", "Lerato K"],
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
    assert "child_name" not in out.columns
    assert "Zoë" not in frame.to_csv() and "Sipho" not in frame.to_csv()
    by_id = out.set_index(["child_id", "wave"])
    assert np.isnan(by_id.loc[("K2", "baseline"), "elom_gmd"])
    assert by_id.loc[("K1", "endline"), "height_cm"] == pytest.approx(107.1)
    assert by_id.loc[("K1", "endline"), "weight_kg"] == pytest.approx(17.5)
    assert by_id.loc[("K1", "endline"), "assessment_date"] == pd.Timestamp("2025-10-10")
    assert np.isnan(by_id.loc[("K2", "baseline"), "days_attended"])  # 70 > 60 possible
    rules = set(frame["rule"])
    assert "missing_code -99 (don't know)" in rules
    assert any(r.startswith("unit_slip") for r in rules)
    assert "attended_exceeds_possible: attendance set missing" in rules
    code = frame[frame["rule"].str.startswith("missing_code -99")].iloc[0]
    assert (code["record_id"], code["column"], code["old_value"]) == ("K2/baseline", "elom_gmd", "-99")


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
    dropped = frame[frame["rule"].str.startswith("conflicting_duplicate")]
    assert dropped["record_id"].tolist() == ["K3/baseline"] and dropped["row"].tolist() == [1]
    assert out.set_index(["child_id", "wave"]).loc[("K3", "baseline"), "elom_fmc"] == 10


def test_birth_after_assessment_is_flagged():
    log = CleaningLog()
    out = clean_child_assessments(_children(date_of_birth=["2026-01-01"] * 4), log, pd.Index(["C1"]))
    assert out["date_of_birth"].isna().all()
    assert (log.to_frame()["rule"].str.startswith("birth_after_assessment")).sum() == 4


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
                                 "dropped_by_rule": {"unknown_province: never guessed, centre excluded": 1}}
    assert counts["partnerships"]["rows_dropped"] == 1  # C9 unknown
    assert counts["parent_survey"]["rows_kept"] == 2  # the exact duplicate of R1 is dropped
    assert counts["parent_survey"]["dropped_by_rule"] == {"exact_duplicate_row": 1}
    assert "respondent_phone" not in clean.tables["parent_survey"].columns
    assert "082 123" not in clean.log.to_csv()
    flagged = clean.log[clean.log["rule"] == "trained_exceeds_practitioners"]
    assert flagged["record_id"].tolist() == ["C1"]
