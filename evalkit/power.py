"""What each region could detect: minimum detectable effects and power from its own design.

A comparison of partnered with comparison centres is a cluster design: its precision depends
on the number of centres in each arm (J_p, J_c), the children per centre (m) and the share of
the outcome's variance that lies between centres (the ICC, estimated here at baseline). In SD
units (Bloom 2005; Raudenbush 1997)::

    SE = √[(ICC·(1 − R²_centre) + (1 − ICC)·(1 − R²_child) / m) · (1/J_p + 1/J_c)]
    MDE = (t_{1−α/2, J−2} + t_{power, J−2}) · SE            (J = J_p + J_c)
    power(δ) = P(|T| > t_{1−α/2, J−2}),  T ~ noncentral t(J − 2, δ / SE)

With R² = 0 (the default) this is the design's precision before any covariate adjustment;
the baseline score of the ANCOVA adds precision, so the primary estimate usually does better.
``mde_points`` scales ``mde_sd`` by the SD of the baseline outcome among comparison children,
the contract's effect-size denominator, so it is comparable with ``effect_size_sd``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .ruleset import estimation_rules
from .estimation import ancova_frame, comparison_baseline_sd

__all__ = ["POWER_COLUMNS", "icc_anova", "minimum_detectable_effect", "power_at", "power_table"]

POWER_COLUMNS = ["region", "n_centres_partnered", "n_centres_comparison", "children_per_centre", "icc_baseline",
                 "mde_points", "mde_sd", "power_at_0_2_sd"]


def icc_anova(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA estimate of the intra-cluster correlation, truncated at 0.

    ICC = (MSB − MSW) / (MSB + (n₀ − 1)·MSW) with n₀ = (N − Σn_g²/N) / (G − 1), the
    estimator for unequal cluster sizes (Donner 1986). Missing values are dropped.
    """
    frame = pd.DataFrame({"y": np.asarray(values, dtype="float64"), "g": np.asarray(groups)}).dropna()
    sizes = frame.groupby("g")["y"].size()
    if len(sizes) < 2 or len(frame) - len(sizes) < 1:
        return np.nan
    n, g = len(frame), len(sizes)
    means = frame.groupby("g")["y"].transform("mean")
    grand = frame["y"].mean()
    msb = ((frame.groupby("g")["y"].mean() - grand) ** 2 * sizes).sum() / (g - 1)
    msw = ((frame["y"] - means) ** 2).sum() / (n - g)
    n0 = (n - (sizes**2).sum() / n) / (g - 1)
    denominator = msb + (n0 - 1) * msw
    return float(max(0.0, (msb - msw) / denominator)) if denominator > 0 else np.nan


def _standard_error_sd(n_partnered: float, n_comparison: float, children_per_centre: float, icc: float,
                       r2_centre: float, r2_child: float) -> float:
    if min(n_partnered, n_comparison) < 1 or not children_per_centre > 0 or not np.isfinite(icc):
        return np.nan
    per_centre = icc * (1 - r2_centre) + (1 - icc) * (1 - r2_child) / children_per_centre
    return float(np.sqrt(per_centre * (1 / n_partnered + 1 / n_comparison)))


def minimum_detectable_effect(n_partnered: float, n_comparison: float, children_per_centre: float, icc: float, *,
                              alpha: float = 0.05, power: float = 0.80, r2_centre: float = 0.0,
                              r2_child: float = 0.0) -> float:
    """MDE in SD units for a two-arm comparison of centres (two-sided test, t on J−2 df)."""
    df = n_partnered + n_comparison - 2
    se = _standard_error_sd(n_partnered, n_comparison, children_per_centre, icc, r2_centre, r2_child)
    if df < 1 or not np.isfinite(se):
        return np.nan
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def power_at(effect_sd: float, n_partnered: float, n_comparison: float, children_per_centre: float, icc: float, *,
             alpha: float = 0.05, r2_centre: float = 0.0, r2_child: float = 0.0) -> float:
    """Power of the two-sided test to detect ``effect_sd`` (noncentral t on J−2 df)."""
    df = n_partnered + n_comparison - 2
    se = _standard_error_sd(n_partnered, n_comparison, children_per_centre, icc, r2_centre, r2_child)
    if df < 1 or not np.isfinite(se) or se == 0:
        return np.nan
    crit = stats.t.ppf(1 - alpha / 2, df)
    shift = effect_sd / se
    return float(stats.nct.sf(crit, df, shift) + stats.nct.cdf(-crit, df, shift))


def power_table(child_outcomes: pd.DataFrame, region: str, *, outcome: str | None = None,
                r2_centre: float = 0.0, r2_child: float = 0.0) -> pd.DataFrame:
    """One row per region (:data:`POWER_COLUMNS`): the centres and children per centre of the
    primary analysis (children with both waves), the baseline ICC of ``outcome`` (default: the
    plan's primary outcome), the MDE at the rules' power and alpha, and the power to detect the
    rules' effect (0.2 SD)."""
    rules = estimation_rules().power
    outcome = estimation_rules().primary.outcome if outcome is None else outcome
    frame = ancova_frame(child_outcomes, region, outcome)
    data = child_outcomes.loc[child_outcomes["region"] == region]
    if frame.empty:  # no baseline: the endline children are what there is
        frame = data.loc[(data["wave"] == "endline") & data[outcome].notna()].dropna(subset=["is_partnered"])
        frame = frame.assign(partnered=frame["is_partnered"].astype(bool).astype("float64"))
    centres = frame.groupby("centre_id")["partnered"].first()
    n_part, n_comp = int((centres == 1).sum()), int((centres == 0).sum())
    per_centre = float(frame.groupby("centre_id").size().mean()) if len(centres) else np.nan
    baseline = data.loc[data["wave"] == "baseline"]
    icc = icc_anova(baseline[outcome].astype("float64").to_numpy(), baseline["centre_id"].to_numpy())
    kwargs = dict(alpha=rules.alpha, r2_centre=r2_centre, r2_child=r2_child)
    mde = minimum_detectable_effect(n_part, n_comp, per_centre, icc, power=rules.target_power, **kwargs)
    sd = comparison_baseline_sd(child_outcomes, region, outcome)
    return pd.DataFrame([{
        "region": region, "n_centres_partnered": n_part, "n_centres_comparison": n_comp,
        "children_per_centre": per_centre, "icc_baseline": icc, "mde_points": mde * sd if np.isfinite(sd) else np.nan,
        "mde_sd": mde, "power_at_0_2_sd": power_at(rules.effect_size_sd, n_part, n_comp, per_centre, icc, **kwargs),
    }], columns=POWER_COLUMNS)
