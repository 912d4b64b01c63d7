"""Impact estimation: the contract's primary ANCOVA with cluster-robust inference.

One public entry per estimator returning an :class:`EffectResult` with
``tidy()`` (the columns of ``results/estimates.csv``), ``summary()`` and
``_repr_html_``. The regression algebra is plain NumPy so that every number can
be checked against R (``lm`` + ``sandwich::vcovCL(type = "HC1")``), see
``tests/reference/``.

CR1 is the Stata small-sample form: V = G/(G−1) · (N−1)/(N−K) · B⁻¹ M B⁻¹ with
B = X'X and M = Σ_g X_g' e_g e_g' X_g, and a t distribution on G−1 degrees of
freedom for intervals and p-values.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from .config import MIN_CENTRES_PER_ARM

__all__ = [
    "ESTIMATE_COLUMNS",
    "EffectResult",
    "OLSFit",
    "ancova_frame",
    "ancova_from_frame",
    "comparison_baseline_sd",
    "estimate_ancova",
    "fit_ols_cluster",
]

ESTIMATE_COLUMNS = [
    "region", "outcome", "estimator", "inference", "estimate", "std_error", "df",
    "ci_low", "ci_high", "p_value", "effect_size_sd", "n_children",
    "n_centres_partnered", "n_centres_comparison", "status", "note",
]

ANCOVA_COVARIATES = ("baseline", "age_months", "sex", "setting")


@dataclass(frozen=True)
class OLSFit:
    """Coefficients and a cluster-robust covariance matrix of an OLS fit."""

    names: list[str]
    params: np.ndarray
    vcov: np.ndarray
    n_obs: int
    n_clusters: int
    rank: int

    def coef(self, name: str) -> tuple[float, float]:
        i = self.names.index(name)
        return float(self.params[i]), float(np.sqrt(self.vcov[i, i]))


def _full_rank_columns(X: np.ndarray, tol: float = 1e-10) -> list[int]:
    """Indices of columns kept in order, dropping any that is a combination of
    earlier ones (as R's ``lm`` aliases them)."""
    keep: list[int] = []
    for j in range(X.shape[1]):
        trial = X[:, keep + [j]]
        if np.linalg.matrix_rank(trial, tol=tol * max(1.0, np.abs(trial).max())) == len(keep) + 1:
            keep.append(j)
    return keep


def fit_ols_cluster(y: np.ndarray, X: np.ndarray, names: list[str], clusters: np.ndarray,
                    *, inference: Literal["CR1"] = "CR1") -> OLSFit:
    """OLS with a CR1 (Stata small-sample) cluster-robust covariance.

    Columns that are exact combinations of earlier ones are dropped first, so
    the fit matches R's ``lm`` with aliased coefficients removed.
    """
    if inference != "CR1":
        raise ValueError(f"inference {inference!r} is not available yet; use 'CR1'")
    y = np.asarray(y, dtype="float64")
    X = np.asarray(X, dtype="float64")
    keep = _full_rank_columns(X)
    X = X[:, keep]
    names = [names[j] for j in keep]
    n, k = X.shape
    codes, uniques = pd.factorize(pd.Series(clusters), sort=True)
    g = len(uniques)
    q, r = np.linalg.qr(X)
    params = np.linalg.solve(r, q.T @ y)
    resid = y - X @ params
    r_inv = np.linalg.inv(r)
    bread = r_inv @ r_inv.T  # (X'X)^-1
    scores = X * resid[:, None]
    cluster_scores = np.zeros((g, k))
    np.add.at(cluster_scores, codes, scores)
    meat = cluster_scores.T @ cluster_scores
    adjust = g / (g - 1) * (n - 1) / (n - k)
    vcov = adjust * bread @ meat @ bread
    return OLSFit(names=names, params=params, vcov=vcov, n_obs=n, n_clusters=g, rank=k)


@dataclass(frozen=True)
class EffectResult:
    """One estimated effect (or the reason there is none) for one region and outcome."""

    region: str
    outcome: str
    estimator: str
    inference: str
    estimate: float = np.nan
    std_error: float = np.nan
    df: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    p_value: float = np.nan
    effect_size_sd: float = np.nan
    n_children: int = 0
    n_centres_partnered: int = 0
    n_centres_comparison: int = 0
    status: Literal["ok", "not_estimable"] = "ok"
    note: str = ""
    fit: OLSFit | None = field(default=None, repr=False, compare=False)

    def tidy(self) -> pd.DataFrame:
        """One row with the columns of ``results/estimates.csv``."""
        return pd.DataFrame([{c: getattr(self, c) for c in ESTIMATE_COLUMNS}], columns=ESTIMATE_COLUMNS)

    def summary(self) -> str:
        """A short plain-text account of the estimate."""
        head = f"{self.estimator} ({self.inference}) on {self.outcome}, {self.region}"
        if self.status != "ok":
            return f"{head}: not estimable. {self.note}"
        return (
            f"{head}\n"
            f"  effect   {self.estimate:9.3f}  (SE {self.std_error:.3f}, t on {self.df:g} df, p = {self.p_value:.3g})\n"
            f"  95% CI   [{self.ci_low:.3f}, {self.ci_high:.3f}]\n"
            f"  in SD    {self.effect_size_sd:9.3f}\n"
            f"  children {self.n_children}, centres {self.n_centres_partnered} partnered / "
            f"{self.n_centres_comparison} comparison"
            + (f"\n  note: {self.note}" if self.note else "")
        )

    def _repr_html_(self) -> str:
        row = self.tidy().iloc[0]
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
            for k, v in row.items()
        )
        return f"<table class='evalkit-effect'>{cells}</table>"


def ancova_frame(child_outcomes: pd.DataFrame, region: str | None = None,
                 outcome: str = "elom_total") -> pd.DataFrame:
    """Children with both waves: endline outcome, baseline outcome and covariates.

    The endline row supplies the centre (hence treatment and cluster), age,
    sex and setting. Rows missing any model variable are left out.
    """
    data = child_outcomes if region is None else child_outcomes.loc[child_outcomes["region"] == region]
    endline = data.loc[data["wave"] == "endline",
                       ["child_id", "centre_id", "region", "is_partnered", "age_months", "sex", "setting", outcome]]
    baseline = child_outcomes.loc[child_outcomes["wave"] == "baseline", ["child_id", outcome]]
    frame = endline.rename(columns={outcome: "y"}).merge(
        baseline.rename(columns={outcome: "baseline"}), on="child_id", how="inner")
    needed = ["y", "baseline", "is_partnered", "age_months", "sex", "setting", "centre_id"]
    frame = frame.dropna(subset=needed)
    frame = frame.assign(partnered=frame["is_partnered"].astype(bool).astype("float64"))
    return frame.sort_values(["centre_id", "child_id"]).reset_index(drop=True)


def comparison_baseline_sd(child_outcomes: pd.DataFrame, region: str | None = None,
                           outcome: str = "elom_total") -> float:
    """SD (n−1) of the baseline outcome among comparison children of the region."""
    data = child_outcomes if region is None else child_outcomes.loc[child_outcomes["region"] == region]
    mask = (data["wave"] == "baseline") & (data["is_partnered"] == False)  # noqa: E712 (nullable)
    values = data.loc[mask.fillna(False).to_numpy(dtype=bool), outcome].dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else np.nan


def _design(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    columns = [np.ones(len(frame)), frame["partnered"].to_numpy(), frame["baseline"].to_numpy(dtype=float),
               frame["age_months"].to_numpy(dtype=float)]
    names = ["(Intercept)", "partnered", "baseline", "age_months"]
    for variable in ("sex", "setting"):
        levels = sorted(frame[variable].astype(str).unique())
        for level in levels[1:]:  # treatment contrasts, first level as reference (as R)
            columns.append((frame[variable].astype(str) == level).to_numpy(dtype=float))
            names.append(f"{variable}{level}")
    return np.column_stack(columns), names


def estimate_ancova(child_outcomes: pd.DataFrame, region: str | None = None, *,
                    outcome: str = "elom_total", inference: Literal["CR1"] = "CR1",
                    min_centres: int = MIN_CENTRES_PER_ARM) -> EffectResult:
    """ANCOVA: endline outcome on partnered, baseline outcome, age, sex and setting.

    Standard errors are clustered by centre (CR1); the 95% interval uses t on
    G−1 degrees of freedom. The region is ``not_estimable`` when fewer than
    ``min_centres`` partnered or comparison centres have usable data.
    """
    frame = ancova_frame(child_outcomes, region, outcome)
    sd = comparison_baseline_sd(child_outcomes, region, outcome)
    return ancova_from_frame(frame, region=region if region is not None else "All regions",
                             outcome=outcome, inference=inference, min_centres=min_centres,
                             baseline_sd=sd)


def ancova_from_frame(frame: pd.DataFrame, *, region: str, outcome: str = "elom_total",
                      inference: Literal["CR1"] = "CR1", min_centres: int = MIN_CENTRES_PER_ARM,
                      baseline_sd: float = np.nan) -> EffectResult:
    """The ANCOVA on an analysis frame as :func:`ancova_frame` returns it.

    ``frame`` needs ``y``, ``partnered`` (0/1), ``baseline``, ``age_months``,
    ``sex``, ``setting`` and ``centre_id``; ``baseline_sd`` scales the effect size.
    """
    centres = frame.groupby("centre_id")["partnered"].first()
    n_part, n_comp = int((centres == 1).sum()), int((centres == 0).sum())
    common = dict(region=region, outcome=outcome, estimator="ancova", inference=inference,
                  n_children=len(frame), n_centres_partnered=n_part, n_centres_comparison=n_comp)
    if n_part < min_centres or n_comp < min_centres:
        reason = (f"Only {n_part} partnered and {n_comp} comparison centres have children assessed "
                  f"at both baseline and endline; at least {min_centres} of each are needed.")
        return EffectResult(status="not_estimable", note=reason, **common)
    X, names = _design(frame)
    fit = fit_ols_cluster(frame["y"].to_numpy(), X, names, frame["centre_id"].to_numpy(), inference=inference)
    estimate, se = fit.coef("partnered")
    df = fit.n_clusters - 1
    t_crit = stats.t.ppf(0.975, df)
    p_value = 2 * stats.t.sf(abs(estimate / se), df)
    sd = baseline_sd
    note = ""
    if min(n_part, n_comp) < 10:
        note = (f"Few centres in one arm ({n_part} partnered, {n_comp} comparison): "
                "cluster-robust standard errors may be too small.")
    return EffectResult(estimate=estimate, std_error=se, df=float(df), ci_low=estimate - t_crit * se,
                        ci_high=estimate + t_crit * se, p_value=float(p_value),
                        effect_size_sd=estimate / sd if sd and np.isfinite(sd) else np.nan,
                        status="ok", note=note, fit=fit, **common)
