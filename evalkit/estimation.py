"""Impact estimation: the contract's primary ANCOVA and the estimators a methods review asks for.

One public entry per estimator, each returning an :class:`EffectResult` (one inference) or
:class:`EffectResults` (several) with ``tidy()`` (the columns of ``results/estimates.csv``),
``summary()`` and ``_repr_html_``:

=================================  =====================================================
:func:`estimate_ancova`            endline outcome on partnered, baseline outcome, age,
                                   sex and setting (the contract's primary estimator)
:func:`estimate_did`               difference-in-differences on the child panel (both
                                   waves) with centre fixed effects
:func:`estimate_regression_adjustment`  endline outcome on partnered and child and centre
                                   covariates, for a region with no baseline
:func:`estimate_ipw`               inverse-probability weighting with centre-level
                                   propensity scores (effect on partnered centres)
:func:`estimate_aipw`              doubly robust AIPW: the same weights and an outcome
                                   model fitted on comparison children
:func:`estimate_heterogeneity`     the ANCOVA by sex, setting, partner type and months
                                   of partnership (dose)
:func:`estimate_region`            every row of one region (all outcomes, estimators,
                                   inferences, subgroups, warnings and q-values)
:func:`estimate_national`          the pooled ANCOVA with province fixed effects
=================================  =====================================================

Inference (``evalkit.inference``): ``CR1`` is the primary (Stata's small-sample form, equal
to R ``lm`` + ``sandwich::vcovCL(type = "HC1")``, t on G−1 df); ``CR2`` with Satterthwaite
df equals R ``clubSandwich``; ``WCR-bootstrap`` is the wild cluster restricted bootstrap;
``HC1`` is used for centre-level models (one row per centre, t on N−K df).

``effect_size_sd`` divides by the SD of the baseline outcome among the region's comparison
children (contract, section 2); an outcome with no baseline is divided by the comparison
group's endline SD (said in the note).
"""

from __future__ import annotations

import html
import zlib
from dataclasses import dataclass, field, replace
from typing import Iterable, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .config import NATIONAL
from .errors import ChoiceError
from .indicators import OUTCOME_FAMILY
from .inference import Inference, LinearFit, fit_linear
from .multiplicity import bh_qvalues, kling_components, kling_index, sharpened_qvalues
from .propensity import affordable_covariates, centre_propensity, centre_table, overlap_summary
from .ruleset import EstimationRules, estimation_rules

__all__ = [
    "ALL_INFERENCES",
    "CONTRACT_COLUMNS",
    "ESTIMATORS",
    "EXTRA_COLUMNS",
    "ESTIMATE_COLUMNS",
    "EffectResult",
    "EffectResults",
    "OLSFit",
    "ancova_frame",
    "ancova_from_frame",
    "aipw_from_frame",
    "centre_outcome_frame",
    "check_arguments",
    "comparison_baseline_sd",
    "design_matrix",
    "did_frame",
    "did_from_frame",
    "endline_frame",
    "estimate_aipw",
    "estimate_ancova",
    "estimate_did",
    "estimate_heterogeneity",
    "estimate_ipw",
    "estimate_national",
    "estimate_region",
    "estimate_regression_adjustment",
    "fit_ols_cluster",
    "ipw_from_frame",
    "regression_adjustment_from_frame",
]

#: The columns of ``results/estimates.csv`` the data contract fixes, in its order.
CONTRACT_COLUMNS = [
    "region", "outcome", "estimator", "inference", "estimate", "std_error", "df",
    "ci_low", "ci_high", "p_value", "effect_size_sd", "n_children",
    "n_centres_partnered", "n_centres_comparison", "status", "note",
]
#: Columns added by issue 5, after the contract's: q-values over the outcome family,
#: the subgroup ('' for the whole region), warning codes (';'-joined) and the primary flag.
EXTRA_COLUMNS = ["q_value_bh", "q_value_sharpened", "subgroup", "warning", "is_primary"]
ESTIMATE_COLUMNS = CONTRACT_COLUMNS + EXTRA_COLUMNS

ALL_INFERENCES: tuple[str, ...] = ("CR1", "CR2", "WCR-bootstrap")
ESTIMATORS: tuple[str, ...] = ("ancova", "did", "regression_adjustment", "ipw", "aipw")
CENTRE_INFERENCES: tuple[str, ...] = ("HC1", "CR2", "WCR-bootstrap")
_DEFAULT_SEED = 20251123


def _rules() -> EstimationRules:
    return estimation_rules()


def _planned_inferences() -> list[str]:
    """The child-level inferences the plan runs (its primary one always), in ALL_INFERENCES order."""
    rules = _rules()
    chosen = {*rules.inferences, rules.primary.inference}
    return [name for name in ALL_INFERENCES if name in chosen]


def _planned_centre_inferences() -> list[str]:
    """The centre-level counterparts of the planned inferences (HC1 for CR1)."""
    child = _planned_inferences()
    return [centre for centre, name in zip(CENTRE_INFERENCES, ALL_INFERENCES) if name in child]


def _planned_estimators() -> set[str]:
    rules = _rules()
    return {*rules.estimators, rules.primary.estimator}


def _planned_outcomes() -> list[str] | None:
    """The outcomes the plan names (its primary one always), or None for the whole family."""
    rules = _rules()
    if rules.outcomes == "all":
        return None
    return list(dict.fromkeys([rules.primary.outcome, *rules.outcomes]))


def ancova_covariates() -> tuple[list[str], list[str]]:
    """The ANCOVA's numeric and categorical covariates in force (contract: baseline outcome and
    age; sex and setting), ``baseline`` first among the numeric ones."""
    covariates = _rules().covariates
    return list(covariates.ancova_numeric), list(covariates.ancova_categorical)


def _ancova_extra_columns() -> list[str]:
    """ANCOVA covariates and subgroup columns that are not among the child keys every frame carries."""
    numeric, categorical = ancova_covariates()
    subgroups = _rules().heterogeneity
    wanted = [*numeric, *categorical, *subgroups.child, *subgroups.centre]
    return list(dict.fromkeys(c for c in wanted if c != "baseline" and c not in _CHILD_KEYS))


# --------------------------------------------------------------------------- fits (compatible API)


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


def fit_ols_cluster(y: np.ndarray, X: np.ndarray, names: list[str], clusters: np.ndarray,
                    *, inference: Literal["CR1", "CR2"] = "CR1") -> OLSFit:
    """OLS with a CR1 (Stata small-sample) or CR2 (clubSandwich) cluster-robust covariance.

    Columns that are exact combinations of earlier ones are dropped first, so
    the fit matches R's ``lm`` with aliased coefficients removed.
    """
    if inference not in ("CR1", "CR2"):
        raise ValueError(f"inference {inference!r} is not a covariance matrix; use 'CR1' or 'CR2'")
    fit = fit_linear(y, X, names, clusters)
    vcov = fit.vcov_cr1() if inference == "CR1" else fit.vcov_cr2()
    return OLSFit(names=fit.names, params=fit.params, vcov=vcov, n_obs=fit.n_obs,
                  n_clusters=fit.n_clusters, rank=fit.rank)


# --------------------------------------------------------------------------- results


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
    n_children: int | float = 0  # NaN for centre-level outcomes
    n_centres_partnered: int = 0
    n_centres_comparison: int = 0
    status: Literal["ok", "not_estimable"] = "ok"
    note: str = ""
    q_value_bh: float = np.nan
    q_value_sharpened: float = np.nan
    subgroup: str = ""
    warning: str = ""
    fit: object | None = field(default=None, repr=False, compare=False)
    diagnostics: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_primary(self) -> bool:
        """The primary row (the plan's; the contract's elom_total, ancova, CR1 by default), whole region."""
        primary = _rules().primary
        return (self.outcome == primary.outcome and self.estimator == primary.estimator
                and self.inference == primary.inference and self.subgroup == "")

    def tidy(self) -> pd.DataFrame:
        """One row with the columns of ``results/estimates.csv``."""
        row = {c: getattr(self, c) for c in ESTIMATE_COLUMNS}
        return pd.DataFrame([row], columns=ESTIMATE_COLUMNS)

    def summary(self) -> str:
        """A short plain-text account of the estimate."""
        head = f"{self.estimator} ({self.inference}) on {self.outcome}, {self.region}"
        if self.subgroup:
            head += f" [{self.subgroup}]"
        if self.status != "ok":
            return f"{head}: not estimable. {self.note}"
        se = f"SE {self.std_error:.3f}, t on {self.df:.4g} df" if np.isfinite(self.std_error) else "bootstrap"
        lines = [
            head,
            f"  effect   {self.estimate:9.3f}  ({se}, p = {self.p_value:.3g})",
            f"  95% CI   [{self.ci_low:.3f}, {self.ci_high:.3f}]",
            f"  in SD    {self.effect_size_sd:9.3f}",
            f"  children {self.n_children}, centres {self.n_centres_partnered} partnered / "
            f"{self.n_centres_comparison} comparison",
        ]
        if np.isfinite(self.q_value_bh):
            lines.append(f"  q (BH) {self.q_value_bh:.3g}, sharpened {self.q_value_sharpened:.3g}")
        if self.warning:
            lines.append(f"  warning: {self.warning}")
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return _html_table(self.tidy(), vertical=True)


@dataclass(frozen=True)
class EffectResults:
    """Several effects (inferences, outcomes or subgroups) with the same API as one."""

    results: tuple[EffectResult, ...]

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> EffectResult:
        return self.results[i]

    def tidy(self) -> pd.DataFrame:
        """One row per effect, the columns of ``results/estimates.csv``."""
        if not self.results:
            return pd.DataFrame(columns=ESTIMATE_COLUMNS)
        return pd.DataFrame([{c: getattr(r, c) for c in ESTIMATE_COLUMNS} for r in self.results],
                            columns=ESTIMATE_COLUMNS)

    def summary(self) -> str:
        return "\n\n".join(r.summary() for r in self.results)

    def _repr_html_(self) -> str:
        columns = ["region", "outcome", "estimator", "inference", "subgroup", "estimate", "std_error", "df",
                   "ci_low", "ci_high", "p_value", "effect_size_sd", "status", "warning"]
        return _html_table(self.tidy()[columns], vertical=False)


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def _html_table(frame: pd.DataFrame, *, vertical: bool) -> str:
    if vertical:
        row = frame.iloc[0]
        cells = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                        f"<td>{html.escape(_fmt(v))}</td></tr>" for k, v in row.items())
        return f"<table class='evalkit-effect'>{cells}</table>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table class='evalkit-effects'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --------------------------------------------------------------------------- designs and frames


def design_matrix(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str] = (), *,
                  intercept: bool = True) -> tuple[np.ndarray, list[str]]:
    """Design matrix with R's treatment contrasts (sorted levels, the first as reference).

    Numeric columns come first in the order given (so ``partnered`` leads), then one dummy
    per non-reference level of each categorical column, named ``f"{column}{level}"`` as R does.
    """
    columns = [np.ones(len(frame))] if intercept else []
    names = ["(Intercept)"] if intercept else []
    for variable in numeric:
        columns.append(frame[variable].to_numpy(dtype="float64"))
        names.append(variable)
    for variable in categorical:
        codes, levels = _sorted_levels(frame[variable])
        for i, level in enumerate(levels[1:], start=1):
            columns.append((codes == i).astype("float64"))
            names.append(f"{variable}{level}")
    X = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    return X, names


def _sorted_levels(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes and levels of a column with its levels sorted as text, as R's factor() sorts them.

    A categorical column keeps its codes (only the levels present, re-sorted as text when
    need be); a text column is factorised as it is; anything else is read as text first.
    """
    if isinstance(values.dtype, pd.CategoricalDtype) and not values.isna().any():
        values = values.cat.remove_unused_categories()
        text = values.cat.categories.astype(str)
        order = np.argsort(np.asarray(text, dtype=object), kind="stable")
        position = np.empty(order.size, dtype=np.intp)
        position[order] = np.arange(order.size)
        return position[values.cat.codes.to_numpy()], pd.Index(text[order])
    if not pd.api.types.is_string_dtype(values.dtype) or isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(str)
    return pd.factorize(values, sort=True)


def _region_rows(data: pd.DataFrame, region: str | None) -> pd.DataFrame:
    return data if region is None else data.loc[data["region"] == region]


_CHILD_KEYS = ["child_id", "centre_id", "region", "is_partnered", "age_months", "sex", "setting"]


def check_arguments(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None = None, *,
                     region: str | None = None, outcome: str | None = None, outcomes: Sequence[str] | None = None,
                     inference: str | Sequence[str] | None = None, estimators: Sequence[str] | None = None,
                     centre_level: bool = False, extra_regions: Iterable[str] = (),
                     extra_outcomes: Iterable[str] = ()) -> None:
    """Raise :class:`ChoiceError`, naming the valid values, for an argument the data cannot answer.

    * ``region``: a value of the tables' ``region`` column (or of ``extra_regions``);
    * ``outcome`` (one model's): a numeric column of ``child_outcomes`` other than the model's
      keys, with ``centre_level`` also a centre-level outcome of the family (one of
      ``centre_outcomes`` when it is given), or one of ``extra_outcomes``;
    * ``outcomes`` (:func:`estimate_region`'s): the family present in the data, the Kling index;
    * ``inference``: :data:`ALL_INFERENCES`, :data:`CENTRE_INFERENCES` for a centre-level outcome;
    * ``estimators``: :data:`ESTIMATORS`.

    An argument that is ``None`` is not checked.
    """
    tables = [t for t in (child_outcomes, centre_outcomes) if t is not None and "region" in t.columns]
    extra_regions = set(extra_regions)
    if (region is not None and tables and region not in extra_regions
            and not any((t["region"] == region).any() for t in tables)):
        present = {str(r) for t in tables for r in t["region"].dropna().unique()} | extra_regions
        raise ChoiceError("region", region, valid=sorted(present))
    if outcome is not None:
        valid = [c for c in child_outcomes.columns
                 if c not in _CHILD_KEYS and pd.api.types.is_numeric_dtype(child_outcomes[c].dtype)]
        valid += [spec.name for spec in OUTCOME_FAMILY if centre_level and spec.level == "centre"
                  and spec.name not in valid and (centre_outcomes is None or spec.name in centre_outcomes.columns)]
        valid += [name for name in dict.fromkeys(extra_outcomes) if name not in valid]
        if outcome not in valid:
            raise ChoiceError("outcome", outcome, valid=valid)
    if outcomes is not None:
        valid = [name for name, _ in _available_outcomes(child_outcomes, centre_outcomes)]
        for name in [outcomes] if isinstance(outcomes, str) else outcomes:
            if name not in valid:
                raise ChoiceError("outcome", name, valid=valid)
    if inference is not None:
        valid = CENTRE_INFERENCES if outcome is not None and _outcome_level(outcome) == "centre" else ALL_INFERENCES
        for name in _as_tuple(inference):
            if name not in valid:
                raise ChoiceError("inference", name, valid=valid)
    for name in [estimators] if isinstance(estimators, str) else estimators or ():
        if name not in ESTIMATORS:
            raise ChoiceError("estimator", name, valid=ESTIMATORS)


class _ChildFrames:
    """The analysis frames of many outcomes from one pass over the child table.

    ``data`` holds the rows analysed (a region's, or all); a child's baseline is looked up in
    ``baseline_source`` (the whole table, so a child whose baseline was taken elsewhere still
    counts, as the contract's ANCOVA has it) or, for columns only ``data`` has (the Kling
    index), in ``data``. Centre covariates are merged from ``centre_outcomes``.
    """

    def __init__(self, data: pd.DataFrame, outcomes: Sequence[str], *, baseline_source: pd.DataFrame | None = None,
                 centre_outcomes: pd.DataFrame | None = None):
        source = data if baseline_source is None else baseline_source
        outcomes = list(dict.fromkeys(outcomes))
        self.covariates = _centre_covariates(centre_outcomes)
        extra = _ancova_extra_columns()
        self.ancova_extra = [c for c in extra if c in data.columns]
        endline = data.loc[data["wave"] == "endline", _CHILD_KEYS + self.ancova_extra + outcomes]
        from_centres = [c for c in extra if c not in data.columns]
        missing = [c for c in from_centres if centre_outcomes is None or c not in centre_outcomes.columns]
        if missing:
            raise ValueError(f"ANCOVA covariate or subgroup column(s) {', '.join(missing)} are neither "
                             "child columns nor centre columns of the data")
        endline = _with_centre_columns(endline, centre_outcomes, from_centres)
        self.ancova_extra += from_centres
        self.endline = _with_centre_columns(endline, centre_outcomes, self.covariates)
        baseline = None
        endline_children = endline["child_id"].unique()
        for table, names in ((source, [o for o in outcomes if o in source.columns]),
                             (data, [o for o in outcomes if o not in source.columns])):
            if not names:
                continue
            # only the baselines of children assessed at endline here: the inner merge below keeps
            # no other, and a region's slice of a national table stays small
            wanted = (table["wave"] == "baseline") & table["child_id"].isin(endline_children)
            rows = table.loc[wanted, ["child_id", *names]]
            rows = rows.rename(columns={o: f"baseline__{o}" for o in names})
            baseline = rows if baseline is None else baseline.merge(rows, on="child_id", how="outer")
        self.wide = (endline.merge(baseline, on="child_id", how="inner") if baseline is not None
                     else endline.iloc[0:0]).sort_values(["centre_id", "child_id"])
        panel = data.loc[data["wave"].isin(["baseline", "endline"]),
                         ["child_id", "centre_id", "region", "wave", "is_partnered", "age_months", "sex", *outcomes]]
        self.panel = panel.sort_values(["centre_id", "child_id", "wave"])

    def ancova(self, outcome: str) -> pd.DataFrame:
        frame = self.wide[[*_CHILD_KEYS, *self.ancova_extra, outcome, f"baseline__{outcome}"]].rename(
            columns={outcome: "y", f"baseline__{outcome}": "baseline"})
        frame = frame.astype({"y": "float64", "baseline": "float64"})
        numeric, categorical = ancova_covariates()
        frame = frame.dropna(subset=["y", "is_partnered", *numeric, *categorical, "centre_id"])
        frame = frame.assign(partnered=frame["is_partnered"].astype(bool).astype("float64"))
        return frame.reset_index(drop=True)

    def endline_only(self, outcome: str) -> pd.DataFrame:
        frame = self.endline[[*_CHILD_KEYS, outcome, *self.covariates]].rename(columns={outcome: "y"})
        frame = frame.astype({"y": "float64"})
        frame = frame.dropna(subset=["y", "is_partnered", "age_months", "sex", "setting", "centre_id",
                                     *self.covariates])
        frame = frame.assign(partnered=frame["is_partnered"].astype(bool).astype("float64"))
        return frame.sort_values(["centre_id", "child_id"]).reset_index(drop=True)

    def did(self, outcome: str) -> pd.DataFrame:
        frame = self.panel[["child_id", "centre_id", "region", "wave", "is_partnered", "age_months", "sex", outcome]]
        frame = frame.rename(columns={outcome: "y"}).astype({"y": "float64"})
        frame = frame.dropna(subset=["y", "is_partnered", "age_months", "sex", "centre_id"])
        partnered = frame["is_partnered"].astype(bool).astype("float64")
        endline = (frame["wave"] == "endline").astype("float64")
        frame = frame.assign(partnered=partnered, endline=endline, partnered_x_endline=partnered * endline)
        return frame.reset_index(drop=True)


def ancova_frame(child_outcomes: pd.DataFrame, region: str | None = None,
                 outcome: str = "elom_total") -> pd.DataFrame:
    """Children with both waves: endline outcome, baseline outcome and covariates.

    The endline row supplies the centre (hence treatment and cluster), age,
    sex and setting; the baseline row may be anywhere in ``child_outcomes``.
    Rows missing any model variable are left out.
    """
    data = _region_rows(child_outcomes, region)
    return _ChildFrames(data, [outcome], baseline_source=child_outcomes).ancova(outcome)


def _centre_covariates(centre_outcomes: pd.DataFrame | None) -> list[str]:
    wanted = _rules().covariates.centre_categorical
    if centre_outcomes is None:
        return []
    return [c for c in wanted if c in centre_outcomes.columns]


def _with_centre_columns(frame: pd.DataFrame, centre_outcomes: pd.DataFrame | None,
                         columns: Sequence[str]) -> pd.DataFrame:
    columns = [c for c in columns if centre_outcomes is not None and c in centre_outcomes.columns
               and c not in frame.columns]
    if not columns:
        return frame
    extra = centre_outcomes[["centre_id", *columns]].drop_duplicates("centre_id")
    return frame.merge(extra, on="centre_id", how="left")


def endline_frame(child_outcomes: pd.DataFrame, region: str | None = None, outcome: str = "elom_total",
                  centre_outcomes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Endline children with the outcome, child covariates and centre covariates.

    The centre covariates (registration status, fee band where present) come from
    ``centre_outcomes``; rows missing any model variable are left out.
    """
    data = _region_rows(child_outcomes, region)
    return _ChildFrames(data, [outcome], centre_outcomes=centre_outcomes).endline_only(outcome)


def did_frame(child_outcomes: pd.DataFrame, region: str | None = None, outcome: str = "elom_total") -> pd.DataFrame:
    """The child panel: every baseline and endline row with the outcome, for the DiD.

    ``endline`` is 1 at endline; ``partnered_x_endline`` is the interaction whose
    coefficient is the effect. Each row's centre is its cluster and fixed effect.
    """
    return _ChildFrames(_region_rows(child_outcomes, region), [outcome]).did(outcome)


def centre_outcome_frame(centre_outcomes: pd.DataFrame, region: str | None = None,
                         outcome: str = "customer_service_score_pct") -> pd.DataFrame:
    """Centres of the region with a centre-level outcome and the centre covariates."""
    data = _region_rows(centre_outcomes, region)
    covariates = ["setting", *_centre_covariates(centre_outcomes)]
    frame = data[["centre_id", "region", "is_partnered", *covariates, outcome]].rename(columns={outcome: "y"})
    frame["y"] = frame["y"].astype("float64")
    frame = frame.dropna(subset=["y", "is_partnered", *covariates])
    frame = frame.assign(partnered=frame["is_partnered"].astype(bool).astype("float64"))
    return frame.sort_values("centre_id").reset_index(drop=True)


def comparison_baseline_sd(child_outcomes: pd.DataFrame, region: str | None = None,
                           outcome: str = "elom_total") -> float:
    """SD (n−1) of the baseline outcome among comparison children of the region."""
    return _comparison_sd(child_outcomes, region, outcome, wave="baseline")


def _comparison_sd(data: pd.DataFrame, region: str | None, column: str, wave: str | None) -> float:
    data = _region_rows(data, region)
    mask = data["is_partnered"] == False  # noqa: E712 (nullable)
    if wave is not None:
        mask = mask & (data["wave"] == wave)
    values = data.loc[mask.fillna(False).to_numpy(dtype=bool), column].astype("float64").dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else np.nan


def _effect_scale(child_outcomes: pd.DataFrame, region: str | None, outcome: str) -> tuple[float, str]:
    """The contract's effect-size denominator and a note when it had to fall back."""
    sd = comparison_baseline_sd(child_outcomes, region, outcome)
    if np.isfinite(sd) and sd > 0:
        return sd, ""
    sd = _comparison_sd(child_outcomes, region, outcome, wave="endline")
    return sd, "Effect size in SD of the comparison group's endline outcome (no baseline)."


# --------------------------------------------------------------------------- shared machinery


def _arm_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """Partnered and comparison centres with rows in the frame."""
    codes = pd.factorize(frame["centre_id"])[0]
    partnered = frame["partnered"].to_numpy() == 1
    return int(np.unique(codes[partnered]).size), int(np.unique(codes[~partnered]).size)


def _too_few(n_part: int, n_comp: int, min_centres: int | None, what: str) -> str | None:
    """The not_estimable reason when an arm has fewer than ``min_centres`` centres
    (None: the plan's ``thresholds.min_centres_per_arm``)."""
    if min_centres is None:
        min_centres = _rules().thresholds.min_centres_per_arm
    if n_part < min_centres or n_comp < min_centres:
        return (f"Only {n_part} partnered and {n_comp} comparison centres {what}; "
                f"at least {min_centres} of each are needed.")
    return None


def _few_centres_note(n_part: int, n_comp: int) -> str:
    if min(n_part, n_comp) < _rules().inference.few_centres_warning:
        return (f"Few centres in one arm ({n_part} partnered, {n_comp} comparison): "
                "cluster-robust standard errors may be too small.")
    return ""


def _seed(seed: int, *parts: str) -> np.random.SeedSequence:
    """A replication-stable seed for one row: the user's seed and a hash of the row's key."""
    return np.random.SeedSequence([int(seed), zlib.crc32("|".join(parts).encode("utf-8"))])


def _as_tuple(inference: str | Sequence[str]) -> tuple[str, ...]:
    return (inference,) if isinstance(inference, str) else tuple(inference)


def _one_or_many(results: list[EffectResult], inference: str | Sequence[str]) -> EffectResult | EffectResults:
    return results[0] if isinstance(inference, str) else EffectResults(tuple(results))


def _not_estimable(common: dict, inferences: Iterable[str], reason: str) -> list[EffectResult]:
    return [EffectResult(inference=inf, status="not_estimable", note=reason, **common) for inf in inferences]


def _rows_from_fit(fit: LinearFit, coef: str, common: dict, inferences: Iterable[str], *, sd: float,
                   seed: int, reps: int, notes: dict[str, str] | None = None,
                   warning: str = "", diagnostics: dict | None = None) -> list[EffectResult]:
    """One result per inference for one coefficient of one fit."""
    rules = _rules().inference
    notes = notes or {}
    if fit.n_obs - fit.rank < 2:
        unit = "children" if fit.n_clusters < fit.n_obs else "centres"
        reason = (f"Too few {unit} ({fit.n_obs}) for the covariates ({fit.rank} coefficients): "
                  "the fit leaves almost no residual variation.")
        return _not_estimable(common, inferences, reason)
    # rounding can leave the variance of an exactly fitted effect at −1e-30: that is zero too
    variance = float(fit.vcov_cr1()[fit.index(coef), fit.index(coef)])
    if not np.sqrt(max(variance, 0.0)) > 1e-7 * max(np.std(fit.y), 1e-300):
        reason = "The covariates fit the partnered centres exactly: no variation is left to estimate the effect from."
        return _not_estimable(common, inferences, reason)
    out = []
    for inference in inferences:
        note, row_warning = notes.get(inference, ""), warning
        if inference == "WCR-bootstrap":
            if fit.n_clusters > rules.bootstrap_max_clusters:
                continue  # many clusters: no few-cluster problem to solve, and costly
            key = (common["region"], common["outcome"], common["estimator"], common.get("subgroup", ""))
            boot = fit.wild_bootstrap(coef, reps=reps, seed=_seed(seed, *key), alpha=rules.alpha,
                                      webb_max_clusters=rules.webb_max_clusters)
            values = {"estimate": float(fit.params[fit.index(coef)]), "std_error": np.nan, "df": np.nan,
                      "ci_low": boot.ci_low, "ci_high": boot.ci_high, "p_value": boot.p_value}
            note += (f" Wild cluster restricted bootstrap: {boot.reps} {boot.weights.capitalize()} draws over "
                     f"{boot.n_clusters} clusters (seed {seed}); p-value and 95% interval by test inversion; "
                     "no standard error.")
        else:
            if inference == "CR2" and fit.n_clusters > rules.cr2_max_clusters:
                continue  # CR2 ≈ CR1 with this many clusters (see rules/estimation.yml)
            values = fit.coef_test(coef, inference, alpha=rules.alpha)
            if inference == "CR2" and values["df"] < 1:
                out.extend(_not_estimable(common, [inference], (
                    f"CR2 leaves {values['df']:.2g} degrees of freedom: the centres cannot say how uncertain "
                    "this estimate is.")))
                continue
            if inference == "CR2" and fit.n_singular_cr2_clusters:
                note += (f" CR2: {fit.n_singular_cr2_clusters} centre(s) fitted exactly by their covariates "
                         "(pseudo-inverse adjustment, as clubSandwich).")
                row_warning = ";".join(filter(None, [warning, "cr2_singular_centre"]))
        out.append(EffectResult(inference=inference, effect_size_sd=_scaled(values, sd), status="ok", note=note.strip(),
                                fit=fit, warning=row_warning, diagnostics=diagnostics or {}, **values, **common))
    return out


def _scaled(values: dict, sd: float) -> float:
    return values["estimate"] / sd if sd and np.isfinite(sd) else np.nan


def _common(region: str, outcome: str, estimator: str, frame: pd.DataFrame, n_part: int, n_comp: int,
            subgroup: str = "", n_children: int | None = None) -> dict:
    return dict(region=region, outcome=outcome, estimator=estimator, subgroup=subgroup,
                n_children=len(frame) if n_children is None else n_children,
                n_centres_partnered=n_part, n_centres_comparison=n_comp)


# --------------------------------------------------------------------------- ANCOVA


def ancova_from_frame(frame: pd.DataFrame, *, region: str, outcome: str = "elom_total",
                      inference: Inference | Sequence[Inference] = "CR1",
                      min_centres: int | None = None, baseline_sd: float = np.nan,
                      subgroup: str = "", extra_numeric: Sequence[str] = (),
                      extra_categorical: Sequence[str] = (), coef: str = "partnered",
                      seed: int = _DEFAULT_SEED, bootstrap_reps: int | None = None,
                      estimator: str = "ancova") -> EffectResult | EffectResults:
    """The ANCOVA on an analysis frame as :func:`ancova_frame` returns it.

    ``frame`` needs ``y``, ``partnered`` (0/1), ``baseline``, ``age_months``,
    ``sex``, ``setting`` and ``centre_id``; ``baseline_sd`` scales the effect size.
    ``extra_numeric`` / ``extra_categorical`` add terms after the contract's (an interaction
    for :func:`estimate_heterogeneity`, region dummies for the national model) and ``coef``
    names the coefficient reported.
    """
    inferences = _as_tuple(inference)
    n_part, n_comp = _arm_counts(frame) if len(frame) else (0, 0)
    common = _common(region, outcome, estimator, frame, n_part, n_comp, subgroup)
    reason = _too_few(n_part, n_comp, min_centres, "have children assessed at both baseline and endline")
    if reason:
        return _one_or_many(_not_estimable(common, inferences, reason), inference)
    numeric, categorical = ancova_covariates()
    X, names = design_matrix(frame, ["partnered", *extra_numeric, *numeric], [*categorical, *extra_categorical])
    fit = fit_linear(frame["y"].to_numpy(), X, names, frame["centre_id"])
    if coef not in fit.names:
        reason = f"The {coef} term is collinear with the other terms in this subgroup."
        return _one_or_many(_not_estimable(common, inferences, reason), inference)
    reps = _rules().inference.bootstrap_reps if bootstrap_reps is None else bootstrap_reps
    notes = {"CR1": _few_centres_note(n_part, n_comp)}
    rows = _rows_from_fit(fit, coef, common, inferences, sd=baseline_sd, seed=seed, reps=reps, notes=notes)
    return _one_or_many(rows, inference)


def estimate_ancova(child_outcomes: pd.DataFrame, region: str | None = None, *,
                    outcome: str = "elom_total", inference: Inference | Sequence[Inference] = "CR1",
                    min_centres: int | None = None, seed: int = _DEFAULT_SEED,
                    bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """ANCOVA: endline outcome on partnered, baseline outcome, age, sex and setting.

    Standard errors are clustered by centre (CR1 by default; ``"CR2"`` or
    ``"WCR-bootstrap"``, or a list of them for an :class:`EffectResults`); the CR1 95%
    interval uses t on G−1 degrees of freedom. The region is ``not_estimable`` when fewer
    than ``min_centres`` partnered or comparison centres have usable data.
    """
    check_arguments(child_outcomes, region=region, outcome=outcome, inference=inference)
    frame = ancova_frame(child_outcomes, region, outcome)
    sd = comparison_baseline_sd(child_outcomes, region, outcome)
    return ancova_from_frame(frame, region=region if region is not None else "All regions",
                             outcome=outcome, inference=inference, min_centres=min_centres,
                             baseline_sd=sd, seed=seed, bootstrap_reps=bootstrap_reps)


# --------------------------------------------------------------------------- difference-in-differences


def _did_sample(frame: pd.DataFrame) -> pd.DataFrame:
    """The DiD rows that identify the effect: centres observed in both waves."""
    if frame.empty:
        return frame
    waves = frame.groupby("centre_id")["endline"].agg(["min", "max"])
    both = waves.index[(waves["min"] == 0) & (waves["max"] == 1)]
    return frame.loc[frame["centre_id"].isin(both)]


def did_from_frame(frame: pd.DataFrame, *, region: str, outcome: str = "elom_total",
                   inference: Inference | Sequence[Inference] = "CR1", min_centres: int | None = None,
                   baseline_sd: float = np.nan, seed: int = _DEFAULT_SEED,
                   bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """DiD on a :func:`did_frame`: ``y ~ endline + partnered_x_endline + age + sex + centre FE``.

    Only centres observed in both waves identify the effect; they are the ones counted.
    The centre effects are absorbed (results equal ``lm`` with ``factor(centre_id)``).
    """
    inferences = _as_tuple(inference)
    frame = _did_sample(frame)
    n_part, n_comp = _arm_counts(frame) if len(frame) else (0, 0)
    common = _common(region, outcome, "did", frame, n_part, n_comp,
                     n_children=int(frame["child_id"].nunique()) if len(frame) else 0)
    reason = _too_few(n_part, n_comp, min_centres, "have children assessed in both waves")
    if reason:
        return _one_or_many(_not_estimable(common, inferences, reason), inference)
    X, names = design_matrix(frame, ["endline", "partnered_x_endline", "age_months"], ["sex"], intercept=False)
    fit = fit_linear(frame["y"].to_numpy(), X, names, frame["centre_id"], absorb_clusters=True)
    reps = _rules().inference.bootstrap_reps if bootstrap_reps is None else bootstrap_reps
    rows = _rows_from_fit(fit, "partnered_x_endline", common, inferences, sd=baseline_sd, seed=seed, reps=reps,
                          notes={"CR1": _few_centres_note(n_part, n_comp)})
    return _one_or_many(rows, inference)


def estimate_did(child_outcomes: pd.DataFrame, region: str | None = None, *, outcome: str = "elom_total",
                 inference: Inference | Sequence[Inference] = "CR1", min_centres: int | None = None,
                 seed: int = _DEFAULT_SEED, bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """Difference-in-differences on the child panel with centre fixed effects.

    Every baseline and endline row with the outcome enters (children seen once included);
    the centre effects absorb each centre's level, the endline dummy the common change, and
    the coefficient on partnered × endline is the effect. It assumes parallel trends: under
    a lagged-dependent-variable process (scores regress to the mean) and arms that differ at
    baseline it is biased, which the Monte Carlo study in ``docs/methods.md`` shows.
    """
    check_arguments(child_outcomes, region=region, outcome=outcome, inference=inference)
    sd, _ = _effect_scale(child_outcomes, region, outcome)
    return did_from_frame(did_frame(child_outcomes, region, outcome),
                          region=region if region is not None else "All regions", outcome=outcome,
                          inference=inference, min_centres=min_centres, baseline_sd=sd, seed=seed,
                          bootstrap_reps=bootstrap_reps)


# --------------------------------------------------------------------------- regression adjustment


def _model_frame_as_fitted(frame: pd.DataFrame, covariates: Sequence[str],
                           estimator: Literal["regression_adjustment", "aipw"] = "regression_adjustment") -> pd.DataFrame:
    """The frame with the centre covariates the estimator leaves out (too few centres to support
    them) made constant, so that another program fitting every covariate fits the same model."""
    if estimator == "aipw":
        kept, _ = _aipw_categorical(frame, ["setting", *covariates])
    else:
        kept, _ = affordable_covariates(frame, list(covariates), fixed_terms=2 + frame["setting"].nunique() - 1)
    return frame.assign(**{c: "(left out)" for c in covariates if c not in kept})


def regression_adjustment_from_frame(frame: pd.DataFrame, *, region: str, outcome: str,
                                     inference: Inference | Sequence[Inference] = "CR1",
                                     min_centres: int | None = None, sd: float = np.nan,
                                     level: Literal["child", "centre"] = "child",
                                     centre_covariates: Sequence[str] = (), seed: int = _DEFAULT_SEED,
                                     bootstrap_reps: int | None = None, note: str = "",
                                     extra_categorical: Sequence[str] = ()) -> EffectResult | EffectResults:
    """Regression adjustment on an :func:`endline_frame` (child level) or a
    :func:`centre_outcome_frame` (centre level, one row per centre, HC errors)."""
    inferences = _as_tuple(inference)
    n_part, n_comp = _arm_counts(frame) if len(frame) else (0, 0)
    n_children = len(frame) if level == "child" else np.nan
    common = _common(region, outcome, "regression_adjustment", frame, n_part, n_comp, n_children=n_children)
    reason = _too_few(n_part, n_comp, min_centres, "have the outcome")
    if reason:
        return _one_or_many(_not_estimable(common, inferences, reason), inference)
    fixed = 2 + sum(frame[c].nunique() - 1 for c in ["setting", *extra_categorical])
    centre_covariates, left_out = affordable_covariates(frame, list(centre_covariates), fixed_terms=fixed)
    note = f"{note} {left_out}".strip()
    if level == "child":
        X, names = design_matrix(frame, ["partnered", "age_months"],
                                 ["sex", "setting", *centre_covariates, *extra_categorical])
        clusters = frame["centre_id"]
    else:
        X, names = design_matrix(frame, ["partnered"], ["setting", *centre_covariates, *extra_categorical])
        clusters = None
    fit = fit_linear(frame["y"].to_numpy(), X, names, clusters)
    reps = _rules().inference.bootstrap_reps if bootstrap_reps is None else bootstrap_reps
    first = "CR1" if level == "child" else "HC1"
    notes = {first: (_few_centres_note(n_part, n_comp) + " " + note).strip()}
    rows = _rows_from_fit(fit, "partnered", common, inferences, sd=sd, seed=seed, reps=reps, notes=notes)
    return _one_or_many(rows, inference)


def estimate_regression_adjustment(child_outcomes: pd.DataFrame, region: str | None = None, *,
                                   centre_outcomes: pd.DataFrame | None = None, outcome: str = "elom_total",
                                   inference: Inference | Sequence[Inference] | None = None,
                                   min_centres: int | None = None, seed: int = _DEFAULT_SEED,
                                   bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """Regression adjustment without a baseline: endline outcome on partnered, age, sex,
    setting and the centre covariates (registration status, fee band) that drive selection.

    The estimator for a region with no baseline, and for centre-level outcomes
    (``customer_service_score_pct``: one row per centre, HC1 errors).
    """
    check_arguments(child_outcomes, centre_outcomes, region=region, outcome=outcome, inference=inference,
                     centre_level=True)
    label = region if region is not None else "All regions"
    if _outcome_level(outcome) == "centre":
        if centre_outcomes is None:
            raise ValueError(f"{outcome} is a centre-level outcome: pass centre_outcomes")
        frame = centre_outcome_frame(centre_outcomes, region, outcome)
        sd = _centre_sd(frame)
        return regression_adjustment_from_frame(
            frame, region=label, outcome=outcome, inference=inference or "HC1", min_centres=min_centres, sd=sd,
            level="centre", centre_covariates=_centre_covariates(centre_outcomes), seed=seed,
            bootstrap_reps=bootstrap_reps, note="Centre-level outcome: one row per centre.")
    frame = endline_frame(child_outcomes, region, outcome, centre_outcomes)
    sd, note = _effect_scale(child_outcomes, region, outcome)
    return regression_adjustment_from_frame(
        frame, region=label, outcome=outcome, inference=inference or "CR1", min_centres=min_centres, sd=sd,
        centre_covariates=_centre_covariates(centre_outcomes), seed=seed, bootstrap_reps=bootstrap_reps,
        note=note)


def _outcome_level(outcome: str) -> str:
    for spec in OUTCOME_FAMILY:
        if spec.name == outcome:
            return spec.level
    return "child"


# --------------------------------------------------------------------------- IPW and AIPW


def _scored_centres(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None,
                    region: str | None) -> pd.DataFrame:
    return centre_propensity(centre_table(child_outcomes, centre_outcomes, region))


def _weighting_note(summary: dict) -> tuple[str, str]:
    """The note and warning codes that report trimming and weak overlap."""
    notes, warnings = [], []
    trimmed = summary["n_trimmed_partnered"] + summary["n_trimmed_comparison"]
    if trimmed:
        notes.append(f"{summary['n_trimmed_partnered']} partnered and {summary['n_trimmed_comparison']} comparison "
                     "centres trimmed (propensity above the threshold).")
        warnings.append("weights_trimmed")
    ess = summary["effective_comparison_centres"]
    if np.isfinite(ess) and ess < _rules().propensity.min_effective_comparison_centres:
        notes.append(f"Weak overlap: the weighted comparison group is worth {ess:.1f} centres.")
        warnings.append("poor_overlap")
    return " ".join(notes), ";".join(warnings)


def _ipw_sample(frame: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """The IPW rows with their centre's ATT weight; trimmed and zero-weight centres left out."""
    data = frame.merge(scored[["centre_id", "weight_att", "is_trimmed"]], on="centre_id", how="inner")
    return data.loc[~data["is_trimmed"].astype(bool) & (data["weight_att"] > 0)]


def ipw_from_frame(frame: pd.DataFrame, scored: pd.DataFrame, *, region: str, outcome: str,
                   inference: Inference | Sequence[Inference] = "CR1", min_centres: int | None = None,
                   sd: float = np.nan, level: Literal["child", "centre"] = "child", seed: int = _DEFAULT_SEED,
                   bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """IPW (Hájek, effect on partnered centres): weighted least squares of the outcome on
    partnered with the centres' ATT weights; trimmed centres are left out."""
    inferences = _as_tuple(inference)
    data = _ipw_sample(frame, scored)
    n_part, n_comp = _arm_counts(data) if len(data) else (0, 0)
    common = _common(region, outcome, "ipw", data, n_part, n_comp, n_children=len(data) if level == "child" else np.nan)
    reason = _too_few(n_part, n_comp, min_centres, "have the outcome and a propensity score")
    summary = overlap_summary(scored) if scored["propensity"].notna().all() else None
    if reason or summary is None:
        return _one_or_many(_not_estimable(common, inferences, reason or "No propensity score."), inference)
    note, warning = _weighting_note(summary)
    X, names = design_matrix(data, ["partnered"])
    clusters = data["centre_id"] if level == "child" else None
    fit = fit_linear(data["y"].to_numpy(), X, names, clusters, weights=data["weight_att"].to_numpy())
    reps = _rules().inference.bootstrap_reps if bootstrap_reps is None else bootstrap_reps
    first = "CR1" if level == "child" else "HC1"
    notes = {inf: note for inf in inferences}
    notes[first] = (_few_centres_note(n_part, n_comp) + " " + note).strip()
    rows = _rows_from_fit(fit, "partnered", common, inferences, sd=sd, seed=seed, reps=reps, notes=notes,
                          warning=warning, diagnostics=summary)
    return _one_or_many(rows, inference)


def _aipw_categorical(data: pd.DataFrame, categorical: Sequence[str]) -> tuple[list[str], str]:
    """The categorical terms of the AIPW outcome model: centre covariates the comparison
    centres (on which it is fitted) cannot support are left out."""
    centre_level = [c for c in categorical if c in _rules().covariates.centre_categorical]
    comparison = data.loc[data["partnered"] == 0]
    fixed = 1 + (comparison["setting"].nunique() - 1 if "setting" in categorical else 0)
    kept, note = affordable_covariates(comparison, centre_level, fixed_terms=fixed)
    return [c for c in categorical if c not in centre_level or c in kept], note


def aipw_from_frame(frame: pd.DataFrame, scored: pd.DataFrame, *, region: str, outcome: str,
                    numeric: Sequence[str], categorical: Sequence[str],
                    inference: Inference | Sequence[Inference] | None = None, min_centres: int | None = None,
                    sd: float = np.nan, level: Literal["child", "centre"] = "child", seed: int = _DEFAULT_SEED,
                    bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """AIPW for the effect on partnered centres (doubly robust), as one weighted regression.

    The comparison group's outcome model ``m0`` (``numeric`` and ``categorical`` terms) is
    fitted by least squares weighted with the ATT weights ``e/(1−e)``. Then the AIPW
    estimate ``mean_T(y − m0) − Σ_C w (y − m0) / Σ_C w`` has a zero second term (weighted
    residuals sum to zero) and equals the weighted regression adjustment (Wooldridge's
    IPWRA); it is the coefficient on partnered in the weighted least squares of y on
    [1, partnered, (1 − partnered) · (x − mean of x over partnered children)], weights 1 for
    partnered and ``e/(1−e)`` for comparison rows. So CR1, CR2 (equal to clubSandwich on the
    weighted ``lm``) and the wild bootstrap apply, with the propensity scores taken as given.
    The estimate is consistent when either the propensity model or ``m0`` is right.
    """
    inference = inference or ("CR1" if level == "child" else "HC1")
    inferences = _as_tuple(inference)
    data = _ipw_sample(frame, scored)
    n_part, n_comp = _arm_counts(data) if len(data) else (0, 0)
    common = _common(region, outcome, "aipw", data, n_part, n_comp, n_children=len(data) if level == "child" else np.nan)
    reason = _too_few(n_part, n_comp, min_centres, "have the outcome and a propensity score")
    summary = overlap_summary(scored) if scored["propensity"].notna().all() else None
    if reason or summary is None:
        return _one_or_many(_not_estimable(common, inferences, reason or "No propensity score."), inference)
    note, warning = _weighting_note(summary)
    kept, left_out = _aipw_categorical(data, categorical)
    Z, znames = design_matrix(data, list(numeric), kept, intercept=False)
    treated = data["partnered"].to_numpy() == 1
    Z = (Z - Z[treated].mean(axis=0)) * (~treated)[:, None]
    X = np.column_stack([np.ones(len(data)), data["partnered"].to_numpy(dtype="float64"), Z])
    names = ["(Intercept)", "partnered", *(f"comparison_x_{n}" for n in znames)]
    clusters = data["centre_id"] if level == "child" else None
    fit = fit_linear(data["y"].to_numpy(dtype="float64"), X, names, clusters,
                     weights=data["weight_att"].to_numpy(dtype="float64"))
    reps = _rules().inference.bootstrap_reps if bootstrap_reps is None else bootstrap_reps
    note = f"{note} {left_out}".strip()
    notes = {inf: note for inf in inferences}
    first = "CR1" if level == "child" else "HC1"
    notes[first] = (_few_centres_note(n_part, n_comp) + " " + note).strip()
    rows = _rows_from_fit(fit, "partnered", common, inferences, sd=sd, seed=seed, reps=reps, notes=notes,
                          warning=warning, diagnostics=summary)
    return _one_or_many(rows, inference)


def _aipw_frame(ancova: pd.DataFrame, endline: pd.DataFrame, covariates: Sequence[str]
                ) -> tuple[pd.DataFrame, list[str]]:
    """The AIPW rows and the numeric terms of its outcome model: the ANCOVA children with the
    centre covariates, or the endline children without a baseline term when no child has one."""
    frame = ancova
    if covariates:
        frame = frame.merge(endline[["child_id", *covariates]], on="child_id", how="inner")
    if frame.empty:
        return endline, ["age_months"]
    return frame, ["baseline", "age_months"]


def _weighting_frames(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None, region: str | None,
                      outcome: str) -> dict:
    """Frames, scores, effect-size scale and outcome-model terms for IPW/AIPW of one outcome."""
    covariates = _centre_covariates(centre_outcomes)
    if _outcome_level(outcome) == "centre":
        if centre_outcomes is None:
            raise ValueError(f"{outcome} is a centre-level outcome: pass centre_outcomes")
        frame = centre_outcome_frame(centre_outcomes, region, outcome)
        return dict(ipw=frame, aipw=frame, scored=_centre_scores(frame, covariates), sd=_centre_sd(frame),
                    level="centre", numeric=[], categorical=["setting", *covariates])
    data = _region_rows(child_outcomes, region)
    frames = _ChildFrames(data, [outcome], baseline_source=child_outcomes, centre_outcomes=centre_outcomes)
    endline = frames.endline_only(outcome)
    aipw, numeric = _aipw_frame(frames.ancova(outcome), endline, covariates)
    return dict(ipw=endline, aipw=aipw, scored=_scored_centres(data, centre_outcomes, None),
                sd=_effect_scale(data, None, outcome)[0], level="child", numeric=numeric,
                categorical=["sex", "setting", *covariates])


def _centre_scores(frame: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    return centre_propensity(frame[["centre_id", "partnered", "setting", *covariates]])


def _centre_sd(frame: pd.DataFrame) -> float:
    """SD of a centre-level outcome among comparison centres (there is no baseline)."""
    values = frame.loc[frame["partnered"] == 0, "y"].dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else np.nan


def estimate_ipw(child_outcomes: pd.DataFrame, region: str | None = None, *,
                 centre_outcomes: pd.DataFrame | None = None, outcome: str = "elom_total",
                 inference: Inference | Sequence[Inference] | None = None, min_centres: int | None = None,
                 seed: int = _DEFAULT_SEED, bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """Inverse-probability weighting with centre-level propensity scores (effect on partnered
    centres). Overlap diagnostics are in ``result.diagnostics``; trimming is in the note."""
    check_arguments(child_outcomes, centre_outcomes, region=region, outcome=outcome, inference=inference,
                     centre_level=True)
    parts = _weighting_frames(child_outcomes, centre_outcomes, region, outcome)
    default = "CR1" if parts["level"] == "child" else "HC1"
    return ipw_from_frame(parts["ipw"], parts["scored"], region=region if region is not None else "All regions",
                          outcome=outcome, inference=inference or default, min_centres=min_centres,
                          sd=parts["sd"], level=parts["level"], seed=seed, bootstrap_reps=bootstrap_reps)


def estimate_aipw(child_outcomes: pd.DataFrame, region: str | None = None, *,
                  centre_outcomes: pd.DataFrame | None = None, outcome: str = "elom_total",
                  inference: Inference | Sequence[Inference] | None = None, min_centres: int | None = None,
                  seed: int = _DEFAULT_SEED, bootstrap_reps: int | None = None) -> EffectResult | EffectResults:
    """Doubly robust AIPW with centre-level propensity scores and an outcome model on the
    baseline outcome (when there is one), age, sex, setting and centre covariates
    (see :func:`aipw_from_frame`)."""
    check_arguments(child_outcomes, centre_outcomes, region=region, outcome=outcome, inference=inference,
                     centre_level=True)
    parts = _weighting_frames(child_outcomes, centre_outcomes, region, outcome)
    return aipw_from_frame(parts["aipw"], parts["scored"], region=region if region is not None else "All regions",
                           outcome=outcome, numeric=parts["numeric"], categorical=parts["categorical"],
                           inference=inference, min_centres=min_centres, sd=parts["sd"], level=parts["level"],
                           seed=seed, bootstrap_reps=bootstrap_reps)


# --------------------------------------------------------------------------- heterogeneity and dose


def _centre_attribute(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None,
                      column: str) -> pd.Series | None:
    """A centre attribute (partner types, exposure) from whichever table has it."""
    for table in (centre_outcomes, child_outcomes):
        if table is not None and column in table.columns:
            values = table[["centre_id", column]].dropna().drop_duplicates("centre_id")
            return values.set_index("centre_id")[column]
    return None


def estimate_heterogeneity(child_outcomes: pd.DataFrame, region: str | None = None, *,
                           centre_outcomes: pd.DataFrame | None = None, outcome: str = "elom_total",
                           inference: Sequence[Inference] = ALL_INFERENCES, min_centres: int | None = None,
                           seed: int = _DEFAULT_SEED, bootstrap_reps: int | None = None) -> EffectResults:
    """The ANCOVA by subgroup, and how the effect changes with sex and months of partnership.

    Subgroups (``subgroup`` column): ``sex=<level>`` and ``setting=<level>`` (children or
    centres of that kind); ``partner_type=<type>`` (partnered centres with that kind of
    partner against every comparison centre); ``exposure_months=<band>`` (partnered centres
    by months of partnership, against every comparison centre). Contrasts:
    ``sex:female_minus_male`` (the partnered × female interaction) and
    ``dose:per_12_months`` (the partnered × months-of-partnership interaction, per 12
    months, among partnered centres with a known first MOU date). Effect sizes use the
    region's denominator. A subgroup below ``min_centres`` in an arm is ``not_estimable``.
    """
    check_arguments(child_outcomes, region=region, outcome=outcome, inference=inference)
    rules = _rules().heterogeneity
    frame = ancova_frame(child_outcomes, region, outcome)
    sd = comparison_baseline_sd(child_outcomes, region, outcome)
    types = _centre_attribute(child_outcomes, centre_outcomes, rules.partner_type_column)
    exposure = _centre_attribute(child_outcomes, centre_outcomes, rules.exposure_column)
    return EffectResults(tuple(_heterogeneity_rows(
        frame, region=region if region is not None else "All regions", outcome=outcome, sd=sd,
        partner_types=types, exposure=exposure, inference=inference, min_centres=min_centres, seed=seed,
        bootstrap_reps=bootstrap_reps)))


def _heterogeneity_rows(frame: pd.DataFrame, *, region: str, outcome: str, sd: float,
                        partner_types: pd.Series | None, exposure: pd.Series | None,
                        inference: Sequence[Inference] = ALL_INFERENCES, min_centres: int | None = None,
                        seed: int = _DEFAULT_SEED, bootstrap_reps: int | None = None) -> list[EffectResult]:
    rules = _rules().heterogeneity
    kwargs = dict(region=region, outcome=outcome, inference=list(inference), min_centres=min_centres,
                  baseline_sd=sd, seed=seed, bootstrap_reps=bootstrap_reps)
    results: list[EffectResult] = []
    for variable in [*rules.child, *rules.centre]:
        values = frame[variable].astype(str)
        for level in sorted(values.unique()):
            results.extend(ancova_from_frame(frame.loc[values == level], subgroup=f"{variable}={level}", **kwargs))
    sex = frame["sex"].astype(str)
    if {"female", "male"} <= set(sex.unique()):
        female = frame.assign(partnered_x_female=frame["partnered"] * (sex == "female"))
        results.extend(ancova_from_frame(female, subgroup="sex:female_minus_male", extra_numeric=["partnered_x_female"],
                                         coef="partnered_x_female", **kwargs))
    if partner_types is not None:
        kinds = partner_types.astype(str).str.split(";").explode()
        kinds = kinds[kinds != ""]
        for kind in sorted(kinds.unique()):
            with_kind = frame["centre_id"].isin(kinds.index[kinds == kind])
            subset = frame.loc[(frame["partnered"] == 0) | with_kind]
            results.extend(ancova_from_frame(subset, subgroup=f"partner_type={kind}", **kwargs))
    if exposure is not None:
        months = frame["centre_id"].map(exposure).astype("float64")
        bounds = list(rules.exposure_bands_months) + [np.inf]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            band = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f"{lo:g}+"
            subset = frame.loc[(frame["partnered"] == 0) | ((months >= lo) & (months < hi))]
            results.extend(ancova_from_frame(subset, subgroup=f"exposure_months={band}", **kwargs))
        known = (frame["partnered"] == 0) | months.notna()
        dose = frame.loc[known].copy()
        unit = rules.dose_unit_months
        m = months[known]
        dose["partnered_x_months"] = dose["partnered"] * ((m - m[dose["partnered"] == 1].mean()).fillna(0.0) / unit)
        results.extend(ancova_from_frame(dose, subgroup=f"dose:per_{unit}_months", extra_numeric=["partnered_x_months"],
                                         coef="partnered_x_months", **kwargs))
    return results


# --------------------------------------------------------------------------- all rows of a region


def _outcome_plan(data: pd.DataFrame, centre_outcomes: pd.DataFrame | None, outcomes: Sequence[str] | None
                  ) -> tuple[pd.DataFrame, list[tuple[str, str]], list[str]]:
    """The outcomes to estimate: those of :func:`_available_outcomes` in ``outcomes`` (all when
    None), the Kling index added to ``data`` as a column. Returns the data, ``(outcome, level)``
    pairs and the child-level outcome names."""
    plan = [(name, level) for name, level in _available_outcomes(data, centre_outcomes)
            if outcomes is None or name in outcomes]
    index_name = _rules().kling_index.name
    if (index_name, "child") in plan:
        data = data.assign(**{index_name: kling_index(data, kling_components(data.columns))})
    return data, plan, [o for o, level in plan if level == "child"]


def _available_outcomes(data: pd.DataFrame, centre_outcomes: pd.DataFrame | None) -> list[tuple[str, str]]:
    """``(outcome, level)`` of every outcome the data can answer: the declared family present in
    the data (in its order), then the Kling index when it has two components or more."""
    available = []
    for spec in OUTCOME_FAMILY:
        table = data if spec.level == "child" else centre_outcomes
        if table is not None and spec.name in table.columns:
            available.append((spec.name, spec.level))
    if len(kling_components(data.columns)) >= 2:  # one component is no index
        available.append((_rules().kling_index.name, "child"))
    return available


def _child_rows(frames: _ChildFrames, data: pd.DataFrame, scored: pd.DataFrame | None, region: str,
                outcome: str, seed: int, reps: int, *, estimators: Sequence[str] = ESTIMATORS,
                national: bool = False) -> list[EffectResult]:
    """Every estimator x inference for one child-level outcome of one region (``data``: its rows)."""
    covariates = frames.covariates
    sd, scale_note = _effect_scale(data, None, outcome)
    frame = frames.ancova(outcome)
    common = dict(region=region, outcome=outcome, inference=_planned_inferences(), seed=seed, bootstrap_reps=reps)
    rows: list[EffectResult] = []
    if "ancova" in estimators or national:
        rows.extend(ancova_from_frame(frame, baseline_sd=sd, extra_categorical=["region"] if national else [],
                                      **common))
    if national:
        return rows
    if "did" in estimators:
        rows.extend(did_from_frame(frames.did(outcome), baseline_sd=sd, **common))
    endline = frames.endline_only(outcome)
    if "regression_adjustment" in estimators:
        rows.extend(regression_adjustment_from_frame(endline, sd=sd, centre_covariates=covariates, note=scale_note,
                                                     **common))
    if "ipw" in estimators:
        rows.extend(ipw_from_frame(endline, scored, sd=sd, **common))
    if "aipw" in estimators:
        aipw, numeric = _aipw_frame(frame, endline, covariates)
        rows.extend(aipw_from_frame(aipw, scored, numeric=numeric, categorical=["sex", "setting", *covariates], sd=sd,
                                    **common))
    return rows


def _centre_rows(centres: pd.DataFrame, region: str, outcome: str, seed: int, reps: int, *,
                 estimators: Sequence[str] = ESTIMATORS, national: bool = False) -> list[EffectResult]:
    """Every estimator x inference for one centre-level outcome of one region (no baseline:
    regression adjustment, IPW and AIPW)."""
    covariates = _centre_covariates(centres)
    frame = centre_outcome_frame(centres, None, outcome)
    common = dict(region=region, outcome=outcome, inference=_planned_centre_inferences(), sd=_centre_sd(frame),
                  level="centre", seed=seed, bootstrap_reps=reps)
    rows: list[EffectResult] = []
    if "regression_adjustment" in estimators or national:
        rows.extend(regression_adjustment_from_frame(frame, centre_covariates=covariates,
                                                     note="Centre-level outcome: one row per centre.",
                                                     extra_categorical=["region"] if national else [], **common))
    if national:
        return rows
    scored = _centre_scores(frame, covariates)
    if "ipw" in estimators:
        rows.extend(ipw_from_frame(frame, scored, **common))
    if "aipw" in estimators:
        rows.extend(aipw_from_frame(frame, scored, numeric=[], categorical=["setting", *covariates], **common))
    return rows


def _finish(rows: list[EffectResult]) -> pd.DataFrame:
    """Warnings, q-values and the primary flag; one DataFrame in ESTIMATE_COLUMNS."""
    if not rows:
        return pd.DataFrame(columns=ESTIMATE_COLUMNS)
    table = pd.DataFrame([{c: getattr(r, c) for c in ESTIMATE_COLUMNS if c != "is_primary"} for r in rows])
    few = _rules().inference.few_centres_warning
    alpha = _rules().inference.alpha
    codes = [[c for c in str(w).split(";") if c] for w in table["warning"]]
    ok = table["status"] == "ok"
    for i in np.flatnonzero(ok & (table["n_centres_partnered"] < few)):
        codes[i].insert(0, "few_partnered_centres")
    for i in np.flatnonzero(ok & (table["n_centres_comparison"] < few)):
        codes[i].insert(1 if "few_partnered_centres" in codes[i] else 0, "few_comparison_centres")
    # CR1 (HC1 at centre level) and CR2 disagree about significance at alpha
    key = ["region", "outcome", "estimator", "subgroup"]
    first = table["inference"].isin(["CR1", "HC1"]) & ok
    second = (table["inference"] == "CR2") & ok
    sig1 = table.loc[first].set_index(key)["p_value"] < alpha
    sig2 = table.loc[second].set_index(key)["p_value"] < alpha
    both = sig1.index.intersection(sig2.index)
    disagree = set(both[(sig1.loc[both] != sig2.loc[both]).to_numpy()])
    for i, k in enumerate(zip(*(table[c] for c in key))):
        if k in disagree and ok.iloc[i]:
            codes[i].append("cr1_cr2_disagree")
    table["warning"] = [";".join(dict.fromkeys(c)) for c in codes]
    # q-values over the declared family, within region x estimator x inference, whole region only
    family = {spec.name for spec in OUTCOME_FAMILY}
    inference_class = table["inference"].replace({"HC1": "CR1"})
    in_family = ok & table["outcome"].isin(family) & (table["subgroup"] == "") & table["p_value"].notna()
    table["q_value_bh"] = np.nan
    table["q_value_sharpened"] = np.nan
    for _, index in table.loc[in_family].groupby([table["region"], table["estimator"], inference_class]).groups.items():
        p = table.loc[index, "p_value"].to_numpy(dtype=float)
        table.loc[index, "q_value_bh"] = bh_qvalues(p)
        table.loc[index, "q_value_sharpened"] = sharpened_qvalues(p)
    primary = _rules().primary
    table["is_primary"] = ((table["outcome"] == primary.outcome) & (table["estimator"] == primary.estimator)
                           & (table["inference"] == primary.inference) & (table["subgroup"] == ""))
    return table[ESTIMATE_COLUMNS]


def _without_fits(results: Iterable[EffectResult]) -> list[EffectResult]:
    """The rows without their fitted models: a table of every region's rows needs only the
    numbers, and each fit holds its design matrix (tens of MB on a national table)."""
    return [replace(r, fit=None) for r in results]


def estimate_region(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None, region: str, *,
                    outcomes: Sequence[str] | None = None, seed: int = _DEFAULT_SEED,
                    bootstrap_reps: int = 999, estimators: Sequence[str] | None = None,
                    heterogeneity: bool = True) -> pd.DataFrame:
    """Every row of ``results/estimates.csv`` for one region.

    For each outcome of the declared family present in the data (child-level ones in
    ``child_outcomes``, ``customer_service_score_pct`` in ``centre_outcomes``) and the
    Kling–Liebman–Katz index (``outcome = "kling_index"``): ANCOVA, DiD, regression
    adjustment, IPW and AIPW under CR1, CR2 and the wild cluster restricted bootstrap;
    centre-level outcomes get regression adjustment, IPW and AIPW under HC1, CR2 and the
    bootstrap. Then the heterogeneity and dose rows of the primary outcome, warning codes,
    BH and sharpened q-values over the family and ``is_primary``. The primary row equals
    :func:`estimate_ancova` (CR1) exactly. The bootstrap and CR2 rows are left out for a model
    with more than ``bootstrap_max_clusters`` / ``cr2_max_clusters`` (rules: 1,000) clusters. ``estimators`` and
    ``heterogeneity`` narrow the work for very large data (the primary row is always there).
    """
    check_arguments(child_outcomes, centre_outcomes, region=region, outcomes=outcomes, estimators=estimators)
    data = child_outcomes.loc[child_outcomes["region"] == region]
    centres = None if centre_outcomes is None else centre_outcomes.loc[centre_outcomes["region"] == region]
    outcomes = _planned_outcomes() if outcomes is None else outcomes
    estimators = _planned_estimators() if estimators is None else estimators
    data, plan, child_family = _outcome_plan(data, centres, outcomes)
    frames = _ChildFrames(data, child_family, baseline_source=child_outcomes, centre_outcomes=centres)
    scored = _scored_centres(data, centres, None)
    rows: list[EffectResult] = []
    for outcome, level in plan:
        if level == "child":
            rows.extend(_without_fits(_child_rows(frames, data, scored, region, outcome, seed, bootstrap_reps,
                                                  estimators={_rules().primary.estimator, *estimators})))
        else:
            rows.extend(_without_fits(_centre_rows(centres, region, outcome, seed, bootstrap_reps,
                                                   estimators=estimators)))
    primary = _rules().primary.outcome
    if heterogeneity and primary in child_family:
        rules = _rules().heterogeneity
        rows.extend(_without_fits(_heterogeneity_rows(
            frames.ancova(primary), region=region, outcome=primary, sd=_effect_scale(data, None, primary)[0],
            partner_types=_centre_attribute(data, centres, rules.partner_type_column),
            exposure=_centre_attribute(data, centres, rules.exposure_column), seed=seed,
            bootstrap_reps=bootstrap_reps, inference=_planned_inferences())))
    return _finish(rows)


def estimate_national(child_outcomes: pd.DataFrame, centre_outcomes: pd.DataFrame | None = None, *,
                      outcomes: Sequence[str] | None = None, seed: int = _DEFAULT_SEED,
                      bootstrap_reps: int = 999) -> pd.DataFrame:
    """The pooled national ANCOVA with province (region) fixed effects, ``region = "National"``.

    Every region's children enter one model with a dummy per region, clustered by centre,
    under CR1, CR2 and the bootstrap (centre-level outcomes: regression adjustment with
    region dummies, HC1/CR2/bootstrap). The coefficient is a precision-weighted average of
    the within-region effects. The Kling index is standardised within each region.
    """
    check_arguments(child_outcomes, centre_outcomes, outcomes=outcomes)
    outcomes = _planned_outcomes() if outcomes is None else outcomes
    data, plan, child_family = _outcome_plan(child_outcomes.dropna(subset=["region"]), centre_outcomes, outcomes)
    frames = _ChildFrames(data, child_family)
    rows: list[EffectResult] = []
    for outcome, level in plan:
        if level == "child":
            rows.extend(_without_fits(_child_rows(frames, data, None, NATIONAL, outcome, seed, bootstrap_reps,
                                                  national=True)))
        else:
            rows.extend(_without_fits(_centre_rows(centre_outcomes.dropna(subset=["region"]), NATIONAL, outcome,
                                                   seed, bootstrap_reps, national=True)))
    note = "Pooled over regions with region fixed effects."
    rows = [replace(r, note=f"{note} {r.note}".strip()) for r in rows]
    return _finish(rows)
