"""Property-based tests (hypothesis) of the cleaning functions.

Arbitrary text never raises, cleaning is idempotent, and every input row is
accounted for as kept or dropped.
"""

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.cleaning import clean_all, harmonise_category, harmonise_province, normalise_key, parse_dates

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
CELL = st.one_of(TEXT, st.sampled_from(["", "NA", "N/A", "-99", "-98", "-88", "12", "3.5", "1e400", "GP",
                                        "kzn", "Wes-Kaap", "F", "male", "Baseline", "endline", "2025-02-30",
                                        "14/02/2025", "2025/02/14", "=HYPERLINK(\"x\")", "<script>x</script>"]))
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(TEXT, max_size=20))
def test_text_helpers_never_raise_and_keys_are_idempotent(values):
    series = pd.Series(values, dtype="object")
    harmonise_province(series)
    harmonise_category(series, "sex")
    parse_dates(series)
    once = normalise_key(series)
    assert normalise_key(once).tolist() == once.tolist()


def _tables(rows):
    centres = pd.DataFrame({"centre_id": ["C1", "C2", "C3"], "province": ["GP", "kzn", "Wes-Kaap"],
                            "setting": ["urban", "rural", "peri-urban"]})
    children = pd.DataFrame(rows, columns=["child_id", "centre_id", "wave", "assessment_date", "date_of_birth",
                                           "sex", "elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell",
                                           "height_cm", "child_name"])
    partnerships = pd.DataFrame({"partnership_id": ["P1"], "centre_id": ["C1"], "mou_signed_date": ["2025-01-01"],
                                 "status": ["active"]})
    survey = pd.DataFrame({"response_id": ["R1"], "centre_id": ["C2"], "sat_overall": ["5"]})
    return {"centres": centres, "partnerships": partnerships, "child_assessments": children.astype(str),
            "parent_survey": survey}


ROW = st.tuples(st.sampled_from(["K1", "K2", "K3", "", "K 1"]), st.sampled_from(["C1", "C2", "C9", ""]),
                CELL, CELL, CELL, CELL, CELL, CELL, CELL, CELL, CELL, CELL, TEXT)


@SETTINGS
@given(st.lists(ROW, min_size=1, max_size=25))
def test_clean_all_accounts_for_every_row_and_is_idempotent(rows):
    raw = _tables(rows)
    clean = clean_all(raw)
    for table, counts in clean.row_counts.items():
        assert counts["rows_in"] == counts["rows_kept"] + counts["rows_dropped"], table
        assert counts["rows_in"] == len(raw[table])
    children = clean.tables["child_assessments"]
    assert "child_name" not in children.columns
    assert not children.duplicated(["child_id", "wave"]).any()
    names = {r[-1] for r in rows if len(r[-1]) >= 4}
    log_text = clean.log.to_csv()
    assert not any(name in log_text for name in names if name not in {"", "nan"} and
                   not any(name in str(v) for r in rows for v in r[:-1]))

    # Cleaning the cleaned values again changes nothing.
    again_raw = dict(raw)
    text = children.copy()
    for column in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[column]):
            text[column] = text[column].dt.strftime("%Y-%m-%d")
    again_raw["child_assessments"] = text.astype("object").where(text.notna(), "").astype(str)
    again = clean_all(again_raw).tables["child_assessments"]
    pd.testing.assert_frame_equal(again.reset_index(drop=True), children.reset_index(drop=True),
                                  check_dtype=False)
