"""Many outcomes, one conclusion: false-discovery-rate q-values and a summary index.

* :func:`bh_qvalues`: Benjamini–Hochberg (1995) adjusted p-values (step-up), as R's
  ``p.adjust(method = "BH")``.
* :func:`sharpened_qvalues`: Anderson's (2008) sharpened q-values, the two-stage
  Benjamini–Krieger–Yekutieli (2006) procedure run over q = 1.000, 0.999, …, 0.001, exactly
  as his published Stata code (``fdr_sharpened_qvalues.do``) does.
* :func:`kling_index`: the Kling–Liebman–Katz (2007) summary index: each component
  sign-aligned so that higher is better, standardised on the comparison group (within
  region and wave), averaged over the components a child has, and re-standardised on the
  comparison group. It is then estimated like any outcome.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .ruleset import estimation_rules
from .indicators import OUTCOME_FAMILY

__all__ = ["bh_qvalues", "sharpened_qvalues", "kling_index", "kling_components"]


def _ranked(p_values: Sequence[float] | np.ndarray, adjust) -> np.ndarray:
    """Apply ``adjust`` (sorted finite p-values → their q-values) and put the q-values back in
    the input's order; missing p-values stay missing and are not counted."""
    p = np.asarray(p_values, dtype="float64")
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    values = p[ok]
    order = np.argsort(values, kind="stable")
    q = np.empty(values.size)
    q[order] = adjust(values[order])
    out[ok] = q
    return out


def bh_qvalues(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values; missing p-values stay missing and are not counted."""

    def adjust(sorted_p: np.ndarray) -> np.ndarray:
        m = sorted_p.size
        ranked = sorted_p * m / np.arange(1, m + 1)
        return np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)

    return _ranked(p_values, adjust)


def sharpened_qvalues(p_values: Sequence[float] | np.ndarray, *, step: float = 0.001) -> np.ndarray:
    """Anderson's (2008) sharpened two-stage q-values (Benjamini, Krieger and Yekutieli 2006).

    For every q on the grid 1, 1−step, …, step: the first stage runs BH at q' = q/(1+q),
    rejecting r₁ hypotheses; the second runs BH at q'·M/(M−r₁). A hypothesis's q-value is
    the smallest q at which the second stage rejects it (1 when it never is).
    """
    n_steps = int(round(1 / step))
    grid = np.arange(n_steps, 0, -1) * step  # 1.000 … 0.001, one row per q

    def adjust(sorted_p: np.ndarray) -> np.ndarray:
        m = sorted_p.size
        ranks = np.arange(1, m + 1)

        def n_rejected(level: np.ndarray) -> np.ndarray:  # BH step-up at each level of the grid
            meets = sorted_p[None, :] <= level[:, None] * ranks[None, :] / m
            return np.where(meets.any(axis=1), m - np.argmax(meets[:, ::-1], axis=1), 0)

        q1 = grid / (1 + grid)
        rejected1 = n_rejected(q1)
        with np.errstate(divide="ignore"):
            q2 = np.where(rejected1 < m, q1 * m / np.maximum(m - rejected1, 1), np.inf)
        is_rejected = ranks[None, :] <= n_rejected(q2)[:, None]  # grid × hypotheses
        # the smallest q on the grid at which each hypothesis is rejected
        last = np.where(is_rejected.any(axis=0), n_steps - 1 - np.argmax(is_rejected[::-1], axis=0), -1)
        return np.round(np.where(last >= 0, grid[np.clip(last, 0, None)], 1.0), 3)

    return _ranked(p_values, adjust)


def kling_components(columns: Sequence[str]) -> list[tuple[str, bool]]:
    """The declared index components present in ``columns``, with their direction."""
    direction = {spec.name: spec.is_higher_better for spec in OUTCOME_FAMILY}
    wanted = estimation_rules().kling_index.components
    return [(name, direction.get(name, True)) for name in wanted if name in columns]


def kling_index(child_outcomes: pd.DataFrame, components: Sequence[tuple[str, bool]] | None = None, *,
                by: Sequence[str] = ("region", "wave"), min_share: float | None = None) -> pd.Series:
    """Kling–Liebman–Katz summary index for every child row (NaN where too few components).

    Parameters
    ----------
    child_outcomes
        Child rows with ``is_partnered`` and the component columns.
    components
        ``(column, higher_is_better)`` pairs; default: the declared index components present.
    by
        Standardisation groups (the comparison group's mean and SD are taken within each).
    min_share
        A child needs at least this share of the components (default from the rules, ½).
    """
    rules = estimation_rules().kling_index
    min_share = rules.min_share_of_components if min_share is None else min_share
    components = list(components) if components is not None else kling_components(child_outcomes.columns)
    if not components:
        return pd.Series(np.nan, index=child_outcomes.index, name=rules.name)
    keys = [child_outcomes[c].astype("string").fillna("") for c in by]
    group = pd.Series(pd.MultiIndex.from_arrays(keys).factorize()[0], index=child_outcomes.index)
    comparison = (child_outcomes["is_partnered"] == False).fillna(False).to_numpy(dtype=bool)  # noqa: E712

    def standardise(values: pd.Series) -> pd.Series:
        ref = values.where(comparison)
        mean = ref.groupby(group).transform("mean")
        sd = ref.groupby(group).transform("std")
        return (values - mean) / sd.where(sd > 0)

    z = pd.concat([standardise(child_outcomes[c].astype("float64")) * (1.0 if up else -1.0)
                   for c, up in components], axis=1)
    enough = z.notna().sum(axis=1) >= min_share * len(components)
    index = z.mean(axis=1).where(enough)
    return standardise(index).rename(rules.name)
