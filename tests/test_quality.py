"""Data-quality checks: outliers, missingness by arm, assessors, centre completeness, age."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.cleaning import CleaningLog, clean_all
from evalkit.config import ELOM_DOMAINS, load_rules
from evalkit.quality import (
    FLAG_COLUMNS,
    SUMMARY_COLUMNS,
    age_checks,
    assessor_checks,
    centre_completeness,
    check_quality,
    cleaning_flags,
    find_outliers,
    missingness,
)
from evalkit.readers import read_data_folder

FIXTURE = Path(__file__).parent / "fixtures" / "canonical"


def test_iqr_fences_by_hand():
    frame = pd.DataFrame({"x": [*range(1, 11), 100.0], "child_id": [f"K{i}" for i in range(11)],
                          "wave": "baseline"})
    summary, flags = find_outliers(frame, "child_assessments", ["x"], min_n=5)
    # Q1 = 3.5, Q3 = 8.5 (linear interpolation), IQR = 5: fences [-4, 16].
    assert summary[["low", "high", "n", "n_outliers"]].values.tolist() == [[-4.0, 16.0, 11, 1]]
    assert flags["record_id"].tolist() == ["K10/baseline"] and flags["value"].tolist() == ["100"]
    assert flags["detail"].iloc[0] == "100 outside [-4, 16] (IQR fences)"


def test_sd_fences_and_groups():
    values = np.r_[np.full(30, 10.0), 40.0, np.full(30, 50.0)]
    frame = pd.DataFrame({"x": values, "wave": ["baseline"] * 31 + ["endline"] * 30})
    frame.loc[0, "x"] = 12.0
    summary, flags = find_outliers(frame, "child_assessments", ["x"], group_by=["wave"], method="sd",
                                   sd_multiplier=3, min_n=10)
    baseline = summary.set_index("group").loc["wave=baseline"]
    expected_mean, expected_sd = frame.loc[:30, "x"].mean(), frame.loc[:30, "x"].std()
    assert baseline["low"] == pytest.approx(expected_mean - 3 * expected_sd)
    assert flags["value"].tolist() == ["40"]  # an outlier in baseline, ordinary if pooled with endline
    assert summary.set_index("group").loc["wave=endline", "n_outliers"] == 0


def test_small_groups_are_not_screened():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 1000.0]})
    summary, flags = find_outliers(frame, "centres", ["x"], min_n=20)
    assert flags.empty and np.isnan(summary["low"].iloc[0])


def _raw_tables(n_children=20):
    centres = pd.DataFrame({"centre_id": ["C1", "C2"], "province": ["GP", "GP"], "setting": ["urban", "rural"]})
    partnerships = pd.DataFrame({"partnership_id": ["P1"], "centre_id": ["C1"], "mou_signed_date": ["2024-01-01"],
                                 "status": ["active"]})
    rows = []
    for centre in ("C1", "C2"):
        for i in range(n_children):
            for wave, date in (("baseline", "2025-02-03"), ("endline", "2025-10-06")):
                rows.append({"child_id": f"{centre}-K{i:02d}", "centre_id": centre, "wave": wave,
                             "assessment_date": date, "date_of_birth": "2020-09-01", "sex": "F",
                             **{d: str(10 + (i % 5)) for d in ELOM_DOMAINS}, "height_cm": str(100 + i % 7),
                             "weight_kg": "16", "days_attended": "50", "days_possible": "60",
                             "assessor_id": f"A-{centre}"})
    children = pd.DataFrame(rows)
    survey = pd.DataFrame({"response_id": ["R1"], "centre_id": ["C1"], "sat_overall": ["5"]})
    return {"centres": centres, "partnerships": partnerships, "child_assessments": children, "parent_survey": survey}


def test_missing_codes_never_pose_as_outliers_and_reasons_are_kept():
    tables = _raw_tables()
    children = tables["child_assessments"]
    baseline_c1 = children.index[(children["centre_id"] == "C1") & (children["wave"] == "baseline")]
    children.loc[baseline_c1[:2], "height_cm"] = "-999"
    children.loc[baseline_c1[2], "height_cm"] = "-99"
    children.loc[baseline_c1[3], "height_cm"] = ""
    children.loc[baseline_c1[4], "height_cm"] = "20"  # out of range: set missing by a rule
    clean = clean_all(tables)
    report = check_quality(clean)
    height = report.flags[(report.flags["column"] == "height_cm") & (report.flags["check"] == "outlier")]
    assert height.empty  # -999 would be a far outlier if it were a number
    row = report.missingness.set_index(["table", "column", "arm", "wave"]).loc[
        ("child_assessments", "height_cm", "partnered", "baseline")]
    assert (row["n"], row["n_missing"], row["pct_missing"]) == (20, 5, 25.0)
    assert (row["n_missing_code"], row["n_set_missing_by_rule"], row["n_blank"]) == (3, 1, 1)
    assert row["reasons"] == "no reason recorded 2; don't know 1; out_of_range 1; blank 1"
    comparison = report.missingness.set_index(["table", "column", "arm", "wave"]).loc[
        ("child_assessments", "height_cm", "comparison", "baseline")]
    assert comparison["n_missing"] == 0
    flagged = report.flags[(report.flags["check"] == "missingness") & (report.flags["column"] == "height_cm")]
    assert len(flagged) == 2  # 25% in one arm, and 25 points more than in the other
    assert flagged["detail"].str.contains("differential missingness").sum() == 1
    assert flagged["detail"].str.contains("25% missing in partnered, baseline").sum() == 1


def _assessor_frame(rng, *, shift=0.0, alike=False, per_day=1, weekend=False):
    """Four assessors in one province, 40 children each in 8 centres; assessor A4 may stand apart."""
    rows = []
    start = pd.Timestamp("2025-02-03")  # a Monday
    for a in range(1, 5):
        for k in range(40):
            centre = f"C{a}{k % 8}"
            total = rng.normal(45, 12) + (shift if a == 4 else 0)
            if alike and a == 4:
                total = 45 + rng.normal(0, 1)
            day = start + pd.offsets.BDay(int(k // (per_day if a == 4 else 2)))
            if weekend and a == 4 and k == 0:
                day = pd.Timestamp("2025-02-08")
            rows.append({"child_id": f"K{a}{k:02d}", "centre_id": centre, "wave": "baseline",
                         "assessment_date": day, "assessor_id": f"GP-A{a}",
                         **{d: total / 5 for d in ELOM_DOMAINS}})
    frame = pd.DataFrame(rows)
    centres = pd.DataFrame({"centre_id": frame["centre_id"].unique(), "province": "Gauteng"})
    return frame, centres


@pytest.mark.parametrize("kwargs, expected", [
    ({}, set()),
    ({"shift": 20.0}, {"assessor_scores"}),
    ({"alike": True}, {"assessor_spread"}),
    ({"per_day": 20}, {"assessor_per_day"}),
    ({"weekend": True}, {"assessor_weekend"}),
])
def test_an_assessor_who_stands_apart_is_flagged_and_only_that_one(rng, kwargs, expected):
    frame, centres = _assessor_frame(rng, **kwargs)
    table, flags = assessor_checks(frame, centres=centres)
    assert set(flags["check"]) == expected
    if expected:
        assert set(flags["record_id"]) == {"GP-A4 (baseline)"}
        assert table.set_index("assessor_id").loc["GP-A4", "is_flagged"]
    assert table.set_index("assessor_id").loc[["GP-A1", "GP-A2", "GP-A3"], "is_flagged"].sum() == 0


def test_assessor_statistics_by_hand():
    frame = pd.DataFrame({"child_id": list("abcdef"), "centre_id": ["C1", "C1", "C2", "C3", "C3", "C4"],
                          "wave": "endline", "assessment_date": pd.Timestamp("2025-10-06"),
                          "assessor_id": ["X", "X", "X", "Y", "Y", "Y"]})
    totals = [30.0, 40.0, 50.0, 20.0, 30.0, 40.0]
    for d in ELOM_DOMAINS:
        frame[d] = [t / 5 for t in totals]
    rules = load_rules("quality")
    table, _ = assessor_checks(frame, rules)
    x = table.set_index("assessor_id").loc["X"]
    assert (x["mean_elom_total"], x["others_mean"], x["sd_elom_total"], x["others_sd"]) == pytest.approx(
        (40.0, 30.0, 10.0, 10.0))
    # design effects: X has 3 children in 2 centres (m = 1.5), Y 3 in 2 (m = 1.5): 1 + 0.5 * 0.2 = 1.1
    assert x["z"] == pytest.approx(10 / (10 * np.sqrt(1.1 / 3 + 1.1 / 3)))
    assert x["max_per_day"] == 3 and x["n_days"] == 1


def test_centre_completeness(rng):
    tables = {k: v for k, v in clean_all(_raw_tables(n_children=10)).tables.items()}
    children = tables["child_assessments"]
    # C2 loses its endline: no treatment status; C1 loses 4 of 10 follow-ups and ELOM on 5 rows.
    drop = children.index[(children["centre_id"] == "C2") & (children["wave"] == "endline")]
    drop_c1 = children.index[(children["centre_id"] == "C1") & (children["wave"] == "endline")][:4]
    children = children.drop(index=[*drop, *drop_c1])
    children.loc[children.index[:5], "elom_gmd"] = np.nan
    tables["child_assessments"] = children
    arms = pd.Series({"C1": "partnered", "C2": "unknown"})
    table, flags = centre_completeness(tables, arms)
    c1 = table.set_index("centre_id").loc["C1"]
    assert (c1["n_baseline"], c1["n_endline"], c1["n_both"], c1["follow_up_pct"]) == (10, 6, 6, 60.0)
    assert c1["complete_elom_pct"] == pytest.approx(100 * 11 / 16, abs=0.05)
    got = set(zip(flags["record_id"], flags["check"]))
    assert got == {("C2", "centre_no_children"), ("C2", "centre_follow_up"), ("C1", "centre_follow_up"),
                   ("C1", "centre_complete_elom")}


def test_age_outside_the_elom_window():
    frame = pd.DataFrame({"child_id": ["a", "b", "c", "d"], "wave": "baseline",
                          "assessment_date": pd.to_datetime(["2025-02-03"] * 4),
                          "date_of_birth": pd.to_datetime(["2021-05-01", "2020-12-01", "2019-04-20", "2019-03-01"])})
    flags = age_checks(frame)
    # 45.1 months (too young), 50.1 (fine), 69.5 (fine: 69 completed months), 71.1 (too old)
    assert flags["record_id"].tolist() == ["a/baseline", "d/baseline"]


def test_only_warnings_and_errors_of_the_log_become_flags():
    log = CleaningLog()
    frame = pd.DataFrame({"centre_id": ["C1", "C2"]}, index=[0, 1])
    log.add("centres", frame, [True, False], column="setting", old="Urban", new="urban", rule="harmonise_spelling",
            action="changed")
    log.add("centres", frame, [False, True], column="setting", old="moon", new="", rule="unknown_category",
            action="flagged", reason="not a known value: set missing")
    flags = cleaning_flags(log.to_frame())
    assert flags[["check", "record_id", "row", "value", "severity"]].values.tolist() == [
        ["unknown_category", "C2", 2, "moon", "warning"]]
    assert flags["what_to_do"].iloc[0].startswith("Correct the value")


@pytest.fixture(scope="module")
def fixture_report():
    raw = read_data_folder(FIXTURE)
    clean = clean_all(raw.tables, raw.rules)
    return clean, check_quality(clean, cleaning_rules=raw.rules)


def test_report_shape_order_and_no_personal_data(fixture_report):
    clean, report = fixture_report
    flags = report.flags
    assert list(flags.columns) == FLAG_COLUMNS and list(report.summary.columns) == SUMMARY_COLUMNS
    assert flags["flag_id"].is_unique and flags["flag_id"].iloc[0] == "F00001"
    severities = flags["severity"].map({"error": 0, "warning": 1})
    assert severities.is_monotonic_increasing
    text = flags.to_csv() + report.summary.to_csv() + report.missingness.to_csv()
    for value in ("Zoë", "Musa Adams", "082 111 2222", "072 815 4478"):
        assert value not in text
    account = report.summary[report.summary["check"] == "row_account"].set_index("table")
    assert account.loc["child_assessments", ["n", "n_flagged"]].tolist() == [14, 4]
    assert {"birth_after_assessment", "unit_slip", "centre_id_not_in_centres"} <= set(flags["check"])
    # Quality flags carry the input row, so a field team can find the record in the file.
    outlier_or_age = flags[flags["check"] == "age_outside_elom"]
    assert outlier_or_age["row"].notna().all()


def test_outlier_method_can_be_switched(fixture_report):
    clean, _ = fixture_report
    report = check_quality(clean, outlier_method="sd")
    assert set(report.outliers["method"]) == {"sd"}
    with pytest.raises(ValueError, match="unknown outlier method"):
        check_quality(clean, outlier_method="mad")


def test_missingness_table_covers_every_screened_variable(fixture_report):
    clean, report = fixture_report
    spec = load_rules("quality")["missingness"]["tables"]
    whole = report.missingness[(report.missingness["arm"] == "all") & (report.missingness["wave"] == "all")]
    assert set(zip(whole["table"], whole["column"])) == {(t, c) for t, cols in spec.items() for c in cols}
    assert missingness({}, clean.log, pd.Series(dtype=object)).empty


def test_every_quality_check_is_in_the_catalogue_and_documented(fixture_report):
    _, report = fixture_report
    catalogue = load_rules("quality")["checks"]
    docs = (Path(__file__).parents[1] / "docs" / "cleaning.md").read_text(encoding="utf-8")
    for check, spec in catalogue.items():
        assert spec["severity"] in {"error", "warning"} and spec["meaning"] and spec["todo"], check
        assert f"`{check}`" in docs, f"{check} is not documented in docs/cleaning.md"
    quality = report.flags[report.flags["source"] == "quality"]
    assert set(quality["check"]) <= set(catalogue)
    assert (quality["what_to_do"] != "").all()
