"""Report wording, small-cell suppression and loading, on hand-made rows with known answers."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from evalkit import reporting
from evalkit.reporting import (
    MINUS,
    RegionNotFoundError,
    effect_direction,
    estimate_frame,
    headline_text,
    load_region,
    on_track_frame,
    suppress_count,
    suppress_small_cells,
)

NAN = float("nan")


def est_row(estimate=2.0, ci_low=0.5, ci_high=3.5, *, status="ok", note="", n_children=400,
            n_part=12, n_comp=14, es=0.16, region="Gauteng", inference="CR1") -> pd.Series:
    return pd.Series(dict(
        region=region, outcome="elom_total", estimator="ancova", inference=inference,
        estimate=estimate, std_error=0.75, df=n_part + n_comp - 1, ci_low=ci_low, ci_high=ci_high,
        p_value=0.012, effect_size_sd=es, n_children=n_children, n_centres_partnered=n_part,
        n_centres_comparison=n_comp, status=status, note=note))


# --------------------------------------------------------------------------- headline

def test_headline_interval_above_zero_says_higher_with_numbers():
    text = headline_text(est_row(2.0, 0.5, 3.5), "Gauteng")
    assert text.startswith("Children in partnered centres scored 2.0 points higher on the ELOM total "
                           "(about 0.16 SD) than similar children in comparison centres")
    assert "the 95% interval runs from 0.5 to 3.5 points" in text
    assert "not randomised" in text
    assert "extra caution" not in text  # 12 and 14 centres: no few-centre warning
    assert effect_direction(est_row(2.0, 0.5, 3.5)) == "higher"


def test_headline_interval_below_zero_says_lower():
    text = headline_text(est_row(-2.4, -4.0, -0.8, es=-0.19), "Limpopo")
    assert "scored 2.4 points lower" in text
    assert "about 0.19 SD" in text
    assert f"from {MINUS}4.0 to {MINUS}0.8 points" in text


def test_headline_interval_spanning_zero_says_no_clear_difference():
    text = headline_text(est_row(0.5, -1.0, 2.0, es=0.04), "Free State")
    assert "no clear difference" in text
    assert "spans zero" in text
    assert f"{MINUS}1.0 to 2.0 points" in text
    assert "higher on the ELOM" not in text
    assert effect_direction(est_row(0.5, -1.0, 2.0)) == "unclear"


def test_headline_not_estimable_gives_the_reason():
    note = ("Only 2 partnered and 4 comparison centres have children assessed at both baseline "
            "and endline; at least 3 of each are needed.")
    text = headline_text(est_row(NAN, NAN, NAN, status="not_estimable", note=note, n_part=2, n_comp=4),
                         "Northern Cape")
    assert text == ("We could not estimate an effect in Northern Cape because only 2 partnered and 4 "
                    "comparison centres have children assessed at both baseline and endline; at least "
                    "3 of each are needed.")


def test_headline_without_primary_row_or_reason_still_explains():
    assert "no primary estimate" in headline_text(None, "Gauteng")
    text = headline_text(est_row(NAN, NAN, NAN, status="not_estimable", note=NAN), "Gauteng")
    assert "could not estimate" in text and "reason was not recorded" in text


def test_headline_warns_when_an_arm_has_fewer_than_ten_centres():
    text = headline_text(est_row(n_part=4, n_comp=11), "Gauteng")
    assert "only 4 partnered and 11 comparison centres" in text


def test_headline_withholds_an_estimate_resting_on_fewer_than_ten_children():
    text = headline_text(est_row(n_children=8), "Gauteng")
    assert "2.0" not in text and "do not report" in text
    assert effect_direction(est_row(n_children=8)) is None


def test_headline_html_escapes_region_and_note():
    row = est_row(NAN, NAN, NAN, status="not_estimable", note="<script>x</script> centres", region="A<b>")
    data = reporting.RegionData(region="A<b>", estimates=pd.DataFrame([row]), children=pd.DataFrame())
    markup = reporting.headline(data).data
    assert "A&lt;b&gt;" in markup and "&lt;script&gt;" in markup
    assert "<b>" not in markup and "<script>" not in markup


# --------------------------------------------------------------------------- suppression

@pytest.mark.parametrize("n, threshold, shown", [
    (0, 10, "0"), (1, 10, "<10"), (9, 10, "<10"), (9.0, 10, "<10"), (10, 10, "10"), (1234, 10, "1,234"),
    (2, 3, "<3"), (3, 3, "3"), (NAN, 10, "–"), (None, 10, "–"),
])
def test_suppress_count(n, threshold, shown):
    assert suppress_count(n, threshold) == shown


def test_suppress_small_cells_hides_statistics_of_small_groups():
    table = pd.DataFrame({
        "group": ["big", "few children", "few centres", "empty"],
        "children": [40, 9, 25, 0],
        "centres": [5, 3, 2, 0],
        "mean": ["50.1", "48.0", "52.3", "–"],
    })
    out = suppress_small_cells(table, children="children", centres="centres", values=["mean"])
    assert out["children"].tolist() == ["40", "<10", "25", "0"]
    assert out["centres"].tolist() == ["5", "3", "<3", "0"]
    assert out["mean"].tolist() == ["50.1", "suppressed", "suppressed", "–"]
    assert table["children"].tolist() == [40, 9, 25, 0]  # input untouched


def test_estimate_frame_suppresses_small_rows_but_keeps_not_estimable_wording():
    rows = pd.DataFrame([
        est_row(),
        est_row(inference="CR2", n_children=8),
        est_row(NAN, NAN, NAN, status="not_estimable", note="Only 2 partnered", n_part=2, n_comp=4,
                n_children=30),
    ])
    table = estimate_frame(rows)
    first, small, missing = (table.iloc[i] for i in range(3))
    assert first["Estimate (95% interval)"] == "+2.00 (0.50 to 3.50)"
    assert first["Method"] == "ANCOVA · CR1 (primary)" and small["Method"] == "ANCOVA · CR2"
    assert first["Children"] == "400" and first["Centres (partnered / comparison)"] == "12 / 14"
    assert small["Estimate (95% interval)"] == "suppressed" and small["p-value"] == "suppressed"
    assert small["Children"] == "<10"
    assert missing["Estimate (95% interval)"] == "not estimable"
    assert missing["Centres (partnered / comparison)"] == "<3 / 4"
    assert missing["Note"] == "Only 2 partnered"
    assert list(table.columns) == ["Outcome", "Method", "Estimate (95% interval)", "Std. error", "p-value",
                                   "Effect size (SD)", "Children", "Centres (partnered / comparison)", "Note"]
    assert reporting.method_key(rows) == ("CR1 = SE clustered by centre (CR1); "
                                          "CR2 = SE clustered by centre (CR2, small-sample).")


def children_frame() -> pd.DataFrame:
    """Partnered endline: 20 children in 4 centres, 5 On Track (25%).
    Partnered baseline: 9 children (too few). Comparison: 12 children but in 2 centres."""
    rows = []
    for i in range(20):
        rows.append(("Partnered", "endline", f"P{i % 4}", "On Track" if i < 5 else "Falling Behind", 50.0))
    for i in range(9):
        rows.append(("Partnered", "baseline", f"P{i % 4}", "On Track", 60.0))
    for wave in ("baseline", "endline"):
        for i in range(12):
            rows.append(("Comparison", wave, f"C{i % 2}", "On Track", 55.0))
    frame = pd.DataFrame(rows, columns=["arm", "wave", "centre_id", "elom_band", "elom_total"])
    frame["is_partnered"] = frame["arm"] == "Partnered"
    return frame


def test_on_track_frame_known_shares_and_suppression():
    table = on_track_frame(children_frame()).set_index(["Group", "Wave"])
    assert table.loc[("Partnered", "Endline"), "On Track (%)"] == "25"
    assert table.loc[("Partnered", "Endline"), "Mean ELOM total"] == "50.0"
    assert table.loc[("Partnered", "Baseline"), "Children"] == "<10"
    assert table.loc[("Partnered", "Baseline"), "On Track (%)"] == "suppressed"
    assert table.loc[("Comparison", "Endline"), "Centres"] == "<3"
    assert table.loc[("Comparison", "Endline"), "On Track (%)"] == "suppressed"


def test_data_quality_frame_counts_only_and_hides_record_ids():
    log = pd.DataFrame({
        "table": ["centres"] * 12 + ["child_assessments"] * 3,
        "record_id": [f"C{i}" for i in range(12)] + ["CHILD-0001"] * 3,
        "column": ["province"] * 12 + ["height_cm"] * 3,
        "old_value": ["GT"] * 12 + ["1050"] * 3, "new_value": ["Gauteng"] * 12 + [""] * 3,
        "rule": ["province_alias"] * 12 + ["height_in_mm"] * 3,
        "action": ["changed"] * 12 + ["flagged"] * 3,
    })
    table = reporting.data_quality_frame(log)
    assert table.to_dict("records") == [
        {"Table": "centres", "Rule": "province alias", "Changed": "12", "Flagged": "–", "Dropped": "–"},
        {"Table": "child_assessments", "Rule": "height in mm", "Changed": "–", "Flagged": "<10", "Dropped": "–"},
    ]
    assert "CHILD-0001" not in table.to_string() and "1050" not in table.to_string()


def test_format_number_uses_a_true_minus_and_no_negative_zero():
    assert reporting.format_number(-1.25, 1) == f"{MINUS}1.2"
    assert reporting.format_number(-0.01, 1) == "0.0"
    assert reporting.format_number(0.3, 2, signed=True) == "+0.30"
    assert reporting.format_p(0.0004) == "<0.001"
    assert reporting.format_interval(NAN, 1) == "–"


# --------------------------------------------------------------------------- loading and sections

@pytest.fixture
def prepared(tmp_path):
    out, processed = tmp_path / "out", tmp_path / "processed"
    (out / "results").mkdir(parents=True)
    processed.mkdir()
    pd.DataFrame([est_row(inference="CR2"), est_row(), est_row(region="Limpopo")]).to_csv(
        out / "results" / "estimates.csv", index=False)
    rng = np.random.default_rng(7)
    n = 240
    pd.DataFrame({
        "child_id": [f"SECRET-{i // 2:04d}" for i in range(n)],
        "centre_id": [f"GP{(i // 2) % 12:02d}" for i in range(n)],
        "region": ["Gauteng"] * (n - 20) + ["Limpopo"] * 20,
        "wave": ["baseline", "endline"] * (n // 2),
        "age_months": rng.uniform(50, 69, n),
        "sex": rng.choice(["female", "male"], n),
        "setting": rng.choice(["urban", "rural"], n),
        "is_partnered": [((i // 2) % 12) < 6 for i in range(n)],
        "elom_total": rng.normal(50, 10, n),
        "elom_band": rng.choice(["On Track", "Falling Behind", "Falling Far Behind"], n),
    }).to_parquet(processed / "child_outcomes.parquet", index=False)
    (out / "run_manifest.json").write_text(json.dumps({
        "evalkit_version": "0.1.0", "started_at": "2025-11-23T10:00:00+00:00",
        "parameters": {"level": "province"}, "inputs": {"centres.csv": {"sha256": "f" * 64}},
        "packages": {"pandas": "3.1.1"}}))
    return out, processed


def test_load_region_reads_one_region_without_child_ids(prepared):
    out, processed = prepared
    data = load_region("Gauteng", out, processed)
    assert "child_id" not in data.children.columns
    assert set(data.children["region"]) == {"Gauteng"} and len(data.children) == 220
    assert set(data.children["arm"]) == {"Partnered", "Comparison"}
    assert data.estimates.iloc[0]["inference"] == "CR1"  # primary first
    assert data.primary["inference"] == "CR1"
    assert data.cleaning_log is None and data.manifest["evalkit_version"] == "0.1.0"
    with pytest.raises(RegionNotFoundError):
        load_region("Atlantis", out, processed)


def test_cleaning_log_is_read_only_when_the_run_has_no_data_quality_summary(prepared):
    out, processed = prepared
    pd.DataFrame({"table": ["children"] * 3, "rule": ["age_range", "age_range", "dup"],
                  "action": ["dropped", "flagged", "dropped"], "child_id": ["SECRET-1"] * 3}).to_csv(
        out / "cleaning_log.csv", index=False)
    data = load_region("Gauteng", out, processed)
    assert list(data.cleaning_log.columns) == ["table", "rule", "action"] and len(data.cleaning_log) == 3
    pd.DataFrame({"table": ["children"], "action": ["dropped"], "rule": ["dup"], "n_rows": [2]}).to_csv(
        out / "results" / "data_quality.csv", index=False)
    data = load_region("Gauteng", out, processed)
    assert data.cleaning_log is None and data.table("data_quality")["n_rows"].tolist() == [2]
    assert "dropped 2 records" in reporting.data_quality_table(data)._repr_html_()


def test_shared_tables_are_parsed_once_and_read_again_when_the_file_changes(prepared, monkeypatch):
    out, processed = prepared
    path = out / "results" / "estimates.csv"
    assert reporting.preload_shared(out) == 1  # only estimates.csv exists among the run-wide tables
    reads = []
    real_read_csv = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: reads.append(a[0]) or real_read_csv(*a, **k))
    first = reporting.read_shared_csv(path)
    first.loc[0, "estimate"] = -99.0  # a caller's change stays in the caller's copy
    again = load_region("Gauteng", out, processed)
    assert reads == [] and -99.0 not in reporting.read_shared_csv(path)["estimate"].tolist()
    assert again.estimates["estimate"].tolist() == real_read_csv(path).query("region == 'Gauteng'")[
        "estimate"].tolist()
    changed = real_read_csv(path).assign(estimate=7.5)
    changed.to_csv(path, index=False)
    assert reporting.read_shared_csv(path)["estimate"].tolist() == [7.5] * 3 and reads == [path]
    reporting.preload_shared(out / "elsewhere")  # another run: the first run's tables are let go
    assert reporting._SHARED == {}


def test_sections_render_with_alt_text_and_no_personal_data(prepared):
    out, processed = prepared
    data = load_region("Gauteng", out, processed)
    pieces = [reporting.title(data), reporting.headline(data), reporting.effects_figure(data),
              reporting.effects_table(data), reporting.subgroup_table(data),
              reporting.score_distribution_figure(data), reporting.on_track_figure(data),
              reporting.on_track_table(data), reporting.indicators_table(data), reporting.satisfaction_table(data),
              reporting.scorecard_table(data), reporting.milestones_figure(data), reporting.balance_table(data),
              reporting.love_plot(data), reporting.sample_size_table(data), reporting.rows_kept_table(data),
              reporting.data_quality_table(data), reporting.methods(data), reporting.limitations(data),
              reporting.estimate_table(data), reporting.reproducibility_stamp(data)]
    markup = "\n".join(p.data for p in pieces)
    assert markup.count("<img ") == 2  # distributions and On Track (matplotlib, as SVG data)
    assert markup.count('alt="') == 2 and 'alt=""' not in markup
    assert markup.count("<svg ") == 2  # the headline interval and one effects panel, drawn inline
    assert markup.count('role="img" aria-label="') == 2
    assert "SECRET-" not in markup
    assert "f" * 64 in markup  # input hash in the stamp
    assert "No cleaning log was found" in markup
    assert "t distribution with 25 degrees of freedom" in markup  # df from the row
    for absent in ("results/indicators.csv was not produced", "results/satisfaction.csv was not produced",
                   "results/scorecard.csv was not produced", "results/balance.csv was not produced",
                   "results/milestones.csv was not produced", "No subgroup estimates"):
        assert absent in markup, absent
    # numbered in order of appearance, skipped sections take no number
    tables = re.findall(r"Table (\d+)\.", markup)
    figures = re.findall(r"Figure (\d+)\.", markup)
    assert tables == [str(i) for i in range(1, len(tables) + 1)] and len(tables) == 5
    assert figures == ["1", "2", "3"]


# --------------------------------------------------------------------------- certainty and the first screen

def test_certainty_levels():
    assert reporting.certainty(est_row(2.0, 0.5, 3.5)) == ("clear", "Fairly sure of the direction")
    assert reporting.certainty(est_row(2.0, 0.5, 3.5, n_part=6))[0] == "tentative"
    flagged = est_row(2.0, 0.5, 3.5)
    flagged["warning"] = "cr1_cr2_disagree"
    assert reporting.certainty(flagged)[0] == "tentative"
    assert reporting.certainty(est_row(0.5, -1.0, 2.0))[0] == "unclear"
    assert reporting.certainty(est_row(NAN, NAN, NAN, status="not_estimable"))[0] == "none"
    assert reporting.certainty(None)[0] == "none"


def test_headline_box_says_how_sure_with_the_interval_in_words():
    box = reporting.headline_html(est_row(2.0, 0.5, 3.5, n_part=6, n_comp=8), "Gauteng")
    assert "How sure are we?" in box and "Some evidence, with caveats" in box
    assert "The likely range of the difference is +0.5 to +3.5 points (the 95% interval): all of it above zero, " \
           "but it rests on only 6 partnered and 8 comparison centres" in box
    assert "not randomised" in box and "Based on 400 children assessed twice in 14 centres" in box
    assert box.count("<svg ") == 1
    unclear = reporting.headline_html(est_row(0.5, -1.0, 2.0), "Gauteng")
    assert "Not sure there is a difference" in unclear and "it includes zero" in unclear
    none = reporting.headline_html(None, "Gauteng")
    assert "<svg" not in none and "No estimate" in none and "cannot tell whether partnership made a difference" in none


def test_interval_svg_centres_zero_and_draws_the_bar_on_the_right_side():
    svg = reporting.interval_svg(2.0, 0.5, 3.5)
    lines = re.findall(r'<line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"', svg)
    zero = float(lines[0][0])
    assert zero == pytest.approx(180.0)  # symmetric axis: zero in the middle of 10..350
    bar_low, bar_high = map(float, lines[1])
    assert zero < bar_low < bar_high
    assert 'role="img"' in svg and "does not cross" in svg
    assert "crosses" in reporting.interval_svg(0.5, -1.0, 2.0)


def test_forest_svg_rows_ticks_and_missing_rows():
    rows = [dict(label="A", note="+1.0 (0.2 to 1.8)", estimate=1.0, low=0.2, high=1.8),
            dict(label="B", note="not estimable", estimate=None, low=None, high=None, missing="not estimable")]
    svg = reporting.forest_svg(rows, unit="points", label="Two regions")
    assert svg.count("<circle") == 1 and "not estimable" in svg
    assert 'aria-label="Two regions"' in svg
    assert reporting._nice_ticks(-0.08, 0.18) == [-0.1, 0.0, 0.1, 0.2]
    assert reporting._nice_ticks(-4.3, 8.0) == [-5.0, 0.0, 5.0, 10.0]


# --------------------------------------------------------------------------- the agreed results tables

def test_is_primary_column_and_subgroups():
    rows = pd.DataFrame([est_row(inference="CR1"), est_row(inference="CR2"), est_row(inference="CR2")])
    rows["subgroup"] = ["", "", "girls"]
    rows["is_primary"] = ["False", "True", "True"]  # as read back from CSV
    primary = reporting.primary_row(rows, "Gauteng")
    assert primary["inference"] == "CR2" and primary["subgroup"] == ""
    rows["is_primary"] = False  # nothing marked: the default rule
    assert reporting.primary_row(rows, "Gauteng")["inference"] == "CR1"
    assert len(estimate_frame(rows)) == 2  # whole-region rows only
    sub = reporting.subgroup_frame(rows)
    assert sub["Subgroup"].tolist() == ["girls"]


def test_effects_frame_is_one_short_row_per_outcome():
    haz = est_row(0.05, -0.08, 0.18, es=0.05)
    haz["outcome"] = "haz"
    rows = pd.DataFrame([est_row(inference="CR2"), haz, est_row(), est_row(NAN, NAN, NAN, status="not_estimable")])
    rows.loc[3, "outcome"] = "attendance_rate"
    table = reporting.effects_frame(rows)
    assert list(table.columns) == ["Outcome", "Difference (95% interval)", "Size (SD)", "Reading"]
    assert table["Outcome"].tolist() == ["ELOM total (points)", "Height-for-age (z-score)", "Attendance rate (percentage points)"]
    assert table.iloc[0]["Difference (95% interval)"] == "+2.0 (0.5 to 3.5)"  # the CR1 primary, not CR2
    assert table.iloc[1]["Difference (95% interval)"] == f"+0.05 ({MINUS}0.08 to 0.18)"
    assert table.iloc[1]["Reading"] == "no clear difference"
    assert table.iloc[2]["Reading"] == "not estimable"


def test_indicators_frame_suppresses_a_small_group_column():
    indicators = pd.DataFrame([
        dict(arm="partnered", wave="baseline", n_children=40, n_centres=4, elom_total_mean=44.25, on_track_pct=40.4,
             attendance_rate_mean=0.815),
        dict(arm="partnered", wave="endline", n_children=40, n_centres=2, elom_total_mean=50.0, on_track_pct=50.0,
             attendance_rate_mean=0.8),
        dict(arm="comparison", wave="baseline", n_children=9, n_centres=5, elom_total_mean=41.0, on_track_pct=30.0,
             attendance_rate_mean=0.7),
    ])
    table = reporting.indicators_frame(indicators).set_index("Indicator")
    assert table.loc["Mean ELOM total (0–100)", "Partnered, baseline"] == "44.2"
    assert table.loc["On Track on the ELOM standards", "Partnered, baseline"] == "40%"
    assert table.loc["Mean attendance rate", "Partnered, baseline"] == "82%"
    assert table.loc["Centres", "Partnered, endline"] == "<3"
    assert table.loc["Mean ELOM total (0–100)", "Partnered, endline"] == "suppressed"
    assert table.loc["Children", "Comparison, baseline"] == "<10"
    assert table.loc["On Track on the ELOM standards", "Comparison, baseline"] == "suppressed"
    assert table.loc["Children", "Comparison, endline"] == "0"


def test_satisfaction_scorecard_and_balance_frames():
    satisfaction = pd.DataFrame([
        dict(arm="partnered", item="overall", n_valid=60, top2_pct=84.4, mean_score=4.2),
        dict(arm="comparison", item="overall", n_valid=8, top2_pct=71.0, mean_score=3.9),
        dict(arm="partnered", item="nps", n_valid=58, top2_pct=NAN, mean_score=32.0),
    ])
    table = reporting.satisfaction_frame(satisfaction)
    assert table.iloc[0]["Partnered"] == "84% (n 60)" and table.iloc[0]["Comparison"] == "suppressed (n <10)"
    assert table.iloc[1]["Item"].startswith("Net promoter") and table.iloc[1]["Partnered"] == "+32 (n 58)"
    scorecard = pd.DataFrame([
        dict(scope="national", region="", metric="monthly_customer_service_score", value=81.0, target=85, unit="%",
             is_met=False),
        dict(scope="region", region="Gauteng", metric="practitioners_trained", value=512, target=500, unit="count",
             is_met="True"),
    ])
    card = reporting.scorecard_frame(scorecard, "Gauteng")
    assert card.to_dict("records") == [
        {"Metric": "Practitioners trained", "Scope": "Gauteng", "Value": "512", "Target": "500", "Met?": "Yes"},
        {"Metric": "Monthly customer service score", "Scope": "All regions", "Value": "81%", "Target": "85%",
         "Met?": "Not yet"}]
    balance = pd.DataFrame([dict(variable="setting", label="Setting", level="urban", n_partnered=50, n_comparison=9,
                                 mean_partnered=0.7, mean_comparison=0.4, smd=0.61, variance_ratio=0.9, flag="fails"),
                            dict(variable="age_months", label="Age (months)", level=NAN, n_partnered=50,
                                 n_comparison=40, mean_partnered=55.0, mean_comparison=55.5, smd=-0.1,
                                 variance_ratio=1.2, flag="adjust")])
    frame = reporting.balance_frame(balance)
    assert frame.iloc[0]["Characteristic"] == "Setting: urban" and frame.iloc[0]["Std. difference"] == "suppressed"
    # the comparison arm (9) is small: its mean and what compares the arms, verdict too; not the partnered mean
    assert frame.iloc[0]["Verdict"] == "suppressed" and frame.iloc[0]["Comparison"] == "suppressed"
    assert frame.iloc[0]["Partnered"] == "0.70"
    assert frame.iloc[1]["Std. difference"] == f"{MINUS}0.10" and frame.iloc[1]["Verdict"] == "adjusted for"


def test_rows_kept_and_dropped_by_reason_from_the_manifest():
    manifest = {"rows": {"centres": {"rows_in": 254, "rows_kept": 253, "rows_dropped": 1,
                                     "dropped_by_rule": {"unknown_province: never guessed, centre excluded": 1}},
                         "child_assessments": {"rows_in": 5685, "rows_kept": 5599, "rows_dropped": 86,
                                               "dropped_by_rule": {"exact_duplicate_row": 56,
                                                                   "centre_id_not_in_centres": 30}}}}
    kept = reporting.rows_kept_frame(manifest)
    assert kept.to_dict("records") == [
        {"Table": "centres", "Rows read": "254", "Kept": "253", "Dropped": "<10"},
        {"Table": "child assessments", "Rows read": "5,685", "Kept": "5,599", "Dropped": "86"}]
    reasons = reporting.dropped_by_reason_frame(manifest)
    assert reasons["Reason"].tolist() == ["exact duplicate row", "centre id not in centres",
                                          "unknown province — never guessed, centre excluded"]
    assert reasons["Rows dropped"].tolist() == ["56", "30", "<10"]
    assert reporting.rows_kept_frame(None).empty


def test_data_quality_summary_matches_the_log_count():
    log = pd.DataFrame({"table": ["centres"] * 12 + ["child_assessments"] * 30,
                        "rule": ["province_alias"] * 12 + ["exact_duplicate_row"] * 30,
                        "action": ["changed"] * 12 + ["dropped"] * 30})
    summary = pd.DataFrame([dict(table="centres", action="changed", rule="province_alias", n_rows=12),
                            dict(table="child_assessments", action="dropped", rule="exact_duplicate_row", n_rows=30)])
    pd.testing.assert_frame_equal(reporting.data_quality_frame(log),
                                  reporting.data_quality_summary_frame(summary))


@pytest.mark.parametrize("mde_sd, expect", [(0.08, None), (0.2, "could be missed"),
                                            (0.31, "is not evidence of no effect")])
def test_power_sentence_says_what_could_be_missed(mde_sd, expect):
    power = pd.DataFrame([dict(region="Gauteng", mde_sd=mde_sd, mde_points=mde_sd * 12.5)])
    text = reporting.power_sentence(power)
    assert f"about {mde_sd:.2f} SD" in text
    if expect is None:
        assert "missed" not in text
    else:
        assert expect in text
    assert reporting.power_sentence(None) == ""


def test_a_results_file_with_an_unexpected_layout_gives_a_sentence_not_an_error(prepared):
    out, processed = prepared
    pd.DataFrame({"region": ["Gauteng"], "something": [1]}).to_csv(out / "results" / "indicators.csv", index=False)
    data = load_region("Gauteng", out, processed)
    markup = reporting.indicators_table(data).data
    assert "could not be shown" in markup and "indicators.csv" in markup


def test_load_region_reads_optional_tables_for_the_region(prepared):
    out, processed = prepared
    pd.DataFrame([dict(scope="national", region="", metric="m", value=1, target=2, unit="", is_met=False, note=""),
                  dict(scope="region", region="Gauteng", metric="m", value=1, target=2, unit="", is_met=False, note=""),
                  dict(scope="region", region="Limpopo", metric="m", value=1, target=2, unit="", is_met=False, note="")]
                 ).to_csv(out / "results" / "scorecard.csv", index=False)
    data = load_region("Gauteng", out, processed)
    assert data.table("balance") is None
    assert sorted(data.table("scorecard")["scope"]) == ["national", "region"]
    assert set(data.table("scorecard")["region"].fillna("")) == {"", "Gauteng"}


def test_satisfaction_and_scorecard_use_the_stages_labels_and_nps_column():
    satisfaction = pd.DataFrame([
        dict(arm="partnered", item="sat_safety", item_label="Safety of the child", n_valid=217, top2_pct=86.2,
             mean_score=4.3, nps=NAN),
        dict(arm="partnered", item="nps", item_label="Net promoter score", n_valid=225, top2_pct=NAN,
             mean_score=NAN, nps=29.3),
        dict(arm="partnered", item="overall", item_label="All items pooled", n_valid=1298, top2_pct=86.7,
             mean_score=4.4, nps=NAN),
    ])
    table = reporting.satisfaction_frame(satisfaction)
    assert table["Item"].tolist() == ["Customer service score (all items; share answering 4–5 of 5)",
                                      "Safety of the child", "Net promoter score (−100 to 100)"]
    assert table["Partnered"].tolist() == ["87% (n 1,298)", "86% (n 217)", "+29 (n 225)"]
    assert table["Comparison"].tolist() == ["–"] * 3
    card = reporting.scorecard_frame(pd.DataFrame([dict(
        scope="region", region="Gauteng", metric="customer_service_score_pct", label="Customer service score (top-2-box)",
        value=79.66, target=85.0, unit="percent", is_met=False)]), "Gauteng")
    assert card.iloc[0].to_dict() == {"Metric": "Customer service score (top-2-box)", "Scope": "Gauteng",
                                      "Value": "80%", "Target": "85%", "Met?": "Not yet"}
