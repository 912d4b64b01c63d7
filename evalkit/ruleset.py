"""Typed views of the rules in force: the estimation rules and the study-wide defaults.

``load_rules("estimation")`` is a dictionary read from YAML; the stages read it through
:func:`estimation_rules` and :func:`study_rules` instead, which give frozen dataclasses with
named, typed fields (lists become tuples). A key missing from the YAML, or one the dataclass
does not know, is an error when the view is built, so a typo in a rules file or a plan cannot
pass silently. The views follow the active analysis plan (:mod:`evalkit.plan`): each is rebuilt
when the rules it was built from change.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from .config import load_rules

__all__ = [
    "Balance",
    "BalanceVariable",
    "Covariates",
    "EstimationRules",
    "Heterogeneity",
    "InferenceRules",
    "KlingIndex",
    "Power",
    "Primary",
    "Propensity",
    "ReportNames",
    "SmallCells",
    "StudyRules",
    "estimation_rules",
    "study_rules",
]


@dataclass(frozen=True)
class Primary:
    """The primary row of every region: outcome, estimator, inference."""

    outcome: str
    estimator: str
    inference: str


@dataclass(frozen=True)
class KlingIndex:
    name: str
    label: str
    components: tuple[str, ...]
    min_share_of_components: float


@dataclass(frozen=True)
class Covariates:
    ancova_numeric: tuple[str, ...]      # baseline first
    ancova_categorical: tuple[str, ...]
    child_numeric: tuple[str, ...]
    child_categorical: tuple[str, ...]
    centre_categorical: tuple[str, ...]
    propensity_categorical: tuple[str, ...]
    propensity_numeric: tuple[str, ...]


@dataclass(frozen=True)
class Propensity:
    trim: float
    min_effective_comparison_centres: float


@dataclass(frozen=True)
class InferenceRules:
    alpha: float
    few_centres_warning: int
    bootstrap_reps: int
    webb_max_clusters: int
    bootstrap_max_clusters: int
    cr2_max_clusters: int


@dataclass(frozen=True)
class Heterogeneity:
    child: tuple[str, ...]
    centre: tuple[str, ...]
    partner_type_column: str
    exposure_column: str
    exposure_bands_months: tuple[float, ...]
    dose_unit_months: float


@dataclass(frozen=True)
class BalanceVariable:
    name: str
    label: str


@dataclass(frozen=True)
class Balance:
    child: tuple[BalanceVariable, ...]
    centre_categorical: tuple[BalanceVariable, ...]
    centre_numeric: tuple[BalanceVariable, ...]
    joint_test_child: tuple[str, ...]
    adjust_child: tuple[str, ...]
    adjust_centre: tuple[str, ...]
    smd_good: float
    smd_fails: float
    variance_ratio_range: tuple[float, ...]


@dataclass(frozen=True)
class Power:
    alpha: float
    target_power: float
    effect_size_sd: float


@dataclass(frozen=True)
class Thresholds:
    min_centres_per_arm: int


@dataclass(frozen=True)
class EstimationRules:
    """``rules/estimation.yml`` with the active plan in place."""

    primary: Primary
    outcomes: Any                 # 'all' or a tuple of outcome names
    estimators: tuple[str, ...]
    inferences: tuple[str, ...]
    thresholds: Thresholds
    kling_index: KlingIndex
    covariates: Covariates
    propensity: Propensity
    inference: InferenceRules
    heterogeneity: Heterogeneity
    balance: Balance
    power: Power


@dataclass(frozen=True)
class ReportNames:
    title: str
    programme: str
    funder: str
    decimal_mark: str


@dataclass(frozen=True)
class SmallCells:
    children: int
    centres: int


@dataclass(frozen=True)
class StudyRules:
    """``rules/study.yml`` with the active plan in place."""

    level: str
    regions: Any                  # 'all' or a tuple of region names
    report: ReportNames
    small_cells: SmallCells


def _build(cls: type, value: Any, where: str) -> Any:
    """``value`` (parsed YAML) as ``cls``: dataclasses field by field, lists as tuples."""
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise ValueError(f"rules {where}: expected a mapping, got {value!r}")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown, missing = set(value) - set(names), set(names) - set(value)
        if unknown or missing:
            raise ValueError(f"rules {where}: unknown key(s) {sorted(unknown)}, missing key(s) {sorted(missing)}")
        return cls(**{name: _build(hints[name], value[name], f"{where}.{name}") for name in names})
    origin = typing.get_origin(cls)
    if origin is tuple:
        (item, *_rest) = typing.get_args(cls)
        if not isinstance(value, list):
            raise ValueError(f"rules {where}: expected a list, got {value!r}")
        return tuple(_build(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if cls is Any:
        return tuple(value) if isinstance(value, list) else value
    return value


_VIEWS: dict[str, tuple[dict, Any]] = {}


def _view(name: str, cls: type) -> Any:
    raw = load_rules(name)
    kept = _VIEWS.get(name)
    if kept is None or kept[0] is not raw:  # the rules changed (another plan): build again
        kept = (raw, _build(cls, raw, name))
        _VIEWS[name] = kept
    return kept[1]


def estimation_rules() -> EstimationRules:
    """The estimation rules in force (``rules/estimation.yml`` and the active plan)."""
    return _view("estimation", EstimationRules)


def study_rules() -> StudyRules:
    """The study-wide defaults in force (``rules/study.yml`` and the active plan)."""
    return _view("study", StudyRules)
