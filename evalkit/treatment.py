"""Who counts as partnered: the data contract's treatment rule, in one place.

A centre is *partnered* when it has at least one partnership, not ended, whose
``mou_signed_date`` is on or before the first endline assessment date in that
centre. Centres with no partnership, or only partnerships signed after their
endline, are the comparison group. Months of exposure = endline date − first MOU.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import DAYS_PER_MONTH

__all__ = ["derive_treatment"]


def derive_treatment(centres: pd.DataFrame, partnerships: pd.DataFrame,
                     child_assessments: pd.DataFrame) -> pd.DataFrame:
    """Return one row per centre with its treatment status.

    Columns: ``centre_id``, ``endline_date`` (first endline assessment in the
    centre), ``first_mou_date`` (earliest qualifying MOU), ``is_partnered``
    (nullable boolean; missing when the centre has no endline assessment, since
    the contract's rule needs that date), ``exposure_months``,
    ``n_partnerships_qualifying`` and ``partner_types`` (sorted, ``;``-joined).
    """
    endline = (child_assessments.loc[child_assessments["wave"] == "endline"]
               .groupby("centre_id")["assessment_date"].min().rename("endline_date"))
    frame = centres[["centre_id"]].merge(endline, left_on="centre_id", right_index=True, how="left")

    mou = partnerships.merge(frame, on="centre_id", how="inner")
    qualifies = (
        (mou["status"] != "ended")
        & mou["status"].notna()
        & mou["mou_signed_date"].notna()
        & mou["endline_date"].notna()
        & (mou["mou_signed_date"] <= mou["endline_date"])
    )
    qualifying = mou.loc[qualifies.fillna(False).to_numpy(dtype=bool)]
    summary = qualifying.groupby("centre_id").agg(
        first_mou_date=("mou_signed_date", "min"),
        n_partnerships_qualifying=("partnership_id", "size"),
    )
    types = _partner_types(qualifying).reindex(summary.index).fillna("")
    summary["partner_types"] = types.astype(str) if len(types) else types  # text, as a per-group join gives
    frame = frame.merge(summary, left_on="centre_id", right_index=True, how="left")
    frame["n_partnerships_qualifying"] = frame["n_partnerships_qualifying"].fillna(0).astype(int)
    has_endline = frame["endline_date"].notna()
    partnered = pd.array(np.where(has_endline, frame["n_partnerships_qualifying"] > 0, False),
                         dtype="boolean")
    partnered[~has_endline.to_numpy()] = pd.NA
    frame["is_partnered"] = partnered
    frame["exposure_months"] = (frame["endline_date"] - frame["first_mou_date"]).dt.days / DAYS_PER_MONTH
    frame["partner_types"] = frame["partner_types"].fillna("")
    return frame.reset_index(drop=True)


def _partner_types(qualifying: pd.DataFrame) -> pd.Series:
    """Each centre's distinct partner types, sorted and ``;``-joined (by centre_id).

    One sort and one join per centre instead of a Python function per group.
    """
    pairs = pd.DataFrame({"centre_id": qualifying["centre_id"].to_numpy(),
                          "partner_type": qualifying["partner_type"].astype("object").to_numpy()})
    pairs = pairs.loc[pairs["partner_type"].notna()]
    pairs["partner_type"] = pairs["partner_type"].astype(str).astype("object")
    pairs = pairs.drop_duplicates().sort_values(["centre_id", "partner_type"], kind="stable")
    return pairs.groupby("centre_id", sort=False)["partner_type"].agg(";".join)
