"""The contract's treatment rule, case by case."""

import pandas as pd
import pytest

from evalkit.treatment import derive_treatment

T = pd.Timestamp


def _data():
    centres = pd.DataFrame({"centre_id": ["A", "B", "C", "D", "E", "F"]})
    partnerships = pd.DataFrame({
        "partnership_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
        "centre_id": ["A", "A", "B", "C", "D", "F"],
        "partner_type": ["cbo", "wellness", "cbo", "private", "municipality", "cbo"],
        "mou_signed_date": [T("2025-03-01"), T("2025-01-15"), T("2025-12-01"), T("2025-06-01"),
                            T("2025-10-10"), T("2025-01-01")],
        "status": ["active", "active", "active", "ended", "active", "active"],
    })
    children = pd.DataFrame({
        "centre_id": ["A", "A", "B", "C", "D", "D", "E", "F"],
        "wave": ["endline", "endline", "endline", "endline", "endline", "endline", "endline", "baseline"],
        "assessment_date": [T("2025-10-20"), T("2025-10-15"), T("2025-10-15"), T("2025-10-15"),
                            T("2025-10-10"), T("2025-10-30"), T("2025-10-15"), T("2025-02-01")],
    })
    return centres, partnerships, children


def test_treatment_rule():
    frame = derive_treatment(*_data()).set_index("centre_id")
    # A: two MOUs before its first endline (15 Oct); the earliest counts for exposure.
    assert frame.loc["A", "is_partnered"] == True  # noqa: E712
    assert frame.loc["A", "first_mou_date"] == T("2025-01-15")
    assert frame.loc["A", "exposure_months"] == pytest.approx((T("2025-10-15") - T("2025-01-15")).days / 30.4375)
    assert frame.loc["A", "partner_types"] == "cbo;wellness"
    # B: signed after endline -> comparison. C: ended -> comparison. E: no MOU -> comparison.
    for centre in ("B", "C", "E"):
        assert frame.loc[centre, "is_partnered"] == False  # noqa: E712
    # D: signed on the first endline date itself -> partnered ("on or before").
    assert frame.loc["D", "is_partnered"] == True  # noqa: E712
    assert frame.loc["D", "exposure_months"] == 0
    # F: no endline assessment -> the rule cannot be applied.
    assert pd.isna(frame.loc["F", "is_partnered"])
