"""The analysis plan (evalkit.yml): reading and checking it, and that each key changes exactly
what it names in the results and the report."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from conftest import SAMPLE
from evalkit import reporting
from evalkit.config import load_rules
from evalkit.errors import InputError
from evalkit.estimation import ancova_frame
from evalkit.pipeline import prepare, run
from evalkit.plan import PLAN_KEYS, Plan, check_choices, current_plan, load_plan, plan_template, using

REGIONS = ["North West", "Gauteng"]  # North West has 6 partnered centres, Gauteng many


def _visible_text(page: str) -> str:
    body = page.split("<body", 1)[1]
    body = re.sub(r"<(style|script|svg)\b.*?</\1>", "", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def _plan(tmp_path, text: str) -> Plan:
    path = tmp_path / "evalkit.yml"
    path.write_text(text, encoding="utf-8")
    return load_plan(path)


# --------------------------------------------------------------------------- reading and checking

def test_the_template_lists_every_key_and_reads_back_as_the_defaults(tmp_path):
    text = plan_template()
    for name in PLAN_KEYS:
        assert f"# {name.rsplit('.', 1)[-1]}:" in text, name
    plan = _plan(tmp_path, text)
    assert plan.values == {}
    assert plan.effective() == Plan().effective()
    assert plan.effective()["primary.outcome"] == "elom_total"
    assert plan.effective()["covariates.numeric"] == ["age_months"]  # baseline is implied, never listed
    assert plan.effective()["thresholds.min_centres_per_arm"] == 3


def test_a_plan_overrides_the_rules_only_while_it_is_active(tmp_path):
    plan = _plan(tmp_path, "thresholds:\n  min_centres_per_arm: 5\n  small_cells: {children: 20}\n"
                           "covariates:\n  numeric: [age_months, haz]\n")
    assert plan.rule_overrides() == {
        "estimation": {"thresholds": {"min_centres_per_arm": 5},
                       "covariates": {"ancova_numeric": ["baseline", "age_months", "haz"]}},
        "study": {"small_cells": {"children": 20}}}
    before = load_rules("estimation")["thresholds"]["min_centres_per_arm"]
    with using(plan):
        assert load_rules("estimation")["thresholds"]["min_centres_per_arm"] == 5
        assert load_rules("study")["small_cells"] == {"children": 20, "centres": 3}  # the rest kept
        assert reporting.min_children_per_cell() == 20
        assert current_plan() is plan
    assert load_rules("estimation")["thresholds"]["min_centres_per_arm"] == before == 3
    assert reporting.min_children_per_cell() == 10


@pytest.mark.parametrize("text, message", [
    ("primary:\n  outcom: elom_ell\n", "unknown key 'primary.outcom'; the plan's keys here are: primary.estimator, "
                                       "primary.inference, primary.outcome"),
    ("thresholds:\n  min_centres_per_arm: two\n", "'thresholds.min_centres_per_arm' must be a whole number of 1 "
                                                  "or more, not 'two'"),
    ("thresholds:\n  min_centres_per_arm: 0\n", "'thresholds.min_centres_per_arm' must be a whole number"),
    ("regions:\n  level: ward\n", "'regions.level' must be 'province' or 'district', not 'ward'"),
    ("report:\n  decimal_mark: ';'\n", "'report.decimal_mark' must be '.' or ','"),
    ("covariates: [sex]\n", "'covariates' must be a mapping of keys to values"),
    ("colour: blue\n", "unknown key 'colour'"),
    ("primary: [\n", "is not valid YAML (line"),
])
def test_a_bad_plan_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(InputError) as caught:
        _plan(tmp_path, text)
    assert message in str(caught.value)
    assert str(tmp_path / "evalkit.yml") in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("primary:\n  outcome: elom_totl\n", "'primary.outcome' has 'elom_totl', which is not one of: elom_total"),
    ("estimators: [ancova, matching]\n", "'estimators' has 'matching', which is not one of: ancova, did"),
    ("inference: [CR3]\n", "'inference' has 'CR3', which is not one of: CR1, CR2, WCR-bootstrap"),
    ("thresholds:\n  small_cells: {children: 2, centres: 5}\n", "must not be larger than"),
])
def test_names_the_estimation_stage_does_not_know_are_an_error(tmp_path, text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        check_choices(_plan(tmp_path, text))


def test_a_large_or_unreadable_plan_is_refused(tmp_path):
    path = tmp_path / "evalkit.yml"
    path.write_text("report:\n  title: " + "x" * 300_000 + "\n")
    with pytest.raises(InputError, match="an analysis plan is at most"):
        load_plan(path)
    path.write_bytes(b"report:\n  title: \xff\xfe\n")
    with pytest.raises(InputError, match="is not valid YAML"):
        load_plan(path)


# --------------------------------------------------------------------------- results

@pytest.fixture(scope="module")
def default_estimates():
    return prepare(SAMPLE, regions=REGIONS, jobs=2).estimates


def _prepared(tmp_path, text):
    plan = _plan(tmp_path, text)
    with using(plan):
        return prepare(SAMPLE, regions=REGIONS, jobs=2).estimates


_KEY = ["region", "outcome", "estimator", "inference", "subgroup"]


def _by_key(frame):
    return frame.set_index(_KEY).sort_index()


@pytest.mark.slow
def test_the_primary_outcome_moves_the_primary_flag_and_the_subgroup_rows_only(tmp_path, default_estimates):
    changed = _prepared(tmp_path, "primary:\n  outcome: elom_ell\n")
    primary = changed[changed["is_primary"]]
    assert set(primary["outcome"]) == {"elom_ell"} and set(primary["estimator"]) == {"ancova"}
    assert set(primary["inference"]) == {"CR1"} and set(primary["region"]) == {*REGIONS, "National"}
    whole_old = _by_key(default_estimates[default_estimates["subgroup"] == ""]).drop(columns="is_primary")
    whole_new = _by_key(changed[changed["subgroup"] == ""]).drop(columns="is_primary")
    pd.testing.assert_frame_equal(whole_old, whole_new)  # every whole-region number is the same
    subgroups = changed[changed["subgroup"] != ""]
    assert set(subgroups["outcome"]) == {"elom_ell"}  # heterogeneity follows the primary outcome
    assert len(subgroups) == (default_estimates["subgroup"] != "").sum()


@pytest.mark.slow
def test_a_covariate_changes_the_ancova_rows_and_nothing_else(tmp_path, default_estimates):
    changed = _prepared(tmp_path, "covariates:\n  categorical: [sex]\n")  # setting left out
    old, new = _by_key(default_estimates), _by_key(changed)
    assert old.index.equals(new.index)
    ancova = old.index.get_level_values("estimator") == "ancova"
    pd.testing.assert_frame_equal(old[~ancova], new[~ancova])
    estimable = (old["status"] == "ok").to_numpy() & ancova
    assert (old.loc[estimable, "estimate"] != new.loc[estimable, "estimate"]).mean() > 0.9
    # the primary row equals an OLS without setting, clustered by centre (statsmodels' CR1 = Stata's)
    row = changed[changed["is_primary"] & (changed["region"] == "Gauteng")].iloc[0]
    with using(Plan()):
        frame = ancova_frame(pd.read_parquet(_child_outcomes(tmp_path)), "Gauteng")
    fit = smf.ols("y ~ partnered + baseline + age_months + C(sex)", data=frame).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(frame["centre_id"])[0]})
    assert row["estimate"] == pytest.approx(fit.params["partnered"], rel=1e-10)
    assert row["std_error"] == pytest.approx(fit.bse["partnered"], rel=1e-8)
    default_row = default_estimates[default_estimates["is_primary"] & (default_estimates["region"] == "Gauteng")]
    assert default_row["estimate"].iloc[0] != pytest.approx(row["estimate"], rel=1e-6)


def _child_outcomes(tmp_path):
    out = tmp_path / "run"
    if not (out / "processed" / "child_outcomes.parquet").is_file():
        run(SAMPLE, out, regions=["Gauteng"], render=False, progress=lambda _: None, plan=Plan())
    return out / "processed" / "child_outcomes.parquet"


@pytest.mark.slow
def test_the_minimum_centres_per_arm_makes_exactly_the_rows_below_it_not_estimable(tmp_path, default_estimates):
    changed = _prepared(tmp_path, "thresholds:\n  min_centres_per_arm: 7\n")
    old, new = _by_key(default_estimates), _by_key(changed)
    fewest = old[["n_centres_partnered", "n_centres_comparison"]].min(axis=1)
    newly = (old["status"] == "ok") & (new["status"] == "not_estimable")
    assert newly.any()
    assert (fewest[newly] < 7).all() and (fewest[newly] >= 3).all()
    assert new.loc[newly, "note"].str.contains("at least 7 of each are needed").all()
    kept = ~newly & (old["status"] == "ok")
    assert (fewest[kept] >= 7).all()
    pd.testing.assert_frame_equal(old[kept].drop(columns=["q_value_bh", "q_value_sharpened"]),
                                  new[kept].drop(columns=["q_value_bh", "q_value_sharpened"]))
    north_west = changed[changed["is_primary"] & (changed["region"] == "North West")].iloc[0]
    assert north_west["status"] == "not_estimable"  # 6 partnered centres


# --------------------------------------------------------------------------- the report

@pytest.mark.slow
def test_the_report_follows_the_plan_and_says_what_it_set(tmp_path):
    plan = _plan(tmp_path, "report:\n  title: Thrive partnerships 2025\n  funder: The Example Trust\n"
                           "  decimal_mark: ','\nprimary:\n  outcome: elom_ell\n"
                           "thresholds:\n  min_centres_per_arm: 7\n")
    out = tmp_path / "out"
    result = run(SAMPLE, out, regions=REGIONS, jobs=2, progress=lambda _: None, plan=plan)
    assert result.exit_code == 0
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["plan"]["set"] == plan.values
    assert manifest["plan"]["effective"]["primary.outcome"] == "elom_ell"
    assert manifest["plan"]["effective"]["covariates.categorical"] == ["sex", "setting"]
    page = (out / "regions" / "gauteng.html").read_text(encoding="utf-8")
    assert "Thrive partnerships 2025" in page and "Funder: The Example Trust" in page
    assert "<code>primary.outcome</code>: elom_ell" in page
    assert "<code>thresholds.min_centres_per_arm</code>: 7" in page
    assert "adjusting for the child's baseline ELOM emergent literacy" in page
    text = _visible_text(page)
    assert re.search(r'aria-label="Best estimate [+−]?\d+,\d points, 95% interval [+−]?\d+,\d to', page)
    with_point = [m for m in re.findall(r"\b\d+\.\d+\b", text.split("Reproducibility stamp")[0])]
    assert with_point == []  # every number before the package versions has the decimal comma
    north_west = (out / "regions" / "north-west.html").read_text(encoding="utf-8")
    assert "at least 7 of each are needed" in north_west
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>Thrive partnerships 2025: all regions</title>" in index
    # a second run with the same plan is cached; a changed plan is not
    again = run(SAMPLE, out, regions=REGIONS, jobs=2, progress=lambda _: None, plan=plan)
    assert again.cached
    other = _plan(tmp_path, "report:\n  title: Another title\n")
    assert not run(SAMPLE, out, regions=REGIONS, jobs=2, progress=lambda _: None, plan=other,
                   render=True).cached
    assert "Another title" in (out / "regions" / "gauteng.html").read_text(encoding="utf-8")
    assert np.isfinite(manifest["timings_seconds"]["total"])


def test_the_typed_rules_follow_the_plan_and_refuse_unknown_keys(tmp_path):
    from evalkit.ruleset import EstimationRules, _build, estimation_rules, study_rules

    assert estimation_rules().thresholds.min_centres_per_arm == 3
    assert estimation_rules().covariates.ancova_categorical == ("sex", "setting")
    plan = _plan(tmp_path, "thresholds:\n  min_centres_per_arm: 4\nreport:\n  decimal_mark: ','\n")
    with using(plan):
        assert estimation_rules().thresholds.min_centres_per_arm == 4
        assert study_rules().report.decimal_mark == ","
    assert estimation_rules().thresholds.min_centres_per_arm == 3
    raw = dict(load_rules("estimation"))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['thresold'\]"):
        _build(EstimationRules, {**raw, "thresold": {}}, "estimation")
    del raw["power"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['power'\]"):
        _build(EstimationRules, raw, "estimation")
