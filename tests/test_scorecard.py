"""Programme scorecard (SCSPR-25 targets) and MOU milestones, on hand-made tables."""

import copy

import numpy as np
import pandas as pd
import pytest

from evalkit.config import load_rules
from evalkit.scorecard import (
    MILESTONE_COLUMNS,
    SCORECARD_COLUMNS,
    load_targets,
    partnership_milestones,
    programme_scorecard,
    programme_start_month,
)


def _centres() -> pd.DataFrame:
    """c5 is alone in its province, with no MOU and no survey response."""
    return pd.DataFrame({
        "centre_id": ["c1", "c2", "c3", "c4", "c5"],
        "province": ["Gauteng", "Gauteng", "Limpopo", "Limpopo", "Free State"],
        "district": ["Tshwane", "Sedibeng", "Vhembe", "Vhembe", "Mangaung"],
        "practitioners_trained": [300.0, 150.0, 50.0, np.nan, 0.0],
        "feedback_channel": ["yes", "yes", "no", pd.NA, "no"],
        "parent_events": [20.0, 10.0, 20.0, 0.0, 0.0],
    })


def _partnerships() -> pd.DataFrame:
    return pd.DataFrame({
        "partnership_id": ["p1", "p2", "p3", "p4", "p5", "p6", "p7"],
        "centre_id": ["c1", "c3", "c2", "c4", "c1", "c2", "c3"],
        "partner_name": ["Tswelopele Community Care", "tswelopele  community-care.", "Highveld Foundation",
                         "Highveld Foundation", "", "Phepha Screening", "Undated Partner"],
        "partner_type": ["cbo", "cbo", "private", "private", "cbo", "wellness", "cbo"],
        "mou_signed_date": pd.to_datetime(["2024-01-15", "2024-03-31", "2024-02-01", "2024-06-10",
                                           "2023-12-20", "2024-09-01", None]),
        "status": ["active", "active", "ended", "active", "active", "active", "ended"],
    })


def _survey() -> pd.DataFrame:
    """Only sat_overall answered: c1 10 fives (100%), c2 7 fives + 3 threes (70%),
    c3 8 fours + 2 twos (80%), c4 no responses."""
    centre = ["c1"] * 10 + ["c2"] * 10 + ["c3"] * 10
    overall = [5.0] * 10 + [5.0] * 7 + [3.0] * 3 + [4.0] * 8 + [2.0] * 2
    months = ["2025-10-10"] * 20 + ["2025-11-10"] * 10
    frame = pd.DataFrame({"response_id": [f"r{i}" for i in range(30)], "centre_id": centre,
                          "submission_time": pd.to_datetime(months), "sat_overall": overall,
                          "recommend": 9.0})
    for item in ("sat_communication", "sat_safety", "sat_learning", "sat_staff_respect", "sat_responsiveness"):
        frame[item] = -88.0  # not applicable: never in a denominator
    return frame


def _targets(**changes) -> dict:
    targets = copy.deepcopy(load_rules("targets"))
    specs = {s["metric"]: s for s in targets["metrics"]}
    for metric, target in changes.items():
        specs[metric]["target"] = target
    return targets


def test_shipped_targets_are_the_scspr25_figures():
    targets = load_targets()
    figures = {s["metric"]: s["target"] for s in targets["metrics"]}
    assert figures == {"practitioners_trained": 500, "centres_with_feedback_channel": 300,
                       "parent_engagement_events": 50, "customer_service_score_pct": 85,
                       "strategic_partners": 10, "centres_below_refresher_threshold": None}
    assert targets["refresher_training_below_pct"] == 75
    assert [(p["month"], p["cumulative_mous"]) for p in targets["milestones"]["plan"]] == [(3, 5), (6, 15), (9, 20)]


def test_scorecard_hand_computed_national_and_regional():
    out = programme_scorecard(_centres(), _partnerships(), _survey(), targets=_targets(strategic_partners=3))
    assert list(out.columns) == SCORECARD_COLUMNS
    assert out["scope"].tolist() == ["national"] * 6 + ["region"] * 18
    assert out["region"].iloc[:6].isna().all()
    assert out["region"].iloc[6:].tolist() == ["Free State"] * 6 + ["Gauteng"] * 6 + ["Limpopo"] * 6
    nat = out.iloc[:6].set_index("metric")
    # exactly at the target is met (targets are minimums: "500+")
    assert nat.loc["practitioners_trained", ["value", "target"]].tolist() == [500.0, 500.0]
    assert bool(nat.loc["practitioners_trained", "is_met"]) is True
    assert "1 centres did not report" in nat.loc["practitioners_trained", "note"]
    assert nat.loc["centres_with_feedback_channel", "value"] == 2
    assert bool(nat.loc["centres_with_feedback_channel", "is_met"]) is False
    assert "1 centres did not say" in nat.loc["centres_with_feedback_channel", "note"]
    assert nat.loc["parent_engagement_events", "value"] == 50 and bool(nat.loc["parent_engagement_events", "is_met"])
    # 25 of 30 valid answers are 4 or 5; the -88 answers are never counted
    assert nat.loc["customer_service_score_pct", "value"] == pytest.approx(250 / 3)
    assert bool(nat.loc["customer_service_score_pct", "is_met"]) is False
    assert "30 valid answers" in nat.loc["customer_service_score_pct", "note"]
    # Tswelopele (two spellings, two regions) once; Highveld via its active MOU; Phepha; the
    # ended Highveld MOU adds nothing and the unnamed one cannot be counted
    assert nat.loc["strategic_partners", "value"] == 3 and bool(nat.loc["strategic_partners", "is_met"])
    assert "1 active MOUs without a partner name" in nat.loc["strategic_partners", "note"]
    assert nat.loc["centres_below_refresher_threshold", "value"] == 1  # c2 at 70%
    assert pd.isna(nat.loc["centres_below_refresher_threshold", "is_met"])
    gp = out.loc[out["region"] == "Gauteng"].set_index("metric")
    lp = out.loc[out["region"] == "Limpopo"].set_index("metric")
    assert gp.loc["practitioners_trained", "value"] == 450 and np.isnan(gp.loc["practitioners_trained", "target"])
    assert pd.isna(gp.loc["practitioners_trained", "is_met"])  # a programme-wide count: no regional target
    # the rate target applies to every region: Gauteng 17/20 = 85% exactly, Limpopo 80%
    assert gp.loc["customer_service_score_pct", "value"] == pytest.approx(85.0)
    assert bool(gp.loc["customer_service_score_pct", "is_met"]) is True
    assert bool(lp.loc["customer_service_score_pct", "is_met"]) is False
    assert (gp.loc["strategic_partners", "value"], lp.loc["strategic_partners", "value"]) == (2, 2)
    assert lp.loc["practitioners_trained", "value"] == 50
    # a region with centres but no MOU has 0 partners; with no responses, no score
    fs = out.loc[out["region"] == "Free State"].set_index("metric")
    assert fs.loc["strategic_partners", "value"] == 0 and fs.loc["centres_below_refresher_threshold", "value"] == 0
    assert np.isnan(fs.loc["customer_service_score_pct", "value"])
    assert pd.isna(fs.loc["customer_service_score_pct", "is_met"])
    assert "no data" in fs.loc["customer_service_score_pct", "note"]


def test_scorecard_regional_targets_as_of_and_latest_month():
    targets = _targets(strategic_partners=3)
    targets["regional_targets"] = {"Gauteng": {"practitioners_trained": 450}}
    targets["metrics"][3]["period"] = "latest_month"
    out = programme_scorecard(_centres(), _partnerships(), _survey(), targets=targets, as_of="2024-08-31")
    nat = out.loc[out["scope"] == "national"].set_index("metric")
    gp = out.loc[out["region"] == "Gauteng"].set_index("metric")
    assert gp.loc["practitioners_trained", "target"] == 450 and bool(gp.loc["practitioners_trained", "is_met"])
    assert nat.loc["strategic_partners", "value"] == 2  # Phepha signed after as_of
    assert nat.loc["customer_service_score_pct", "value"] == pytest.approx(80.0)  # November: c3 only
    assert "2025-11" in nat.loc["customer_service_score_pct", "note"]
    assert np.isnan(gp.loc["customer_service_score_pct", "value"])  # no Gauteng answers in November
    assert pd.isna(gp.loc["customer_service_score_pct", "is_met"])
    targets["metrics"].append({"metric": "happiness", "target": 1})
    with pytest.raises(ValueError, match="happiness"):
        programme_scorecard(_centres(), _partnerships(), _survey(), targets=targets)


def test_scorecard_by_district():
    out = programme_scorecard(_centres(), _partnerships(), _survey(), level="district")
    assert out.loc[out["scope"] == "region", "region"].unique().tolist() == ["Mangaung", "Sedibeng", "Tshwane",
                                                                             "Vhembe"]


def _plan(*pairs) -> dict:
    targets = copy.deepcopy(load_rules("targets"))
    targets["milestones"]["plan"] = [{"month": m, "cumulative_mous": n} for m, n in pairs]
    return targets


def test_milestones_default_start_is_the_first_mou_month():
    targets = _plan((3, 3), (6, 5), (9, 5))
    out = partnership_milestones(_partnerships(), _centres(), targets=targets)
    assert list(out.columns) == MILESTONE_COLUMNS
    nat = out.loc[out["scope"] == "national"].set_index("month")
    assert list(nat.index) == list(range(1, 11))  # to the last MOU (2024-09 = month 10)
    assert nat["calendar_month"].iloc[[0, 2, 9]].tolist() == ["2023-12", "2024-02", "2024-09"]
    # signed: 2023-12, 2024-01, 2024-02 (ended since: still signed), 2024-03, 2024-06, 2024-09;
    # the undated MOU cannot be placed
    assert nat["cumulative_mous"].tolist() == [1, 2, 3, 4, 4, 4, 5, 5, 5, 6]
    assert nat.loc[[3, 6, 9], "planned_mous"].tolist() == [3, 5, 5]
    assert nat["is_met"].tolist() == [pd.NA, pd.NA, True, pd.NA, pd.NA, False, pd.NA, pd.NA, True, pd.NA]
    assert nat["is_milestone"].sum() == 3
    gp = out.loc[out["region"] == "Gauteng"].set_index("month")
    assert gp["cumulative_mous"].tolist() == [1, 2, 3, 3, 3, 3, 3, 3, 3, 4]
    assert gp["planned_mous"].isna().all() and gp["is_met"].isna().all()
    lp = out.loc[out["region"] == "Limpopo"].set_index("month")
    assert lp["cumulative_mous"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]


def test_milestones_start_parameter_and_as_of():
    targets = _plan((3, 3), (6, 5), (9, 5))
    out = partnership_milestones(_partnerships(), _centres(), start="2024-01", targets=targets)
    nat = out.loc[out["scope"] == "national"].set_index("month")
    assert nat.loc[1, "calendar_month"] == "2024-01"
    assert nat.loc[1, "cumulative_mous"] == 2  # the MOU of 2023-12 counts from month 1
    assert nat.loc[3, "cumulative_mous"] == 4
    out = partnership_milestones(_partnerships(), _centres(), as_of="2024-04-30", targets=targets)
    nat = out.loc[out["scope"] == "national"].set_index("month")
    assert len(nat) == 9  # to the last planned month
    assert nat["cumulative_mous"].tolist()[:5] == [1, 2, 3, 4, 4]
    assert nat["cumulative_mous"].iloc[5:].isna().all()  # after as_of: not known yet
    assert nat["is_met"].tolist()[2] is True and pd.isna(nat.loc[6, "is_met"]) and pd.isna(nat.loc[9, "is_met"])
    assert programme_start_month(_partnerships(), targets=targets) == pd.Period("2023-12", freq="M")
    targets["milestones"]["start"] = "2024-02"
    assert programme_start_month(_partnerships(), targets=targets) == pd.Period("2024-02", freq="M")
    with pytest.raises(ValueError, match="signed date"):
        programme_start_month(_partnerships().assign(mou_signed_date=pd.NaT))


def test_no_dated_mou_gives_no_milestones_and_zero_partners():
    none = _partnerships().iloc[0:0]
    assert partnership_milestones(none, _centres()).empty
    assert list(partnership_milestones(none, _centres()).columns) == MILESTONE_COLUMNS
    started = partnership_milestones(none, _centres(), start="2024-01", as_of="2024-12-31")
    assert (started["cumulative_mous"] == 0).all() and len(started) == 4 * 12
    card = programme_scorecard(_centres(), none, _survey())
    assert (card.loc[card["metric"] == "strategic_partners", "value"] == 0).all()


def test_milestones_with_the_shipped_plan():
    out = partnership_milestones(_partnerships(), _centres())
    nat = out.loc[(out["scope"] == "national") & out["is_milestone"]]
    assert nat["planned_mous"].tolist() == [5, 15, 20]
    assert nat["is_met"].tolist() == [False, False, False]
