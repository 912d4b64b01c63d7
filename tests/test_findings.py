"""One voice: each region's conclusion is decided once (reporting.finding) and every page says it;
printed intervals are rounded outward so they never contradict their sentence."""

from __future__ import annotations

import html
import math
import re

import pandas as pd
import pytest

from conftest import SAMPLE
from evalkit import reporting
from evalkit.pipeline import run


def _rows(ci_cr1, ci_cr2, ci_boot, region="North West", n_part=12, n_comp=14):
    base = dict(region=region, outcome="elom_total", estimator="ancova", subgroup="", status="ok", estimate=-5.1,
                effect_size_sd=-0.46, n_children=118, n_centres_partnered=n_part, n_centres_comparison=n_comp,
                warning="", note="", df=14)
    return pd.DataFrame([dict(base, inference="CR1", ci_low=ci_cr1[0], ci_high=ci_cr1[1], is_primary=True),
                         dict(base, inference="CR2", ci_low=ci_cr2[0], ci_high=ci_cr2[1], is_primary=False),
                         dict(base, inference="WCR-bootstrap", ci_low=ci_boot[0], ci_high=ci_boot[1],
                              is_primary=False)])


@pytest.mark.parametrize("low, high, digits, expected", [
    (-0.003, 3.14, 1, "−0.1 to 3.2"),   # never "0.0 to 3.1" for an interval that includes zero
    (0.25, 0.35, 1, "0.2 to 0.4"),
    (0.3, 0.7, 1, "0.3 to 0.7"),         # exact decimals are not widened
    (-9.31, -0.88, 1, "−9.4 to −0.8"),
    (0.004, 0.016, 2, "0.00 to 0.02"),
])
def test_intervals_are_rounded_outward(low, high, digits, expected):
    assert reporting.format_interval(low, high, digits) == expected
    shown_low, shown_high = reporting.outward(low, high, digits)
    assert shown_low <= low and shown_high >= high and shown_high - shown_low <= high - low + 2 * 10 ** -digits


def test_a_direction_the_small_sample_checks_do_not_confirm_is_not_called_clear():
    rows = _rows((-9.31, -0.88), (-12.8, 2.64), (-11.4, 0.51))
    found = reporting.finding(rows, "North West")
    assert found["level"] == "tentative" and found["reading"] == "probably lower, not certain"
    assert found["finding"].startswith("Children in partnered centres may have scored 5.1 points lower")
    assert "small-sample checks (CR2: −12.8 to 2.7 points; wild cluster bootstrap: −11.4 to 0.6 points) " \
           "include zero" in found["interval"]
    confirmed = reporting.finding(_rows((-9.31, -0.88), (-9.9, -0.2), (-10.0, -0.1)), "North West")
    assert confirmed["level"] == "clear" and confirmed["reading"] == "partnered lower"
    assert confirmed["finding"].startswith("Children in partnered centres scored 5.1 points lower")


def test_findings_frame_has_one_row_per_region_with_the_pages_text():
    rows = pd.concat([_rows((-9.31, -0.88), (-12.8, 2.64), (-11.4, 0.51)),
                      _rows((1.0, 3.0), (0.9, 3.1), (0.8, 3.2), region="Gauteng")], ignore_index=True)
    table = reporting.findings_frame(rows, ["North West", "Gauteng"])
    assert list(table.columns) == reporting.FINDING_COLUMNS
    assert table["level"].tolist() == ["tentative", "clear"]
    assert table["conclusion"].iloc[1] == reporting.headline_text(reporting.primary_row(rows, "Gauteng"), "Gauteng",
                                                                   reporting.few_cluster_checks(rows, rows.iloc[3]))


def _text(page: str) -> str:
    page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.mark.slow
def test_the_index_and_every_page_say_the_regions_finding(tmp_path):
    regions = ["North West", "KwaZulu-Natal", "Northern Cape", "Gauteng"]
    out = tmp_path / "out"
    assert run(SAMPLE, out, regions=regions, jobs=2, progress=lambda _: None).exit_code == 0
    findings = pd.read_csv(out / "results" / "findings.csv", keep_default_na=False)
    assert set(findings["region"]) == {*regions, "National"}
    index = (out / "index.html").read_text(encoding="utf-8")
    rows = dict(re.findall(r'<a href="regions/([a-z-]+)\.html">.*?data-label="Result"[^>]*>([^<]*)<', index, re.S))
    for region in regions:
        row = findings.loc[findings["region"] == region].iloc[0]
        slug = region.lower().replace(" ", "-")
        page = _text((out / "regions" / f"{slug}.html").read_text(encoding="utf-8"))
        found = reporting.finding(pd.read_csv(out / "results" / "estimates.csv"), region)
        assert found["conclusion"] == row["conclusion"]
        assert " ".join(found["finding"].split()) in page
        assert row["certainty"] in page
        if row["reading"]:
            assert rows[slug].strip().lower() == row["reading"].lower(), region
        # no printed interval contradicts its sentence: "includes zero" goes with a low end <= 0
        for low, high in re.findall(r"(−?\d+\.\d) to (−?\d+\.\d)", page):
            lo, hi = (float(v.replace("−", "-")) for v in (low, high))
            assert lo <= hi
        if row["level"] == "unclear":
            assert "includes zero" in page or "spans zero" in page
    north_west = findings.loc[findings["region"] == "North West"].iloc[0]
    assert north_west["level"] == "tentative" and "clearly lower" not in index.split("North West")[0][-400:]
    assert math.isfinite(len(index))


def test_shares_are_shown_in_percentage_points():
    rows = _rows((0.02, 0.23), (0.01, 0.24), (0.0, 0.25), region="Gauteng")
    rows["outcome"], rows["estimate"] = "is_on_track", 0.1256
    shown = reporting.in_display_units(rows)
    assert shown["estimate"].tolist() == pytest.approx([12.56] * 3)
    assert shown[["ci_low", "ci_high"]].iloc[0].tolist() == pytest.approx([2.0, 23.0])
    assert reporting.in_display_units(shown) is shown  # converted once only
    found = reporting.finding(rows, "Gauteng")
    assert "scored 12.6 percentage points higher on the On Track" in found["finding"]
    table = reporting.effects_frame(shown)
    assert table["Outcome"].tolist() == ["On Track (percentage points)"]
    assert table["Difference (95% interval)"].iloc[0] == "+12.6 (2.0 to 23.0)"


@pytest.mark.parametrize("code, label", [
    ("sex=female", "Girls"), ("setting=peri-urban", "Peri-urban centres"),
    ("partner_type=cbo", "Partnered with community-based organisations"),
    ("exposure_months=12-24", "12–24 months of partnership"), ("exposure_months=24+", "24 or more months of partnership"),
    ("dose:per_12_months", "Each further 12 months of partnership"),
    ("sex:female_minus_male", "Girls minus boys (difference in the effect)"),
])
def test_subgroups_are_named_in_words(code, label):
    assert reporting.subgroup_label(code) == label


def test_a_bound_that_rounds_to_zero_keeps_its_side():
    assert reporting.format_interval(-0.081, -0.003, 2) == "−0.09 to −0.00"
    assert reporting.format_interval(0.003, 0.081, 2) == "0.00 to 0.09"


def test_months_of_development_come_from_the_datas_own_age_gradient():
    import numpy as np

    rng = np.random.default_rng(7)
    n = 400
    age = rng.uniform(50, 66, n)
    centre = np.repeat([f"C{i}" for i in range(20)], n // 20)
    noise = rng.normal(0, 2, n)
    children = pd.DataFrame({"elom_total": 10 + 0.8 * age + noise, "age_months": age, "centre_id": centre,
                             "wave": "baseline", "is_partnered": False})
    gradient = reporting.age_gradient(children)
    # the hand-computed OLS slope
    slope = np.polyfit(age, children["elom_total"], 1)[0]
    assert gradient["slope"] == pytest.approx(slope, rel=1e-10)
    assert gradient["ci_low"] < slope < gradient["ci_high"]
    row = pd.Series({"outcome": "elom_total", "estimate": 4.0})
    text = reporting.months_sentence(row, gradient)
    assert text.startswith(f"A difference of 4.0 points is about {reporting.format_number(4.0 / slope, 1)} months")
    assert "A rough guide, not a measured gain in months." in text
    assert reporting.months_sentence(pd.Series({"outcome": "haz", "estimate": 0.2}), gradient) == ""
    assert reporting.age_gradient(children.head(5)) is None  # too few to publish


def test_a_district_page_names_its_province():
    data = reporting.RegionData(region="eThekwini", estimates=pd.DataFrame(), children=pd.DataFrame(),
                                province="KwaZulu-Natal")
    assert "<h1>eThekwini</h1><p class=\"ek-meta\">District of KwaZulu-Natal</p>" in reporting.title(data).data
    province = reporting.RegionData(region="Gauteng", estimates=pd.DataFrame(), children=pd.DataFrame())
    assert "District of" not in reporting.title(province).data
