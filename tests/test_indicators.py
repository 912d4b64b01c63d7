"""Child-level indicators: age, ELOM total and bands at the exact cut-offs, attendance."""

import numpy as np
import pandas as pd
import pytest

from evalkit.indicators import (
    CENTRE_OUTCOME_COLUMNS,
    CHILD_OUTCOME_COLUMNS,
    CONTRACT_CHILD_COLUMNS,
    OUTCOME_FAMILY,
    REGION_INDICATOR_COLUMNS,
    age_in_months,
    attendance_rate,
    build_child_outcomes,
    centre_outcomes,
    elom_band,
    elom_total,
    is_on_track_band,
    outcome_family_table,
    region_indicators,
    sef_meets_standard,
    social_emotional_score,
    standardise_elom_band,
)


def test_age_in_months_uses_30_4375_days():
    dob = pd.Series(pd.to_datetime(["2020-01-01", None]))
    on = pd.Series(pd.to_datetime(["2024-07-01", "2024-07-01"]))
    assert age_in_months(dob, on).iloc[0] == pytest.approx(1643 / 30.4375)
    assert np.isnan(age_in_months(dob, on).iloc[1])


def test_elom_total_missing_when_any_domain_missing():
    frame = pd.DataFrame({"elom_gmd": [10, 10], "elom_fmc": [9.5, np.nan], "elom_enm": [8, 8],
                          "elom_cef": [7, 7], "elom_ell": [6.25, 6]})
    total = elom_total(frame)
    assert total.iloc[0] == pytest.approx(40.75) and np.isnan(total.iloc[1])


@pytest.mark.parametrize("total, age, band", [
    (36.02, 50.0, "Falling Behind"), (36.01, 50.0, "Falling Far Behind"),
    (46.32, 59.99, "On Track"), (46.31, 59.99, "Falling Behind"),
    (43.24, 60.0, "Falling Behind"), (43.23, 60.0, "Falling Far Behind"),
    (54.38, 69.5, "On Track"), (54.37, 69.5, "Falling Behind"),
    (46.32, 60.0, "Falling Behind"),  # the older band's higher cut-off applies from 60 months
])
def test_elom_band_at_exact_cutoffs(total, age, band):
    assert elom_band(pd.Series([total]), pd.Series([age])).iloc[0] == band


@pytest.mark.parametrize("age", [49.99, 70.0, np.nan])
def test_elom_band_outside_the_standards_is_missing(age):
    assert pd.isna(elom_band(pd.Series([50.0]), pd.Series([age])).iloc[0])


def test_attendance_rate():
    rate = attendance_rate(pd.Series([45.0, 10.0, 5.0]), pd.Series([60.0, 0.0, np.nan]))
    assert rate.iloc[0] == pytest.approx(0.75)
    assert rate.iloc[1:].isna().all()


# ----------------------------------------------------------------- both label sets
OLDER = {"Falling Far Behind": "At Risk", "Falling Behind": "Falling Behind", "On Track": "Achieving the Standard"}

BOUNDARY_CASES = [
    (36.02, 50.0, "Falling Behind"), (36.01, 50.0, "Falling Far Behind"),
    (46.32, 59.99, "On Track"), (46.31, 59.99, "Falling Behind"),
    (43.24, 60.0, "Falling Behind"), (43.23, 60.0, "Falling Far Behind"),
    (54.38, 69.99, "On Track"), (54.37, 69.99, "Falling Behind"),
    (0.0, 55.0, "Falling Far Behind"), (100.0, 65.0, "On Track"),
]


@pytest.mark.parametrize("total, age, band", BOUNDARY_CASES)
def test_elom_band_older_label_set_at_exact_cutoffs(total, age, band):
    older = elom_band(pd.Series([total]), pd.Series([age]), label_set="older").iloc[0]
    assert older == OLDER[band]
    # and the label sets are interchangeable on input
    assert standardise_elom_band(pd.Series([older])).iloc[0] == band
    assert bool(is_on_track_band(pd.Series([older])).iloc[0]) is (band == "On Track")


def test_elom_band_vectorised_over_all_cutoffs_at_once():
    totals = pd.Series([c[0] for c in BOUNDARY_CASES])
    ages = pd.Series([c[1] for c in BOUNDARY_CASES])
    assert elom_band(totals, ages).tolist() == [c[2] for c in BOUNDARY_CASES]


def test_elom_band_cutoffs_come_from_the_rules():
    rules = {"age_bands": [{"months": [50, 69], "falling_behind_from": 10, "on_track_from": 20}],
             "labels": {"far_behind": "FFB", "behind": "FB", "on_track": "OT"}}
    got = elom_band(pd.Series([9.99, 10.0, 19.99, 20.0]), pd.Series([55.0] * 4), rules)
    assert got.tolist() == ["FFB", "FB", "FB", "OT"]
    with pytest.raises(ValueError, match="label set"):
        elom_band(pd.Series([1.0]), pd.Series([55.0]), rules, label_set="older")


def test_standardise_elom_band_accepts_both_sets_in_any_case():
    got = standardise_elom_band(pd.Series([" at risk", "ACHIEVING THE STANDARD", "On Track",
                                           "falling behind", None, "Falling Far Behind"]))
    assert got.tolist()[:4] == ["Falling Far Behind", "On Track", "On Track", "Falling Behind"]
    assert pd.isna(got.iloc[4]) and got.iloc[5] == "Falling Far Behind"
    with pytest.raises(ValueError, match="Doing Fine"):
        standardise_elom_band(pd.Series(["On Track", "Doing Fine"]))


def test_is_on_track_band_is_nullable_boolean():
    got = is_on_track_band(pd.Series(["On Track", "Falling Behind", pd.NA, "Achieving the Standard"]))
    assert got.dtype == "boolean"
    assert got.tolist() == [True, False, pd.NA, True]


# ------------------------------------------------------------- social-emotional
def test_social_emotional_score_uses_the_first_column_present():
    frame = pd.DataFrame({"teacher_social_emotional": [10.0, np.nan], "elom_gmd": [1.0, 2.0]})
    assert social_emotional_score(frame).tolist()[0] == 10.0
    assert social_emotional_score(frame).name == "elom_sef"
    both = frame.assign(elom_sef=[3.0, 4.0])
    assert social_emotional_score(both).tolist() == [3.0, 4.0]
    assert social_emotional_score(frame[["elom_gmd"]]).isna().all()
    with pytest.raises((ValueError, TypeError)):
        social_emotional_score(pd.DataFrame({"elom_sef": ["high", "low"]}))


def test_sef_standard_at_the_exact_cutoff_and_missing_without_one():
    score = pd.Series([19.99, 20.0, np.nan])
    rules = {"social_emotional": {"column": "elom_sef", "meets_standard_from": 20}}
    assert sef_meets_standard(score, rules).tolist() == [False, True, pd.NA]
    assert sef_meets_standard(score).isna().all()  # the shipped rules set no cut-off


# ------------------------------------------------------------ child outcomes
def _lfa_median(sex: str, day: int) -> tuple[float, float]:
    """Median and S of the WHO length/height-for-age table (L = 1)."""
    import importlib
    row = importlib.import_module("pygrowup.tables.by_day.lfa").DATA[sex][day]
    return float(row["m"]), float(row["s"])


def _clean_tables():
    """Three children in two centres, one of them assessed twice; tables as cleaning returns them."""
    centres = pd.DataFrame({
        "centre_id": ["C1", "C2", "C3"], "province": ["Gauteng", "Limpopo", "Limpopo"],
        "district": ["Tshwane", "Waterberg", "Vhembe"], "setting": ["urban", "rural", "rural"],
        "registration_status": ["registered", "unregistered", pd.NA], "fee_band": ["low", "none", "none"],
        "feedback_channel": ["yes", "no", pd.NA], "enrolment": [40.0, 20.0, 10.0],
        "practitioners": [4.0, 0.0, 2.0], "practitioners_trained": [3.0, 0.0, np.nan],
        "parent_events": [2.0, 0.0, 1.0],
    })
    dob = pd.Timestamp("2019-01-01")
    day = 1700  # 55.85 months: the 50-59 band, WHO 2006 tables
    m_girl, s_girl = _lfa_median("female", day)
    m_boy, s_boy = _lfa_median("male", day)
    children = pd.DataFrame({
        "child_id": ["K1", "K1", "K2", "K3"], "centre_id": ["C1", "C1", "C1", "C2"],
        "wave": ["baseline", "endline", "endline", "endline"],
        "assessment_date": [dob + pd.Timedelta(days=d) for d in (day - 150, day, day, day)],
        "date_of_birth": [dob] * 4, "sex": ["female", "female", "female", "male"],
        "elom_gmd": [8.0, 10.0, 12.0, 5.0], "elom_fmc": [8.0, 10.0, 12.0, 5.0],
        "elom_enm": [8.0, 10.0, 12.0, 5.0], "elom_cef": [8.0, 10.0, 12.0, 5.0],
        "elom_ell": [8.0, 6.32, 2.0, np.nan],
        # K1 endline at the median (HAZ 0), K2 at HAZ -2.5, K3 at HAZ -6.5 (flagged)
        "height_cm": [m_girl * (1 - 0.5 * s_girl), m_girl, m_girl * (1 - 2.5 * s_girl), m_boy * (1 - 6.5 * s_boy)],
        "weight_kg": [16.0, 17.0, 15.0, 14.0],
        "days_attended": [40.0, 45.0, 30.0, 10.0], "days_possible": [50.0, 60.0, 60.0, 0.0],
        "assessor_id": ["A1"] * 4,
    })
    treatment = pd.DataFrame({"centre_id": ["C1", "C2", "C3"],
                              "is_partnered": pd.array([True, False, pd.NA], dtype="boolean"),
                              "exposure_months": [12.0, np.nan, np.nan],
                              "n_partnerships_qualifying": [1, 0, 0]})
    survey = pd.DataFrame({
        "response_id": ["R1", "R2", "R3", "R4", "R5"], "centre_id": ["C1", "C1", "C1", "C2", "C2"],
        "submission_time": pd.to_datetime(["2025-10-01", "2025-10-02", "2025-11-03", "2025-11-04", None]),
        "sat_communication": [5.0, 4.0, 3.0, 2.0, np.nan], "sat_safety": [5.0, 5.0, np.nan, 4.0, 3.0],
        "sat_learning": [4.0, 2.0, 1.0, np.nan, np.nan], "sat_staff_respect": [np.nan] * 5,
        "sat_responsiveness": [5.0, 5.0, 5.0, 5.0, 5.0], "sat_overall": [4.0, 3.0, 4.0, -88.0, np.nan],
        "recommend": [10.0, 9.0, 6.0, 7.0, np.nan],
    })
    return centres, children, treatment, survey


def test_build_child_outcomes_adds_indicator_columns_after_the_contract_columns():
    centres, children, treatment, _ = _clean_tables()
    out = build_child_outcomes(children, centres, treatment)
    assert list(out.columns) == CHILD_OUTCOME_COLUMNS
    assert CHILD_OUTCOME_COLUMNS[:len(CONTRACT_CHILD_COLUMNS)] == CONTRACT_CHILD_COLUMNS
    # totals 40 (baseline), 46.32 (endline, exactly the On Track cut-off), 50, missing
    assert out["elom_total"].tolist()[:3] == pytest.approx([40.0, 46.32, 50.0])
    assert out["elom_band"].tolist()[:3] == ["Falling Behind", "On Track", "On Track"]
    assert out["is_on_track"].tolist() == [False, True, True, pd.NA]
    assert out["haz"].tolist()[1:] == pytest.approx([0.0, -2.5, -6.5], abs=1e-9)
    assert out["is_stunted"].tolist() == [False, False, True, pd.NA]  # flagged HAZ: no class
    assert out["is_severely_stunted"].tolist() == [False, False, False, pd.NA]
    assert out["haz_flag"].tolist() == [False, False, False, True]
    for column in ("is_on_track", "is_stunted", "is_wasted", "is_underweight", "is_overweight"):
        assert out[column].dtype == "boolean"
    assert out["attendance_rate"].tolist()[:3] == pytest.approx([0.8, 0.75, 0.5])
    assert np.isnan(out["attendance_rate"].iloc[3])
    assert out["elom_sef"].isna().all() and out["is_sef_meeting_standard"].isna().all()
    assert out["region"].tolist() == ["Gauteng", "Gauteng", "Gauteng", "Limpopo"]
    assert "child_name" not in out.columns


def test_build_child_outcomes_carries_the_teacher_scale_when_present():
    centres, children, treatment, _ = _clean_tables()
    out = build_child_outcomes(children.assign(elom_sef=[20.0, 22.0, np.nan, 18.0]), centres, treatment,
                               level="district")
    assert out["elom_sef"].tolist()[:2] == [20.0, 22.0] and np.isnan(out["elom_sef"].iloc[2])
    assert out["elom_total"].tolist()[:3] == pytest.approx([40.0, 46.32, 50.0])  # not added to the total
    assert out["region"].tolist() == ["Tshwane", "Tshwane", "Tshwane", "Waterberg"]


# ---------------------------------------------------------------- region table
def _outcomes_frame() -> pd.DataFrame:
    """Hand-made child outcomes: region A (partnered, comparison) and a centre with no status."""
    return pd.DataFrame({
        "child_id": ["a1", "a2", "a3", "a4", "b1", "b2", "u1"],
        "centre_id": ["c1", "c1", "c2", "c2", "c3", "c3", "c9"],
        "region": ["A"] * 7,
        "wave": ["endline"] * 7,
        "is_partnered": pd.array([True, True, True, True, False, False, pd.NA], dtype="boolean"),
        **{d: [10.0, 8.0, 6.0, 12.0, 9.0, np.nan, 5.0] for d in ("elom_gmd", "elom_fmc", "elom_enm", "elom_cef")},
        "elom_ell": [10.0, 8.0, 6.0, 12.0, 9.0, np.nan, 5.0],
        "elom_total": [50.0, 40.0, 30.0, 60.0, 45.0, np.nan, 25.0],
        "elom_band": ["On Track", "Falling Behind", "Falling Far Behind", pd.NA, "Achieving the Standard", pd.NA,
                      "At Risk"],
        "haz": [0.0, -2.5, -3.5, -6.5, 1.0, np.nan, -1.0],
        "waz": [0.0] * 7, "whz": [0.0, -2.5, 2.5, 0.0, 0.0, np.nan, 0.0], "baz": [0.0] * 7,
        "haz_flag": [False, False, False, True, False, False, False],
        "waz_flag": [False] * 7, "whz_flag": [False] * 7, "baz_flag": [False] * 7,
        "attendance_rate": [0.5, 1.0, np.nan, 0.9, 0.8, 0.6, 0.7],
    })


def test_region_indicators_hand_computed():
    out = region_indicators(_outcomes_frame())
    assert list(out.columns) == REGION_INDICATOR_COLUMNS
    assert out["arm"].tolist() == ["comparison", "partnered", "unknown"]
    p = out.set_index("arm").loc["partnered"]
    assert (p["n_children"], p["n_centres"], p["n_with_elom_total"]) == (4, 2, 4)
    assert p["elom_total_mean"] == pytest.approx(45.0)
    assert p["elom_total_sd"] == pytest.approx(np.std([50, 40, 30, 60], ddof=1))
    assert p["n_with_band"] == 3
    assert p["on_track_pct"] == pytest.approx(100 / 3)
    assert p["falling_behind_pct"] == pytest.approx(100 / 3)
    assert p["falling_far_behind_pct"] == pytest.approx(100 / 3)
    # the flagged HAZ (-6.5) is left out of the mean and the prevalences
    assert p["n_with_haz"] == 3
    assert p["haz_mean"] == pytest.approx(-2.0)
    assert p["stunted_pct"] == pytest.approx(200 / 3)
    assert p["severely_stunted_pct"] == pytest.approx(100 / 3)
    assert p["wasted_pct"] == pytest.approx(25.0) and p["overweight_pct"] == pytest.approx(25.0)
    assert p["attendance_rate_mean"] == pytest.approx(0.8) and p["n_with_attendance"] == 3
    assert p["elom_gmd_mean"] == pytest.approx(9.0)
    c = out.set_index("arm").loc["comparison"]
    assert c["on_track_pct"] == pytest.approx(100.0)  # "Achieving the Standard" is On Track
    assert c["n_children"] == 2 and c["n_with_elom_total"] == 1
    assert np.isnan(c["elom_sef_mean"])


def test_region_indicators_same_with_or_without_the_added_columns():
    frame = _outcomes_frame()
    full = frame.assign(
        is_on_track=is_on_track_band(frame["elom_band"]),
        is_stunted=pd.array([False, True, True, pd.NA, False, pd.NA, False], dtype="boolean"),
        is_severely_stunted=pd.array([False, False, True, pd.NA, False, pd.NA, False], dtype="boolean"),
        is_wasted=pd.array([False, True, False, False, False, pd.NA, False], dtype="boolean"),
        is_underweight=pd.array([False] * 6 + [False], dtype="boolean"),
        is_overweight=pd.array([False, False, True, False, False, pd.NA, False], dtype="boolean"),
    )
    pd.testing.assert_frame_equal(region_indicators(frame), region_indicators(full))


# -------------------------------------------------------------- centre outcomes
def test_centre_outcomes_hand_computed():
    centres, children, treatment, survey = _clean_tables()
    child = build_child_outcomes(children, centres, treatment)
    out = centre_outcomes(centres, survey, treatment, child)
    assert list(out.columns) == CENTRE_OUTCOME_COLUMNS
    assert out["centre_id"].tolist() == ["C1", "C2", "C3"]
    c1, c2, c3 = (out.iloc[i] for i in range(3))
    # C1: 5 + 5 + 4 = 14 valid answers, 5 + 3 + 2 = 10 of them 4 or 5, summing to 23 + 19 + 13;
    # recommend 10, 9, 6 -> (2 promoters - 1 detractor) / 3
    assert c1["n_responses"] == 3 and c1["n_valid_answers"] == 14
    assert c1["customer_service_score_pct"] == pytest.approx(1000 / 14)
    assert c1["satisfaction_mean_index"] == pytest.approx(55 / 14)
    assert c1["nps"] == pytest.approx(100 / 3) and c1["n_recommend_valid"] == 3
    assert bool(c1["is_below_refresher_threshold"]) is True  # 71.4% < 75%
    # C2: -88 is not an answer: 2, 4, 5 and 3, 5 -> 3 of 5 top-2; recommend 7 only (a passive)
    assert c2["n_valid_answers"] == 5 and c2["customer_service_score_pct"] == pytest.approx(60.0)
    assert c2["satisfaction_mean_index"] == pytest.approx(19 / 5)
    assert c2["nps"] == 0.0 and bool(c2["is_below_refresher_threshold"]) is True
    # C3: no answers, no children
    assert c3["n_responses"] == 0 and np.isnan(c3["customer_service_score_pct"])
    assert pd.isna(c3["is_below_refresher_threshold"]) and c3["n_children_endline"] == 0
    assert (c1["n_children_baseline"], c1["n_children_endline"]) == (1, 2)
    assert c1["attendance_rate_mean"] == pytest.approx((0.75 + 0.5) / 2)  # endline wave
    assert c1["attendance_rate_mean_baseline"] == pytest.approx(0.8)
    assert c1["elom_total_mean_endline"] == pytest.approx(48.16)
    assert c1["on_track_pct_endline"] == pytest.approx(100.0)
    assert c1["practitioners_trained_pct"] == pytest.approx(75.0) and np.isnan(c2["practitioners_trained_pct"])
    assert out["has_feedback_channel"].tolist() == [True, False, pd.NA]
    assert out["arm"].tolist() == ["partnered", "comparison", "unknown"]
    assert out["is_partnered"].dtype == "boolean"


def test_centre_outcomes_at_the_refresher_threshold_exactly():
    centres, children, treatment, survey = _clean_tables()
    child = build_child_outcomes(children, centres, treatment)
    targets = {"refresher_training_below_pct": 60.0}
    out = centre_outcomes(centres, survey, treatment, child, targets=targets)
    assert out["is_below_refresher_threshold"].tolist() == [False, False, pd.NA]  # 60% is not below 60%


def test_centre_outcomes_refuses_child_outcomes_of_another_level():
    centres, children, treatment, survey = _clean_tables()
    child = build_child_outcomes(children, centres, treatment, level="district")
    with pytest.raises(ValueError, match="same level"):
        centre_outcomes(centres, survey, treatment, child, level="province")
    assert len(centre_outcomes(centres, survey, treatment, child, level="district")) == 3


# --------------------------------------------------------------- outcome family
def test_outcome_family_names_columns_that_exist():
    names = [spec.name for spec in OUTCOME_FAMILY]
    assert names[0] == "elom_total" and OUTCOME_FAMILY[0].role == "primary"
    assert [s.role for s in OUTCOME_FAMILY].count("primary") == 1
    assert {"elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell", "is_on_track", "haz", "is_stunted",
            "attendance_rate", "customer_service_score_pct"} <= set(names)
    for spec in OUTCOME_FAMILY:
        columns = CHILD_OUTCOME_COLUMNS if spec.level == "child" else CENTRE_OUTCOME_COLUMNS
        assert spec.name in columns, spec.name
        assert spec.kind == ("binary" if spec.name.startswith("is_") else "continuous")
    assert [s.name for s in OUTCOME_FAMILY if not s.is_higher_better] == ["is_stunted"]
    table = outcome_family_table()
    assert list(table["name"]) == names and {"label", "unit", "is_higher_better"} <= set(table.columns)
