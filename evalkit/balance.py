"""Baseline balance between partnered and comparison centres: the table evaluators expect from
ietoolkit's ``iebaltab`` and R's ``cobalt``, a joint test and a Love plot.

:func:`balance_table` gives, for every declared balance variable (``evalkit/rules/estimation.yml``;
children at baseline and centre characteristics), the n, mean and SD of each arm; the raw
difference and the covariate-adjusted difference side by side, the latter with its
cluster-robust standard error and p-value (so the difference shown is the one tested, which
``iebaltab`` users ask for); the standardised mean difference with its denominator written
out; the variance ratio; Hedges' g; the SMD after inverse-probability weighting (cobalt's
"adjusted" balance); the share missing (missing values are counted, never a crash); and a
flag at |SMD| 0.05 and 0.25 (What Works Clearinghouse).

Definitions
-----------
* SMD = (mean_partnered − mean_comparison) / √((sd_p² + sd_c²)/2) (cobalt's and iebaltab's
  pooled, unweighted denominator); for 0/1 variables the SDs are √(p(1−p)), as cobalt.
* ``smd_weighted``: the same numerator with the ATT-weighted comparison mean (propensity
  weights of :mod:`evalkit.propensity`) over the same denominator, so the two are comparable.
* Variance ratio = var_partnered / var_comparison (continuous variables only).
* Hedges' g = SMD with the n-weighted pooled SD (n−1) times J = 1 − 3/(4(n_p + n_c) − 9).
* ``diff_adjusted``: OLS of the variable on partnered and the adjustment covariates (age, sex
  and setting for child variables, setting for centre variables, never the variable itself),
  CR1 clustered by centre with t on G−1 df for children, HC1 with t on N−K df for centres.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .ruleset import Balance, estimation_rules
from .estimation import design_matrix
from .inference import fit_linear
from .propensity import centre_propensity, centre_table

__all__ = ["BALANCE_COLUMNS", "JOINT_TEST_COLUMNS", "balance_table", "balance_joint_test", "hedges_g",
           "love_plot"]

BALANCE_COLUMNS = [
    "region", "variable", "label", "level", "n_partnered", "n_comparison", "mean_partnered", "sd_partnered",
    "mean_comparison", "sd_comparison", "diff_raw", "diff_adjusted", "se_adjusted", "p_adjusted", "smd",
    "smd_denominator", "variance_ratio", "flag", "hedges_g", "smd_weighted", "share_missing",
]
JOINT_TEST_COLUMNS = ["region", "test", "statistic", "df1", "df2", "p_value", "n_obs", "note"]

_POOLED = "sqrt((sd_partnered^2 + sd_comparison^2) / 2)"
_POOLED_BINARY = "sqrt((p_partnered(1-p_partnered) + p_comparison(1-p_comparison)) / 2)"


def _rules() -> Balance:
    return estimation_rules().balance


def hedges_g(partnered: np.ndarray, comparison: np.ndarray) -> float:
    """Hedges' g: the mean difference over the n-weighted pooled SD, small-sample corrected."""
    a = np.asarray(partnered, dtype="float64")
    b = np.asarray(comparison, dtype="float64")
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n1, n2 = a.size, b.size
    if n1 < 2 or n2 < 2:
        return np.nan
    pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return np.nan
    return float((a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (n1 + n2) - 9)))


def _flag(smd: float) -> str:
    rules = _rules()
    if not np.isfinite(smd):
        return ""
    size = abs(smd)
    return "good" if size <= rules.smd_good else "adjust" if size <= rules.smd_fails else "fails"


def _adjusted(frame: pd.DataFrame, value: str, numeric: list[str], categorical: list[str],
              clustered: bool) -> tuple[float, float, float]:
    """Adjusted difference, its SE and p: CR1 by centre (children) or HC1 (centres)."""
    data = frame.dropna(subset=[value, *numeric, *categorical])
    if data.empty or data["partnered"].nunique() < 2:
        return np.nan, np.nan, np.nan
    X, names = design_matrix(data, ["partnered", *numeric], categorical)
    clusters = data["centre_id"] if clustered else None
    fit = fit_linear(data[value].to_numpy(dtype="float64"), X, names, clusters)
    if "partnered" not in fit.names or fit.n_obs - fit.rank < 1 or fit.n_clusters < 2:
        return np.nan, np.nan, np.nan
    test = fit.coef_test("partnered", "CR1")
    return test["estimate"], test["std_error"], test["p_value"]


def _row(region: str, variable: str, label: str, level: str, frame: pd.DataFrame, value: str,
         binary: bool, adjusted: tuple[float, float, float], weights: pd.Series | None) -> dict:
    treated = frame["partnered"] == 1
    x = frame[value].astype("float64")
    a, b = x[treated].dropna(), x[~treated].dropna()
    mean_a, mean_b = (a.mean() if len(a) else np.nan), (b.mean() if len(b) else np.nan)
    sd_a = a.std(ddof=1) if len(a) > 1 else np.nan
    sd_b = b.std(ddof=1) if len(b) > 1 else np.nan
    if binary:
        denominator = np.sqrt((mean_a * (1 - mean_a) + mean_b * (1 - mean_b)) / 2)
        ratio = np.nan
    else:
        denominator = np.sqrt((sd_a**2 + sd_b**2) / 2)
        ratio = sd_a**2 / sd_b**2 if sd_b and np.isfinite(sd_b) and sd_b > 0 else np.nan
    diff = mean_a - mean_b
    smd = diff / denominator if denominator and np.isfinite(denominator) and denominator > 0 else np.nan
    smd_weighted = np.nan
    if weights is not None and np.isfinite(smd):
        w = weights.reindex(frame.index).astype("float64")
        ok = (~treated) & x.notna() & w.notna() & (w > 0)
        okt = treated & x.notna() & w.notna() & (w > 0)
        if ok.any() and okt.any():
            weighted_b = np.average(x[ok], weights=w[ok])
            smd_weighted = (x[okt].mean() - weighted_b) / denominator
    return {
        "region": region, "variable": variable, "label": label, "level": level,
        "n_partnered": int(len(a)), "n_comparison": int(len(b)),
        "mean_partnered": mean_a, "sd_partnered": sd_a, "mean_comparison": mean_b, "sd_comparison": sd_b,
        "diff_raw": diff, "diff_adjusted": adjusted[0], "se_adjusted": adjusted[1], "p_adjusted": adjusted[2],
        "smd": smd, "smd_denominator": _POOLED_BINARY if binary else _POOLED, "variance_ratio": ratio,
        "flag": _flag(smd), "hedges_g": hedges_g(a, b), "smd_weighted": smd_weighted,
        "share_missing": float(x.isna().mean()) if len(x) else np.nan,
    }


def _child_baseline(child_outcomes: pd.DataFrame, region: str) -> pd.DataFrame:
    data = child_outcomes.loc[(child_outcomes["region"] == region) & (child_outcomes["wave"] == "baseline")]
    data = data.dropna(subset=["is_partnered"])
    data = data.assign(partnered=data["is_partnered"].astype(bool).astype("float64"),
                       is_female=(data["sex"].astype("string") == "female").astype("float64")
                       .where(data["sex"].notna()))
    return data.reset_index(drop=True)


def _centre_variables(centres: pd.DataFrame) -> list[tuple[str, str, str, str, bool]]:
    """(variable, label, level, column, binary) for the centre rows: one 0/1 column per level."""
    rules = _rules()
    out = []
    for spec in rules.centre_categorical:
        name = spec.name
        if name not in centres.columns:
            continue
        for level in sorted(centres[name].dropna().astype(str).unique()):
            out.append((name, f"{spec.label}: {level}", "centre", f"{name}={level}", True))
    for spec in rules.centre_numeric:
        if spec.name in centres.columns:
            out.append((spec.name, spec.label, "centre", spec.name, False))
    return out


def _with_level_columns(centres: pd.DataFrame) -> pd.DataFrame:
    centres = centres.copy()
    for spec in _rules().centre_categorical:
        name = spec.name
        if name in centres.columns:
            values = centres[name].astype("string")
            for level in sorted(values.dropna().unique()):
                centres[f"{name}={level}"] = (values == level).astype("float64").where(values.notna())
    return centres


def balance_table(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None, region: str) -> pd.DataFrame:
    """The balance table of one region (columns :data:`BALANCE_COLUMNS`, one row per variable
    or category level; ``level`` is 'child' or 'centre')."""
    rules = _rules()
    children = _child_baseline(child_outcomes, region)
    centres = _with_level_columns(centre_table(child_outcomes, centre_outcomes, region))
    scored = centre_propensity(centres) if len(centres) else centres.assign(weight_att=np.nan)
    weight_of = scored.set_index("centre_id")["weight_att"]
    child_weights = children["centre_id"].map(weight_of)
    rows = []
    adjust = rules.adjust_child
    for spec in rules.child:
        name = spec.name
        if name not in children.columns:
            continue
        binary = name.startswith("is_")
        source = "sex" if name == "is_female" else name
        numeric = [c for c in adjust if c not in ("sex", "setting") and c != source and c in children.columns]
        categorical = [c for c in adjust if c in ("sex", "setting") and c != source and c in children.columns]
        frame = children.assign(**{name: children[name].astype("float64")})
        adjusted = _adjusted(frame, name, numeric, categorical, clustered=True)
        rows.append(_row(region, name, spec.label, "child", frame, name, binary, adjusted, child_weights))
    for variable, label, level, column, binary in _centre_variables(centres):
        categorical = [c for c in rules.adjust_centre if c != variable and c in centres.columns]
        adjusted = _adjusted(centres, column, [], categorical, clustered=False)
        rows.append(_row(region, column if binary else variable, label, level, centres, column, binary, adjusted,
                         scored["weight_att"]))
    return pd.DataFrame(rows, columns=BALANCE_COLUMNS)


def _wald_f(fit, names: list[str]) -> tuple[float, int, float, str]:
    """Wald F of the named coefficients with CR1 (HC1) errors, F(q, df_cr1).

    A robust Wald test over-rejects badly when the variables approach the number of centres
    (the covariance has rank at most G − 1), so it is only reported with at least twice as
    many centres as variables.
    """
    idx = [fit.index(n) for n in names if n in fit.names]
    if not idx:
        return np.nan, 0, np.nan, "no balance variable left after dropping collinear ones"
    q = len(idx)
    units = fit.n_clusters
    if units < 2 * (q + 1) or fit.n_obs - fit.rank < 2:
        return np.nan, q, np.nan, (f"{q} variables and {units} centres: a robust joint test needs at least "
                                   "twice as many centres as variables")
    b = fit.params[idx]
    V = fit.vcov_cr1()[np.ix_(idx, idx)]
    return float(b @ np.linalg.pinv(V) @ b / q), q, fit.df_cr1(), ""


def balance_joint_test(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None, region: str) -> pd.DataFrame:
    """Joint tests that the balance variables do not predict partnership (iebaltab's F-test).

    Partnered (0/1) is regressed on a set of balance variables and the Wald F of all their
    coefficients is reported (columns :data:`JOINT_TEST_COLUMNS`):

    * ``child_variables_F_CR1``: baseline children, the child variables, CR1 by centre, F(q, G−1);
    * ``centre_variables_F_HC1``: one row per centre, the centre characteristics (one dummy per
      non-reference level), HC1, F(q, N−K);
    * ``all_variables_F_CR1``: baseline children, both sets, CR1 by centre, F(q, G−1).

    The child variables are ``joint_test_child`` of the rules (the ELOM total stands for its
    domains). Complete cases; ``n_obs`` says how many. With fewer than twice as many centres as
    variables the statistic is left empty and ``note`` says why.
    """
    children = _child_baseline(child_outcomes, region)
    centres = _with_level_columns(centre_table(child_outcomes, centre_outcomes, region))
    child_vars = [name for name in _rules().joint_test_child if name in children.columns]
    dummies, seen = [], set()
    for variable, _label, _level, column, binary in _centre_variables(centres):
        if binary and variable not in seen:  # the first level is the reference
            seen.add(variable)
            continue
        dummies.append(column)
    child_frame = children.merge(centres[["centre_id", *dummies]], on="centre_id", how="left")
    out = []
    for test, frame, variables, clustered in (("child_variables_F_CR1", children, child_vars, True),
                                              ("centre_variables_F_HC1", centres, dummies, False),
                                              ("all_variables_F_CR1", child_frame, child_vars + dummies, True)):
        data = frame.dropna(subset=variables + ["partnered"])
        row = {"region": region, "test": test, "statistic": np.nan, "df1": len(variables), "df2": np.nan,
               "p_value": np.nan, "n_obs": len(data), "note": ""}
        if not variables or data.empty or data["partnered"].nunique() < 2:
            row["note"] = "needs variables and both arms"
        else:
            X, names = design_matrix(data, variables)
            fit = fit_linear(data["partnered"].to_numpy(dtype="float64"), X, names,
                             data["centre_id"] if clustered else None)
            statistic, q, df2, note = _wald_f(fit, variables)
            p = float(stats.f.sf(statistic, q, df2)) if np.isfinite(statistic) else np.nan
            row.update(statistic=statistic, df1=q, df2=df2, p_value=p, n_obs=fit.n_obs, note=note)
        out.append(row)
    return pd.DataFrame(out, columns=JOINT_TEST_COLUMNS)


def love_plot(balance: pd.DataFrame, *, absolute: bool = True):
    """A Love plot of the balance table: |SMD| per variable before and after weighting.

    Returns a :class:`matplotlib.figure.Figure` (no pyplot state) with the 0.05 and 0.25
    thresholds drawn, Okabe–Ito colours and distinct markers (readable in grey), variables
    ordered by their unweighted SMD.
    """
    from matplotlib.figure import Figure

    rules = _rules()
    data = balance.dropna(subset=["smd"]).copy()
    transform = np.abs if absolute else (lambda v: v)
    data["x"] = transform(data["smd"].to_numpy(dtype=float))
    data["x_weighted"] = transform(data["smd_weighted"].to_numpy(dtype=float))
    data = data.sort_values("x")
    height = 1.2 + 0.28 * max(len(data), 1)
    fig = Figure(figsize=(6.5, height), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(data))
    ax.scatter(data["x"], y, marker="o", color="#0072B2", label="Unadjusted", zorder=3)
    if data["x_weighted"].notna().any():
        ax.scatter(data["x_weighted"], y, marker="^", color="#D55E00", label="Propensity-weighted (ATT)", zorder=3)
    for cut, style, label in ((rules.smd_good, ":", f"{rules.smd_good:g}: good below"),
                              (rules.smd_fails, "--", f"{rules.smd_fails:g}: fails above")):
        ax.axvline(cut, color="#555555", linestyle=style, linewidth=1, label=label)
        if not absolute:
            ax.axvline(-cut, color="#555555", linestyle=style, linewidth=1)
    if not absolute:
        ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_yticks(y, data["label"].astype(str).tolist())
    ax.set_xlabel("|SMD|, partnered vs comparison" if absolute else "SMD, partnered − comparison")
    region = str(balance["region"].iloc[0]) if len(balance) else ""
    ax.set_title(f"Baseline balance{', ' + region if region else ''}")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    return fig
