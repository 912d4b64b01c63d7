"""Tests for :mod:`evalkit.simulate`: determinism, the contract, the design and a known true effect.

The analysis helpers below read the generated files the way the data contract
describes them (spelling variants from ``evalkit/rules``, missing codes, mixed
day-first dates, the treatment rule), independently of ``evalkit.cleaning``,
so a mistake in the simulator cannot hide behind the same mistake in the cleaner.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evalkit.config import ELOM_DOMAINS, load_rules
from evalkit.simulate import SimulationParameters, SimulationResult, simulate

# Tolerances, declared once.
ICC_RANGE = (0.12, 0.30)  # baseline elom_total, one-way ANOVA estimator, scale-2 sample
PARTNERED_SHARE_RANGE = (0.33, 0.47)
EFFECT_SES = 3.0  # the pooled ANCOVA estimate lies within this many cluster-robust SEs of the truth
SCALE_EFFECT = 8  # sample for the known-effect test (about 2,000 centres)
SCALE_RATIO_TOLERANCE = 0.25  # rows at scale 0.2 / rows at scale 1 within 0.2 +- this share of 0.2

CONTRACT = {
    "centres": ["centre_id", "centre_name", "province", "district", "setting", "registration_status",
                "enrolment", "practitioners", "practitioners_trained", "fee_band", "feedback_channel",
                "parent_events"],
    "partnerships": ["partnership_id", "centre_id", "partner_name", "partner_type", "mou_signed_date",
                     "status"],
    "child_assessments": ["child_id", "centre_id", "wave", "assessment_date", "date_of_birth", "sex",
                          "child_name", "elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell",
                          "height_cm", "weight_kg", "days_attended", "days_possible", "assessor_id"],
    "parent_survey": ["response_id", "centre_id", "submission_time", "respondent_phone",
                      "sat_communication", "sat_safety", "sat_learning", "sat_staff_respect",
                      "sat_responsiveness", "sat_overall", "recommend"],
}
DATA_FILES = [f"{name}.csv" for name in CONTRACT] + ["truth.csv"]
RULES = load_rules("cleaning")
MISSING_CODES = set(RULES["missing_codes"])
DATE_FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d"]


# ----------------------------------------------------------------- reading helpers


def _read(folder: Path, name: str) -> pd.DataFrame:
    if name == "parent_survey":
        return pd.read_csv(folder / f"{name}.csv", sep=";", encoding="cp1252", dtype=str,
                           keep_default_na=False)
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False, encoding="utf-8")


def _fold(values: pd.Series) -> pd.Series:
    """Fold case, punctuation and spaces, as the rules files describe."""
    text = values.astype(str).str.lower().str.strip()
    text = text.str.replace(r"[\-_./,]+", " ", regex=True)
    return text.str.replace(r"\s+", " ", regex=True).str.strip()


def _lookup(variants: dict) -> dict[str, str]:
    table = {}
    for canonical, spellings in variants.items():
        for spelling in [canonical, *spellings]:
            table[_fold(pd.Series([str(spelling)])).iloc[0]] = str(canonical)
    return table


def _category(values: pd.Series, variable: str) -> pd.Series:
    return _fold(values).map(_lookup(RULES["categories"][variable]))


def _province(values: pd.Series) -> pd.Series:
    rules = load_rules("provinces")["provinces"]
    table = _lookup({p["name"]: [p["code"], *p["variants"]] for p in rules})
    key = _fold(values)
    return key.map(table).fillna(key.str.replace(r"\s*province$", "", regex=True).map(table))


def _numbers(values: pd.Series) -> pd.Series:
    text = values.str.strip()
    return pd.to_numeric(text.where(~text.isin(MISSING_CODES)), errors="coerce")


def _dates(values: pd.Series) -> pd.Series:
    text = values.str.strip()
    parsed = pd.to_datetime(text, format=DATE_FORMATS[0], errors="coerce")
    for fmt in DATE_FORMATS[1:]:
        parsed = parsed.fillna(pd.to_datetime(text, format=fmt, errors="coerce"))
    return parsed


def _clean_centres(folder: Path) -> pd.DataFrame:
    centres = _read(folder, "centres")
    centres["region"] = _province(centres["province"])
    centres["setting"] = _category(centres["setting"], "setting")
    return centres[centres["region"].notna()].set_index("centre_id")


def _partnered(folder: Path, children: pd.DataFrame) -> pd.Series:
    """The contract's treatment rule: an active MOU signed on or before the first endline date."""
    mous = _read(folder, "partnerships")
    mous["status"] = _category(mous["status"], "status")
    mous["signed"] = _dates(mous["mou_signed_date"])
    first_endline = children[children["wave"] == "endline"].groupby("centre_id")["date"].min()
    mous["first_endline"] = mous["centre_id"].map(first_endline)
    ok = (mous["status"] == "active") & (mous["signed"] <= mous["first_endline"])
    return pd.Series(True, index=pd.Index(mous.loc[ok, "centre_id"].unique()))


def _children(folder: Path, centres: pd.DataFrame) -> pd.DataFrame:
    """Child rows without duplicates, conflicts, unknown centres or impossible birth dates."""
    raw = _read(folder, "child_assessments").drop_duplicates()
    raw["wave"] = _category(raw["wave"], "wave")
    raw = raw[~raw.duplicated(["child_id", "wave"], keep=False)]
    raw = raw[raw["centre_id"].isin(centres.index)].copy()
    raw["date"] = _dates(raw["assessment_date"])
    raw["dob"] = _dates(raw["date_of_birth"])
    raw = raw[raw["dob"] <= raw["date"]].copy()
    raw["sex"] = _category(raw["sex"], "sex")
    domains = pd.concat([_numbers(raw[d]) for d in ELOM_DOMAINS], axis=1)
    raw["elom_total"] = domains.sum(axis=1, min_count=len(ELOM_DOMAINS))
    raw["age_months"] = (raw["date"] - raw["dob"]).dt.days / 30.4375
    return raw


def _analysis_frame(folder: Path) -> pd.DataFrame:
    """One row per child with both waves: the data of the contract's primary ANCOVA."""
    centres = _clean_centres(folder)
    rows = _children(folder, centres)
    partnered = _partnered(folder, rows)
    base = rows[rows["wave"] == "baseline"].set_index("child_id")
    end = rows[rows["wave"] == "endline"].set_index("child_id")
    wide = end[["centre_id", "sex", "age_months", "elom_total"]].join(
        base["elom_total"].rename("baseline_total"), how="inner").dropna()
    wide["partnered"] = wide["centre_id"].map(partnered).fillna(False).astype(int)
    wide["setting"] = wide["centre_id"].map(centres["setting"])
    wide["region"] = wide["centre_id"].map(centres["region"])
    return wide


def _icc(values: pd.Series, groups: pd.Series) -> float:
    """One-way ANOVA estimator of the intra-class correlation."""
    frame = pd.DataFrame({"y": values, "g": groups}).dropna()
    stats = frame.groupby("g")["y"].agg(["count", "mean"])
    n, k = len(frame), len(stats)
    grand = frame["y"].mean()
    ssb = float((stats["count"] * (stats["mean"] - grand) ** 2).sum())
    ssw = float(((frame["y"] - frame["g"].map(stats["mean"])) ** 2).sum())
    msb, msw = ssb / (k - 1), ssw / (n - k)
    n0 = (n - float((stats["count"] ** 2).sum()) / n) / (k - 1)
    return (msb - msw) / (msb + (n0 - 1) * msw)


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("scale1") / "data", seed=20251123, scale=1)


@pytest.fixture(scope="module")
def sample2(tmp_path_factory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("scale2") / "data", seed=7, scale=2)


# ----------------------------------------------------------------- tests


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(sample, tmp_path):
    again = simulate(tmp_path / "again", seed=20251123, scale=1)
    other = simulate(tmp_path / "other", seed=20251124, scale=1)
    for name in DATA_FILES:
        assert (sample.out / name).read_bytes() == (again.out / name).read_bytes(), name
    for name in CONTRACT:
        assert (sample.out / f"{name}.csv").read_bytes() != (other.out / f"{name}.csv").read_bytes(), name
    first, second = (json.loads((r.out / "simulation.json").read_text()) for r in (sample, again))
    assert first.pop("command") != second.pop("command")  # it names the folder
    assert first == second


def test_files_have_exactly_the_contract_columns(sample):
    assert {p.name for p in sample.out.iterdir()} == set(DATA_FILES) | {"simulation.json"}
    for name, columns in CONTRACT.items():
        assert list(_read(sample.out, name).columns) == columns, name
    truth = pd.read_csv(sample.out / "truth.csv")
    assert list(truth.columns) == ["region", "true_effect_sd", "true_effect_points", "n_centres",
                                   "n_partnered_designed", "estimable_designed"]
    pd.testing.assert_frame_equal(truth, sample.truth.reset_index(drop=True), check_dtype=False)


def test_parent_survey_is_a_windows_1252_semicolon_export(sample):
    raw = (sample.out / "parent_survey.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1252")
    header = text.split("\r\n", 1)[0]
    assert header == ";".join(CONTRACT["parent_survey"])
    assert "," not in text
    assert "\u00a0" in text  # Excel's non-breaking spaces in phone numbers
    # the UTF-8 tables really are UTF-8, with non-ASCII names
    assert "Crèche" in (sample.out / "centres.csv").read_text(encoding="utf-8")


def test_simulation_record(sample):
    record = json.loads((sample.out / "simulation.json").read_text(encoding="utf-8"))
    assert record["command"] == f"evalkit simulate --out {sample.out} --seed 20251123 --scale 1"
    assert record["seed"] == 20251123 and record["scale"] == 1.0
    assert record["parameters"]["baseline_sd"] == SimulationParameters().baseline_sd
    assert record["evalkit_version"]
    for entry in record["mess"].values():
        assert entry["count"] > 0


def test_design_of_treatment_by_province(sample):
    truth = sample.truth.set_index("region")
    centres = _clean_centres(sample.out)
    rows = _children(sample.out, centres)
    partnered = centres.index.isin(_partnered(sample.out, rows).index)
    by_region = pd.DataFrame({"region": centres["region"], "partnered": partnered}).groupby("region")
    n_partnered = by_region["partnered"].sum()
    n_comparison = by_region.size() - n_partnered
    # the files, read by the contract's rule, give the designed numbers
    assert n_partnered.to_dict() == truth["n_partnered_designed"].to_dict()
    assert by_region.size().to_dict() == truth["n_centres"].to_dict()
    assert n_partnered["Northern Cape"] == 2
    assert not truth.loc["Northern Cape", "estimable_designed"]
    assert (n_partnered.drop("Northern Cape") >= 3).all()
    assert (n_comparison.drop("Northern Cape") >= 3).all()
    assert truth["estimable_designed"].drop("Northern Cape").all()
    assert 180 <= len(centres) <= 320
    assert 5 <= truth.loc["Northern Cape", "n_centres"] <= 12
    assert PARTNERED_SHARE_RANGE[0] <= partnered.mean() <= PARTNERED_SHARE_RANGE[1]
    # selection on observables: urban centres partner more often than rural ones
    share = pd.Series(partnered, index=centres.index).groupby(centres["setting"]).mean()
    assert share["urban"] > share["rural"] + 0.15
    # MOUs after the endline and ended MOUs do not make a centre partnered
    mous = _read(sample.out, "partnerships")
    assert (_category(mous["status"], "status") == "ended").any()
    with_mou = set(mous["centre_id"])
    assert len(with_mou - set(centres.index[partnered])) > 0
    assert all(0.10 <= v <= 0.25 for v in truth["true_effect_sd"])
    assert truth["true_effect_sd"].nunique() == len(truth)


def test_every_spelling_is_one_the_cleaning_rules_accept(sample):
    centres = _read(sample.out, "centres")
    unknown = centres.loc[_province(centres["province"]).isna(), "province"]
    assert unknown.tolist() == ["Gondwana"]
    assert (centres["province"] != _province(centres["province"])).sum() > 20
    checks = [("centres", c, c) for c in ("setting", "registration_status", "fee_band", "feedback_channel")]
    checks += [("partnerships", "partner_type", "partner_type"), ("partnerships", "status", "status"),
               ("child_assessments", "sex", "sex"), ("child_assessments", "wave", "wave")]
    for table, column, variable in checks:
        values = _read(sample.out, table)[column]
        mapped = _category(values, variable)
        assert mapped.notna().all(), (table, column, sorted(set(values[mapped.isna()])))
        assert (values != mapped).any(), (table, column)  # some spelling variants are present
    # every date in every table parses with a day-first or ISO format
    children = _read(sample.out, "child_assessments")
    for column in ("assessment_date", "date_of_birth"):
        assert _dates(children[column]).notna().all()
    assert _dates(_read(sample.out, "partnerships")["mou_signed_date"]).notna().all()
    stamps = _read(sample.out, "parent_survey")["submission_time"]
    parsed = pd.Series(pd.NaT, index=stamps.index, dtype="datetime64[ns]")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%S"):
        parsed = parsed.fillna(pd.to_datetime(stamps, format=fmt, errors="coerce"))
    assert parsed.notna().all()


def test_mess_is_present_in_the_files(sample):
    record = json.loads((sample.out / "simulation.json").read_text(encoding="utf-8"))["mess"]
    children = _read(sample.out, "child_assessments")
    survey = _read(sample.out, "parent_survey")
    centres = _read(sample.out, "centres")
    exact = int(children.duplicated().sum())
    assert exact == record["exact_duplicates_child_assessments"]["count"] > 0
    assert 0.005 <= exact / len(children) <= 0.02
    assert int(survey.duplicated().sum()) == record["exact_duplicates_parent_survey"]["count"] > 0
    distinct = children.drop_duplicates()
    wave = _category(distinct["wave"], "wave")
    conflicts = int(distinct.assign(wave=wave).duplicated(["child_id", "wave"]).sum())
    assert conflicts == record["conflicting_duplicates"]["count"] > 0
    height, weight = _numbers(children["height_cm"]), _numbers(children["weight_kg"])
    assert (height > 300).sum() >= record["height_in_mm"]["count"] > 0
    assert (weight > 500).sum() >= record["weight_in_grams"]["count"] > 0
    assert ((height[height > 300] / 10).between(60, 140)).all()
    dob_after = int((_dates(children["date_of_birth"]) > _dates(children["assessment_date"])).sum())
    assert dob_after >= record["date_of_birth_after_assessment"]["count"] > 0
    orphans = int((~children["centre_id"].isin(centres["centre_id"])).sum())
    assert orphans == record["unknown_centre_rows"]["count"] > 0
    # missing codes: every code appears, ELOM cells about 1-2 % missing, -88 common in sat_* items
    elom = children[list(ELOM_DOMAINS)]
    coded = elom.apply(lambda col: col.str.strip().isin(MISSING_CODES))
    assert 0.008 <= coded.to_numpy().mean() <= 0.025
    seen = set(np.unique(elom.to_numpy()[coded.to_numpy()]))
    assert seen == MISSING_CODES - {"n/a", "na"}
    sat = survey[[c for c in survey.columns if c.startswith("sat_")]]
    assert (sat == "-88").to_numpy().sum() > (sat == "-99").to_numpy().sum() > 0
    for column in ("height_cm", "weight_kg", "days_attended", "days_possible"):
        assert children[column].isin(MISSING_CODES).any(), column
    # mixed date formats in one column
    iso = children["assessment_date"].str.match(r"^\d{4}-\d\d-\d\d$")
    dmy = children["assessment_date"].str.match(r"^\d\d/\d\d/\d{4}$")
    ymd = children["assessment_date"].str.match(r"^\d{4}/\d\d/\d\d$")
    assert iso.sum() > dmy.sum() > ymd.sum() > 0 and (iso | dmy | ymd).all()


def test_realistic_levels(sample):
    centres = _clean_centres(sample.out)
    rows = _children(sample.out, centres)
    base = rows[rows["wave"] == "baseline"]
    assert base["age_months"].between(47.9, 60.1).all()
    young = base[base["age_months"].between(52, 56)]
    assert 41 <= young["elom_total"].mean() <= 49
    assert 11 <= base["elom_total"].std() <= 15
    end = rows[rows["wave"] == "endline"]
    assert 3 <= end["elom_total"].mean() - base["elom_total"].mean() <= 9  # about 8 months older
    sex = base.groupby("sex")["elom_total"].mean()
    assert sex["female"] > sex["male"]
    height = _numbers(base["height_cm"])
    height = height[height < 300]
    assert 102 <= height[base["age_months"].between(52, 56)].median() <= 108
    assert 3.5 <= height.std() <= 6.0
    weight = _numbers(base["weight_kg"])
    assert 15.5 <= weight[weight < 500].median() <= 19.0
    attended, possible = _numbers(rows["days_attended"]), _numbers(rows["days_possible"])
    both = attended.notna() & possible.notna()
    assert (attended[both] <= possible[both]).all()
    assert 0.72 <= (attended / possible).mean() <= 0.88
    per_centre = rows[rows["wave"] == "baseline"].groupby("centre_id").size()
    assert 8 <= per_centre.median() <= 15
    survey = _read(sample.out, "parent_survey")
    assert 5 <= survey.groupby("centre_id").size().median() <= 10
    overall = _numbers(survey["sat_overall"])
    assert set(overall.dropna().unique()) <= {1, 2, 3, 4, 5}
    assert 0.6 <= (overall.dropna() >= 4).mean() <= 0.9
    assert _numbers(survey["recommend"]).dropna().between(0, 10).all()


def test_baseline_icc_is_realistic(sample2):
    centres = _clean_centres(sample2.out)
    rows = _children(sample2.out, centres)
    base = rows[rows["wave"] == "baseline"]
    icc = _icc(base["elom_total"], base["centre_id"])
    assert ICC_RANGE[0] <= icc <= ICC_RANGE[1], icc


def test_known_true_effect_is_recovered_by_the_contract_ancova(tmp_path):
    result = simulate(tmp_path / "data", seed=99, scale=SCALE_EFFECT)
    data = _analysis_frame(tmp_path / "data")
    data = data[data["region"] != "Northern Cape"]  # 2 partnered centres: by design not estimable
    covariates = pd.get_dummies(data[["sex", "setting", "region"]], drop_first=True, dtype=float)
    x = pd.concat([data[["partnered", "baseline_total", "age_months"]].astype(float), covariates], axis=1)
    x = sm.add_constant(x)
    groups = pd.factorize(data["centre_id"])[0]
    fit = sm.OLS(data["elom_total"], x).fit(cov_type="cluster", cov_kwds={"groups": groups})
    # with province effects that differ, pooled OLS with province fixed effects estimates a
    # weighted mean of them; the weights are the partnered indicator's residual variation (FWL)
    others = x.drop(columns="partnered")
    resid = data["partnered"] - others @ np.linalg.lstsq(others, data["partnered"], rcond=None)[0]
    weights = (resid * data["partnered"]).groupby(data["region"]).sum()
    truth = result.truth.set_index("region")["true_effect_points"]
    target = float((weights * truth[weights.index]).sum() / weights.sum())
    estimate, se = fit.params["partnered"], fit.bse["partnered"]
    assert se < 0.4
    assert abs(estimate - target) <= EFFECT_SES * se, (estimate, target, se)
    # the comparison is not random: the naive difference in endline means is biased upwards
    naive = data.groupby("partnered")["elom_total"].mean()
    assert naive[1] - naive[0] > target + 1.0


def test_scale_gives_a_proportionally_smaller_folder(sample, tmp_path):
    small = simulate(tmp_path / "small", seed=20251123, scale=0.2)
    for name in ("centres", "child_assessments", "parent_survey"):
        ratio = len(_read(small.out, name)) / len(_read(sample.out, name))
        assert abs(ratio - 0.2) <= 0.2 * SCALE_RATIO_TOLERANCE, (name, ratio)
    size = sum((small.out / f"{n}.csv").stat().st_size for n in CONTRACT)
    full = sum((sample.out / f"{n}.csv").stat().st_size for n in CONTRACT)
    assert 0.15 <= size / full <= 0.25
    assert (small.truth["n_centres"] >= SimulationParameters().min_centres_per_province - 1).all()
    # province effects do not depend on the scale
    pd.testing.assert_series_equal(small.truth["true_effect_points"], sample.truth["true_effect_points"])


def test_bad_scale_is_refused(tmp_path):
    with pytest.raises(ValueError):
        simulate(tmp_path / "x", scale=0)
