"""Centre-level propensity scores, weights for the effect on partnered centres, and overlap.

Partnership is a centre's choice, so the propensity score is estimated once per region on
one row per centre: a logit of partnered on the centre characteristics declared in
``evalkit/rules/estimation.yml`` (setting, registration status, fee band where present).
Regions have 10–50 centres, often with a handful partnered, so plain maximum likelihood
often separates; Firth's penalised likelihood (Jeffreys prior) always gives finite
estimates and is the standard small-sample logit.

The estimand of :func:`evalkit.estimation.estimate_ipw` and ``estimate_aipw`` is the
effect on partnered centres (ATT): partnered centres weigh 1, comparison centres
``e/(1−e)``. Centres with a score above ``1 − trim`` have no comparable comparison
centres and are dropped; the overlap table says how many and what the weights are worth.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from .ruleset import estimation_rules
from .inference import full_rank_columns

__all__ = [
    "affordable_covariates",
    "centre_table",
    "centre_propensity",
    "firth_logit",
    "overlap_summary",
    "overlap_table",
]


def firth_logit(X: np.ndarray, y: np.ndarray, *, max_iter: int = 200, tol: float = 1e-10) -> np.ndarray:
    """Firth's bias-reduced logistic regression (finite under separation).

    Newton steps on the modified score ``X'(y − p + h(½ − p))`` with ``h`` the diagonal of
    the weighted hat matrix, halving a step while the penalised log-likelihood
    ``ℓ(β) + ½ log|X'WX|`` does not increase.
    """
    X = np.asarray(X, dtype="float64")
    y = np.asarray(y, dtype="float64")
    beta = np.zeros(X.shape[1])

    def penalised(b: np.ndarray) -> float:
        eta = X @ b
        p = expit(eta)
        w = p * (1 - p)
        loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        sign, logdet = np.linalg.slogdet(X.T @ (X * w[:, None]))
        return loglik + 0.5 * logdet if sign > 0 else -np.inf

    current = penalised(beta)
    for _ in range(max_iter):
        p = expit(X @ beta)
        w = p * (1 - p)
        info = X.T @ (X * w[:, None])
        cov = np.linalg.pinv(info)
        h = w * np.einsum("ij,jk,ik->i", X, cov, X)
        step = cov @ (X.T @ (y - p + h * (0.5 - p)))
        for _halving in range(30):
            trial = beta + step
            value = penalised(trial)
            if value >= current - 1e-12:
                break
            step = step / 2
        beta, current = trial, value
        if np.max(np.abs(step)) < tol:
            break
    return beta


def centre_table(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None = None,
                 region: str | None = None) -> pd.DataFrame:
    """One row per centre of the region with its arm and centre characteristics.

    The arm and setting come from the children's endline rows (as in every child-level
    model); any further centre columns (registration status, fee band, enrolment,
    ``partner_types``, ``exposure_months`` …) are merged from ``centre_outcomes``.
    """
    data = child_outcomes if region is None else child_outcomes.loc[child_outcomes["region"] == region]
    endline = data.loc[data["wave"] == "endline"].dropna(subset=["is_partnered"])
    columns = [c for c in ("centre_id", "region", "is_partnered", "setting") if c in endline.columns]
    centres = endline.drop_duplicates("centre_id")[columns].copy()
    centres["partnered"] = centres["is_partnered"].astype(bool).astype("float64")
    if centre_outcomes is not None:
        extra = [c for c in centre_outcomes.columns if c not in centres.columns or c == "centre_id"]
        extra = [c for c in extra if c not in ("is_partnered", "partnered")]
        centres = centres.merge(centre_outcomes[extra].drop_duplicates("centre_id"), on="centre_id", how="left")
    return centres.sort_values("centre_id").reset_index(drop=True)


def affordable_covariates(frame: pd.DataFrame, covariates: Sequence[str], *, fixed_terms: int = 2
                          ) -> tuple[list[str], str]:
    """The centre-level covariates a region's centres can support, and a note on any left out.

    Centre characteristics vary only between centres, so each of their dummies uses up a
    centre. Covariates are dropped from the end of ``covariates`` until there are at least
    twice as many centres as centre-level terms (``fixed_terms`` counts the intercept and
    partnered); otherwise a few-centre region gets an exactly fitted, meaningless model.
    """
    n_centres = frame["centre_id"].nunique()
    levels = {c: frame[c].nunique() for c in covariates}
    kept = [c for c in covariates if c in frame.columns]
    while kept and n_centres < 2 * (fixed_terms + sum(levels[c] - 1 for c in kept)):
        kept.pop()
    dropped = [c for c in covariates if c not in kept]
    note = (f"Left out {', '.join(dropped)}: {n_centres} centres cannot support more centre-level terms."
            if dropped else "")
    return kept, note


def _ps_design(centres: pd.DataFrame) -> np.ndarray:
    rules = estimation_rules().covariates
    columns = [np.ones(len(centres))]
    present = [v for v in rules.propensity_categorical if v in centres.columns]
    usable, _ = affordable_covariates(centres, present, fixed_terms=1)
    for variable in usable:
        values = centres[variable].astype("string").fillna("(missing)")
        for level in sorted(values.unique())[1:]:
            columns.append((values == level).to_numpy(dtype=float))
    for variable in rules.propensity_numeric:
        if variable in centres.columns:
            x = centres[variable].astype("float64")
            columns.append(x.fillna(x.mean()).to_numpy())
    X = np.column_stack(columns)
    return X[:, full_rank_columns(X)]


def centre_propensity(centres: pd.DataFrame, *, trim: float | None = None) -> pd.DataFrame:
    """Propensity scores and ATT weights for the centres of one region.

    ``centres`` needs ``centre_id`` and ``partnered`` (0/1) and any of the declared
    propensity covariates. Returns the centres with ``propensity``, ``is_trimmed``
    (score above ``1 − trim``) and ``weight_att`` (1 for partnered centres, ``e/(1−e)``
    for comparison centres, 0 when trimmed).
    """
    trim = estimation_rules().propensity.trim if trim is None else trim
    out = centres.copy()
    treated = out["partnered"].to_numpy(dtype=float)
    if len(out) < 2 or treated.min() == treated.max():
        out["propensity"] = np.nan
        out["is_trimmed"] = False
        out["weight_att"] = np.nan
        return out
    X = _ps_design(out)
    beta = firth_logit(X, treated)
    ps = expit(X @ beta)
    trimmed = ps > 1 - trim
    out["propensity"] = ps
    out["is_trimmed"] = trimmed
    out["weight_att"] = np.where(trimmed, 0.0, np.where(treated == 1, 1.0, ps / (1 - ps)))
    return out


def overlap_summary(scored: pd.DataFrame) -> dict[str, float]:
    """Overlap diagnostics of centre propensity scores (output of :func:`centre_propensity`)."""
    treated = scored["partnered"].to_numpy(dtype=float) == 1
    ps = scored["propensity"].to_numpy(dtype=float)
    w = scored["weight_att"].to_numpy(dtype=float)
    trimmed = scored["is_trimmed"].to_numpy(dtype=bool)
    comparison_w = w[~treated & ~trimmed]
    ess = comparison_w.sum() ** 2 / (comparison_w**2).sum() if comparison_w.sum() > 0 else np.nan
    lo_t, hi_t = (ps[treated].min(), ps[treated].max()) if treated.any() else (np.nan, np.nan)
    lo_c, hi_c = (ps[~treated].min(), ps[~treated].max()) if (~treated).any() else (np.nan, np.nan)
    return {
        "n_centres_partnered": int(treated.sum()),
        "n_centres_comparison": int((~treated).sum()),
        "propensity_min_partnered": float(lo_t), "propensity_max_partnered": float(hi_t),
        "propensity_min_comparison": float(lo_c), "propensity_max_comparison": float(hi_c),
        "n_partnered_above_comparison_max": int(np.sum(treated & (ps > hi_c))),
        "n_comparison_below_partnered_min": int(np.sum(~treated & (ps < lo_t))),
        "n_trimmed_partnered": int(np.sum(trimmed & treated)),
        "n_trimmed_comparison": int(np.sum(trimmed & ~treated)),
        "effective_comparison_centres": float(ess),
        "max_comparison_weight_share": float(comparison_w.max() / comparison_w.sum())
        if comparison_w.sum() > 0 else np.nan,
    }


def overlap_table(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None, region: str,
                  *, trim: float | None = None) -> pd.DataFrame:
    """One row of overlap diagnostics for the region's centre-level propensity scores.

    Columns: ``region``, the counts by arm, the score range of each arm, centres outside
    the other arm's range, centres trimmed by arm, ``trim_threshold``, the effective number
    of comparison centres (Kish) under the ATT weights and the largest comparison weight share.
    """
    trim = estimation_rules().propensity.trim if trim is None else trim
    scored = centre_propensity(centre_table(child_outcomes, centre_outcomes, region), trim=trim)
    row = {"region": region, **overlap_summary(scored), "trim_threshold": 1 - trim}
    return pd.DataFrame([row])
