"""How centres are grouped in every table: the region, and the treatment arm.

A module of its own, below the stages that group by them (:mod:`evalkit.indicators`,
:mod:`evalkit.satisfaction`, :mod:`evalkit.quality`, :mod:`evalkit.scorecard`), so
that none of them has to import another for these two definitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ARM_LABELS", "arm_label", "region_of_centres"]

#: How ``is_partnered`` is written in grouped tables; a missing status is "unknown".
ARM_LABELS = {True: "partnered", False: "comparison"}
_UNKNOWN_ARM = "unknown"


def region_of_centres(centres: pd.DataFrame, level: str = "province") -> pd.Series:
    """The region of each centre at ``level`` ('province' or 'district')."""
    if level not in ("province", "district"):
        raise ValueError(f"unknown level {level!r}: use 'province' or 'district'")
    return centres[level].rename("region")


def arm_label(is_partnered: pd.Series) -> pd.Series:
    """'partnered' / 'comparison' / 'unknown' (missing treatment status)."""
    values = is_partnered.astype("boolean")
    out = np.where(values.fillna(False).to_numpy(dtype=bool), ARM_LABELS[True], ARM_LABELS[False])
    out = np.where(values.isna().to_numpy(), _UNKNOWN_ARM, out)
    return pd.Series(out, index=is_partnered.index, dtype="object", name="arm")
