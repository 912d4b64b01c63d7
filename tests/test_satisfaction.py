"""Parent satisfaction: customer service score (top-2-box), mean index and NPS, by hand."""

import numpy as np
import pandas as pd
import pytest

from evalkit.satisfaction import (
    LIKERT_ITEMS,
    SATISFACTION_COLUMNS,
    centre_satisfaction,
    customer_service_by_month,
    mean_index,
    net_promoter_score,
    satisfaction_summary,
    satisfaction_table,
    top2_box_pct,
)


def test_top2_box_excludes_na_and_missing_codes_from_the_denominator():
    # 5, 4, 3, 2 are valid; NaN (blank/N/A after cleaning), -88, -99, 0 and 4.5 are not
    answers = [5, 4, 3, 2, np.nan, -88, -99, 0, 4.5]
    assert top2_box_pct(answers) == pytest.approx(50.0)
    assert mean_index(answers) == pytest.approx(3.5)
    assert np.isnan(top2_box_pct([np.nan, -88])) and np.isnan(mean_index([]))


def test_top2_box_and_mean_index_are_different_metrics():
    # all 3s and 4s: half top-2 but a mean of 3.5; all 4s: 100% but mean 4
    assert top2_box_pct([3, 4, 3, 4]) == 50.0 and mean_index([3, 4, 3, 4]) == 3.5
    assert top2_box_pct([4, 4]) == 100.0 and mean_index([4, 4]) == 4.0


def test_net_promoter_score_by_hand():
    # 10 valid: 9, 10, 10 promoters (3); 7, 8 passives; 0, 3, 5, 6, 6 detractors (5) -> 30 - 50
    answers = [9, 10, 10, 7, 8, 0, 3, 5, 6, 6, np.nan, -99, 11]
    assert net_promoter_score(answers) == pytest.approx(-20.0)
    assert net_promoter_score([9, 10]) == 100.0 and net_promoter_score([0, 6]) == -100.0
    assert net_promoter_score([7, 8]) == 0.0 and np.isnan(net_promoter_score([np.nan]))


def _survey() -> pd.DataFrame:
    return pd.DataFrame({
        "response_id": ["r1", "r2", "r3", "r4"],
        "centre_id": ["c1", "c1", "c2", "c3"],
        "submission_time": pd.to_datetime(["2025-10-05", "2025-11-05", "2025-11-20", None]),
        "sat_communication": [5.0, 3.0, 4.0, np.nan],
        "sat_safety": [4.0, -88.0, 2.0, np.nan],
        "sat_learning": [np.nan, 5.0, 1.0, np.nan],
        "sat_staff_respect": [5.0, 5.0, 5.0, np.nan],
        "sat_responsiveness": [2.0, 4.0, 3.0, np.nan],
        "sat_overall": [4.0, 4.0, 4.0, np.nan],
        "recommend": [10.0, 8.0, 3.0, np.nan],
    })


def test_summary_items_pooled_overall_and_nps():
    out = satisfaction_summary(_survey(), [])
    rows = out.set_index("item")
    assert list(rows.index) == [*LIKERT_ITEMS, "overall", "nps"]
    assert rows.loc["sat_safety", "n_valid"] == 2 and rows.loc["sat_safety", "top2_pct"] == 50.0
    assert rows.loc["sat_learning", "mean_score"] == pytest.approx(3.0)
    # overall: 5 + 5 + 6 = 16 valid answers, 4 + 4 + 3 = 11 top-2, summing to 20 + 21 + 19
    assert rows.loc["overall", "n_valid"] == 16 and rows.loc["overall", "n_top2"] == 11
    assert rows.loc["overall", "top2_pct"] == pytest.approx(68.75)
    assert rows.loc["overall", "mean_score"] == pytest.approx(3.75)
    assert rows.loc["nps", "n_valid"] == 3
    assert rows.loc["nps", "nps"] == pytest.approx(0.0)  # one promoter, one detractor
    assert np.isnan(rows.loc["nps", "top2_pct"]) and np.isnan(rows.loc["overall", "nps"])
    assert (out["n_responses"] == 4).all()  # r4 answered nothing but is a response


def test_centre_satisfaction_by_hand():
    out = centre_satisfaction(_survey()).set_index("centre_id")
    # c1: 5, 4, 5, 2, 4 and 3, 5, 5, 4, 4 -> 10 valid, 8 top-2, sum 41
    assert out.loc["c1", "n_valid_answers"] == 10
    assert out.loc["c1", "customer_service_score_pct"] == pytest.approx(80.0)
    assert out.loc["c1", "satisfaction_mean_index"] == pytest.approx(4.1)
    assert out.loc["c1", "nps"] == pytest.approx(50.0)  # 10 promoter, 8 passive
    assert out.loc["c2", "customer_service_score_pct"] == pytest.approx(50.0)
    assert out.loc["c2", "nps"] == -100.0
    assert out.loc["c3", "n_responses"] == 1 and out.loc["c3", "n_valid_answers"] == 0
    assert np.isnan(out.loc["c3", "customer_service_score_pct"]) and np.isnan(out.loc["c3", "nps"])
    empty = centre_satisfaction(_survey().iloc[0:0])
    assert empty.empty and "customer_service_score_pct" in empty.columns


def test_satisfaction_table_by_region_and_arm():
    centres = pd.DataFrame({"centre_id": ["c1", "c2", "c3"], "province": ["Gauteng", "Gauteng", "Limpopo"],
                            "district": ["d1", "d2", "d3"]})
    treatment = pd.DataFrame({"centre_id": ["c1", "c2", "c3"],
                              "is_partnered": pd.array([True, False, pd.NA], dtype="boolean")})
    out = satisfaction_table(_survey(), centres, treatment)
    assert list(out.columns) == SATISFACTION_COLUMNS
    groups = out[["region", "arm"]].drop_duplicates().values.tolist()
    assert groups == [["Gauteng", "comparison"], ["Gauteng", "partnered"], ["Limpopo", "unknown"]]
    overall = out.loc[out["item"] == "overall"].set_index("arm")
    assert overall.loc["partnered", "top2_pct"] == pytest.approx(80.0)
    assert overall.loc["comparison", "top2_pct"] == pytest.approx(50.0)
    assert out.loc[out["item"] == "overall", "item_label"].iloc[0].startswith("All items pooled")
    by_district = satisfaction_table(_survey(), centres, treatment, level="district")
    assert sorted(by_district["region"].unique()) == ["d1", "d2", "d3"]


def test_customer_service_by_month():
    centres = pd.DataFrame({"centre_id": ["c1", "c2", "c3"], "province": ["Gauteng", "Gauteng", "Limpopo"],
                            "district": ["d1", "d2", "d3"]})
    out = customer_service_by_month(_survey(), centres)
    national = out.loc[out["scope"] == "national"].set_index("month")
    assert list(national.index) == ["2025-10", "2025-11"]  # r4 has no time: in no month
    assert national.loc["2025-10", "customer_service_score_pct"] == pytest.approx(80.0)  # r1: 4 of 5
    # November: r2 (3, 5, 5, 4, 4) and r3 (4, 2, 1, 5, 3, 4): 4 + 3 of 11
    assert national.loc["2025-11", "customer_service_score_pct"] == pytest.approx(700 / 11)
    regional = out.loc[out["scope"] == "region"]
    assert regional["region"].tolist() == ["Gauteng", "Gauteng"]
