"""Report wording, small-cell suppression and loading, on hand-made rows with known answers."""

from __future__ import annotations

import json

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
    assert first["Estimate"] == "+2.00" and first["95% interval"] == "0.50 to 3.50"
    assert first["Method"].endswith("— primary")
    assert first["Children"] == "400"
    assert small["Estimate"] == "suppressed" and small["p-value"] == "suppressed"
    assert small["Children"] == "<10"
    assert missing["Estimate"] == "not estimable"
    assert missing["Partnered centres"] == "<3" and missing["Comparison centres"] == "4"
    assert missing["Note"] == "Only 2 partnered"


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


def test_sections_render_with_alt_text_and_no_personal_data(prepared):
    out, processed = prepared
    data = load_region("Gauteng", out, processed)
    pieces = [reporting.title(data), reporting.headline(data), reporting.estimate_table(data),
              reporting.effect_figure(data), reporting.score_distribution_figure(data),
              reporting.on_track_table(data), reporting.sample_size_table(data),
              reporting.data_quality_table(data), reporting.methods(data), reporting.limitations(data),
              reporting.reproducibility_stamp(data)]
    markup = "\n".join(p.data for p in pieces)
    assert markup.count("<img ") == 2
    assert markup.count('alt="') == 2 and 'alt=""' not in markup
    assert "SECRET-" not in markup
    assert "f" * 64 in markup  # input hash in the stamp
    assert "No cleaning log was found" in markup
    assert "t distribution with 25 degrees of freedom" in markup  # df from the row
