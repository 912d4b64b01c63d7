"""Monte Carlo study of evalkit's estimators: bias, RMSE and 95% interval coverage.

Run: ``.venv/bin/python benchmarks/coverage.py [--reps 1000] [--seed 20251123] [--jobs 2]
[--bootstrap-reps 999] [--out coverage.csv]``.

Each replication draws one region at the analysis-frame level (no CSV folder is written) from
the data-generating process of :mod:`evalkit.simulate`, with the numbers of
:class:`evalkit.simulate.SimulationParameters`: setting, registration status and fee band per
centre; partnership by the simulator's logit on them (selection on observables); baseline ELOM
total with an intra-centre correlation of 0.20 and SD 13; the endline from the lagged-dependent
variable model (rho 0.6, a fresh centre shock) with a true effect of 0.2 SD (2.6 points) on
partnered children, so that the ANCOVA coefficient is the estimand; 8-15 children per centre,
10% lost after the baseline and 3% joining at the endline. Two designs:

* ``40 centres``: 40 centres, partnership drawn from the logit (about 40% partnered; at least
  3 in each arm);
* ``5 of 20 partnered``: 20 centres of which exactly 5 partnered, drawn with probabilities from
  the same logit.

Every estimator x inference of :func:`evalkit.estimation.estimate_region` (centre covariates
registration status and fee band) is run on each replication; the table reports, per design,
the number of replications estimated, the mean estimate minus the truth (bias), the RMSE, the
share of 95% intervals that contain the truth (coverage, with its Monte Carlo SE) and the mean
interval width. Seeded: the same arguments give the same table.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from evalkit.estimation import (
    ALL_INFERENCES,
    _ChildFrames,
    _aipw_frame,
    _scored_centres,
    ancova_from_frame,
    aipw_from_frame,
    comparison_baseline_sd,
    did_from_frame,
    ipw_from_frame,
    regression_adjustment_from_frame,
)
from evalkit.simulate import SimulationParameters

SETTINGS = ("urban", "peri-urban", "rural")
REGISTRATION = ("registered", "conditional", "unregistered")
FEE_BANDS = ("none", "low", "middle", "high")
#: setting shares of a typical province (the simulator's national mix)
SETTING_SHARES = (0.55, 0.15, 0.30)
TRUE_EFFECT_SD = 0.20
ICC = 0.20
COVARIATES = ["registration_status", "fee_band"]


@dataclass(frozen=True)
class Design:
    name: str
    n_centres: int
    n_partnered: int | None  # None: drawn from the logit


DESIGNS = (Design("40 centres", 40, None), Design("5 of 20 partnered", 20, 5))


def _centre_effects(p: SimulationParameters) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Baseline level and partnership logit of every setting x registration x fee cell, the cell
    probabilities, and the variance of the centre level over cells (to hold the ICC at 0.20)."""
    reg_p, fee_p = dict(p.registration_probs), dict(p.fee_band_probs)
    lset, lreg, lfee = dict(p.logit_setting), dict(p.logit_registration), dict(p.logit_fee_band)
    level, logit, prob = [], [], []
    for s, setting in enumerate(SETTINGS):
        for r, reg in enumerate(REGISTRATION):
            for f, fee in enumerate(FEE_BANDS):
                level.append(p.setting_baseline[s] + p.registration_baseline[r] + p.fee_band_baseline[f])
                logit.append(lset[setting] + lreg[reg] + lfee[fee])
                prob.append(SETTING_SHARES[s] * reg_p[setting][r] * fee_p[setting][f])
    level, logit, prob = np.array(level), np.array(logit), np.array(prob) / np.sum(prob)
    var_observed = float(prob @ (level - prob @ level) ** 2)
    return level, logit, prob, var_observed


def draw_region(rng: np.random.Generator, design: Design, p: SimulationParameters
                ) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """One region as child_outcomes and centre_outcomes tables, and the true effect in points."""
    level, logit, prob, var_observed = _centre_effects(p)
    n = design.n_centres
    while True:
        cell = rng.choice(prob.size, size=n, p=prob)
        if design.n_partnered is None:
            intercept = np.log(p.partnered_share / (1 - p.partnered_share)) - prob @ logit
            partnered = rng.random(n) < expit(intercept + logit[cell])
        else:  # exactly k, drawn with the logit's odds (Gumbel top-k)
            key = logit[cell] + rng.gumbel(size=n)
            partnered = np.zeros(n, bool)
            partnered[np.argsort(-key)[: design.n_partnered]] = True
        if p.min_centres_per_arm <= partnered.sum() <= n - p.min_centres_per_arm:
            break
    setting = np.array(SETTINGS)[cell // 12]
    registration = np.array(REGISTRATION)[(cell // 4) % 3]
    fee = np.array(FEE_BANDS)[cell % 4]

    total = p.baseline_sd**2
    lo, hi = p.baseline_age_months
    var_age = p.age_slope**2 * (hi - lo) ** 2 / 12
    var_sex = p.sex_gap_baseline**2 * p.female_share * (1 - p.female_share)
    var_centre = ICC * total - var_observed
    var_child = (1 - ICC) * total - var_age - var_sex - 5 * p.domain_error_variance
    tau = TRUE_EFFECT_SD * p.baseline_sd

    sizes = rng.integers(p.children_per_centre[0], p.children_per_centre[1] + 1, n)
    c = np.repeat(np.arange(n), sizes)
    m = c.size
    female = rng.random(m) < p.female_share
    fem = female - p.female_share
    age_b = rng.uniform(lo, hi, m)
    interval = 8.0
    age_e = age_b + interval + rng.uniform(-0.5, 0.5, m)
    x = level[cell] - prob @ level
    base = (sum(p.domain_means) + x[c] + rng.normal(0, np.sqrt(var_centre), n)[c]
            + p.age_slope * (age_b - p.reference_age_months) + p.sex_gap_baseline * fem
            + rng.normal(0, np.sqrt(var_child), m) + rng.normal(0, np.sqrt(5 * p.domain_error_variance), m))
    set_e = np.array(p.setting_endline)[cell // 12]
    end = ((1 - p.rho) * sum(p.domain_means) + p.age_slope * interval + p.rho * base
           + p.age_slope * (1 - p.rho) * (age_e - p.reference_age_months - interval) + p.sex_gap_endline * fem
           + set_e[c] + tau * partnered[c] + rng.normal(0, np.sqrt(p.endline_centre_variance), n)[c]
           + rng.normal(0, np.sqrt(p.endline_child_variance), m)
           + rng.normal(0, np.sqrt(5 * p.endline_domain_error_variance), m))
    leaver = rng.random(m) < p.attrition_share
    joiner = ~leaver & (rng.random(m) < p.endline_joiner_share)
    centre_id = np.array([f"C{i:03d}" for i in range(n)])
    common = {"child_id": np.arange(m), "centre_id": centre_id[c], "region": "R",
              "is_partnered": pd.array(partnered[c], dtype="boolean"),
              "sex": np.where(female, "female", "male"), "setting": setting[c]}
    waves = pd.concat([
        pd.DataFrame({**common, "wave": "baseline", "age_months": age_b, "elom_total": base}).loc[~joiner],
        pd.DataFrame({**common, "wave": "endline", "age_months": age_e, "elom_total": end}).loc[~leaver],
    ], ignore_index=True)
    waves["child_id"] = "K" + waves["child_id"].astype(str)
    centres = pd.DataFrame({"centre_id": centre_id, "region": "R", "is_partnered": pd.array(partnered, dtype="boolean"),
                            "setting": setting, "registration_status": registration, "fee_band": fee})
    return waves, centres, tau


def estimate_once(child: pd.DataFrame, centres: pd.DataFrame, *, seed: int, bootstrap_reps: int) -> list[dict]:
    """Every estimator x inference on one region (the frames estimate_region builds)."""
    frames = _ChildFrames(child, ["elom_total"], baseline_source=child, centre_outcomes=centres)
    sd = comparison_baseline_sd(child, None, "elom_total")
    endline = frames.endline_only("elom_total")
    ancova = frames.ancova("elom_total")
    scored = _scored_centres(child, centres, None)
    kwargs = dict(region="R", outcome="elom_total", inference=list(ALL_INFERENCES), seed=seed,
                  bootstrap_reps=bootstrap_reps)
    results = [*ancova_from_frame(ancova, baseline_sd=sd, **kwargs),
               *did_from_frame(frames.did("elom_total"), baseline_sd=sd, **kwargs),
               *regression_adjustment_from_frame(endline, sd=sd, centre_covariates=COVARIATES, **kwargs),
               *ipw_from_frame(endline, scored, sd=sd, **kwargs)]
    aipw, numeric = _aipw_frame(ancova, endline, COVARIATES)
    results.extend(aipw_from_frame(aipw, scored, numeric=numeric, categorical=["sex", "setting", *COVARIATES], sd=sd,
                                   **kwargs))
    return [{"estimator": r.estimator, "inference": r.inference, "status": r.status, "estimate": r.estimate,
             "ci_low": r.ci_low, "ci_high": r.ci_high} for r in results]


def _replication(args: tuple[int, int, int, int]) -> list[dict]:
    design_index, rep, seed, bootstrap_reps = args
    design = DESIGNS[design_index]
    rng = np.random.default_rng([seed, design_index, rep])
    child, centres, tau = draw_region(rng, design, SimulationParameters())
    rows = estimate_once(child, centres, seed=seed + rep, bootstrap_reps=bootstrap_reps)
    return [{**row, "design": design.name, "rep": rep, "truth": tau} for row in rows]


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Bias, RMSE, coverage (with its Monte Carlo SE) and mean width per design x estimator x inference."""
    ok = raw[raw["status"] == "ok"].copy()
    ok["error"] = ok["estimate"] - ok["truth"]
    ok["covered"] = (ok["ci_low"] <= ok["truth"]) & (ok["truth"] <= ok["ci_high"])
    ok["width"] = ok["ci_high"] - ok["ci_low"]
    grouped = ok.groupby(["design", "estimator", "inference"], sort=False)
    table = grouped.agg(n_estimated=("error", "size"), bias=("error", "mean"),
                        rmse=("error", lambda e: float(np.sqrt(np.mean(e**2)))), coverage=("covered", "mean"),
                        mean_ci_width=("width", "median")).reset_index()
    table["coverage_mc_se"] = np.sqrt(table["coverage"] * (1 - table["coverage"]) / table["n_estimated"])
    return table.rename(columns={"mean_ci_width": "median_ci_width"})


def to_markdown(table: pd.DataFrame, reps: int) -> str:
    lines = ["| design | estimator | inference | estimated | bias (points) | RMSE | 95% coverage | median CI width |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.design} | {row.estimator} | {row.inference} | {row.n_estimated}/{reps} | "
                     f"{row.bias:+.3f} | {row.rmse:.3f} | {row.coverage:.3f} (±{row.coverage_mc_se:.3f}) | "
                     f"{row.median_ci_width:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20251123)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--bootstrap-reps", type=int, default=999)
    parser.add_argument("--out", default=None, help="also write the per-replication rows to this CSV")
    args = parser.parse_args()
    tasks = [(d, rep, args.seed, args.bootstrap_reps) for d in range(len(DESIGNS)) for rep in range(args.reps)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = [row for chunk in pool.map(_replication, tasks, chunksize=20) for row in chunk]
    raw = pd.DataFrame(rows)
    if args.out:
        raw.to_csv(args.out, index=False)
    table = summarise(raw)
    print(f"{args.reps} replications per design, seed {args.seed}, {args.bootstrap_reps} bootstrap draws, "
          f"true effect {TRUE_EFFECT_SD} SD ({TRUE_EFFECT_SD * SimulationParameters().baseline_sd:.1f} points), "
          f"ICC {ICC}; {time.perf_counter() - start:.0f} s on {args.jobs} processes\n")
    print(to_markdown(table, args.reps))
    few = table[(table["design"] == "5 of 20 partnered") & table["inference"].isin(["CR2", "WCR-bootstrap"])]
    below = few[few["coverage"] < 0.92]
    if len(below):
        print("\nFew-cluster methods below 0.92 coverage with 5 of 20 partnered: "
              + ", ".join(f"{r.estimator}/{r.inference} {r.coverage:.3f}" for r in below.itertuples()))


if __name__ == "__main__":
    main()
