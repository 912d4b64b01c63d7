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
    # Names leave no trace: the log is the log of the same rows without names. (Looking for each
    # name in the log's text also finds short names inside the rules' own words, e.g. "miss".)
    without_names = clean_all(_tables([(*r[:-1], "") for r in rows])).log
    pd.testing.assert_frame_equal(clean.log, without_names)

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


DATE_CHARS = st.sampled_from(list("0123456789-/: Tt.+Z\t٢,") + ["2025", "12", "31", "09", "Feb", "sep", "PM", "am",
                                                                 "+02:00", "+0200", ".000"])
FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
           "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
           "%Y-%m-%dT%H:%M:%S.%f+02:00", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S-0130", "%Y-%m-%d %H:%M:%S+02:00",
           "%b %d, %Y", "%b %d, %Y %I:%M:%S %p"]
# Valid dates in every accepted format with a few characters typed into them, and random compositions.
NEAR_DATE = st.builds(lambda moment, fmt, typed, at: (lambda s: s[:at] + typed + s[at:])(moment.strftime(fmt)),
                      st.datetimes(), st.sampled_from(FORMATS), st.text(max_size=2), st.integers(0, 20))
DATE_TEXT = st.one_of(st.lists(DATE_CHARS, max_size=12).map("".join), NEAR_DATE)


@SETTINGS
@given(st.lists(DATE_TEXT, min_size=1, max_size=30))
def test_date_formats_skipped_by_the_prefilter_could_not_read_the_value(values):
    # _may_read only skips a format that would fail: parsing with it equals trying every format on every value.
    from evalkit.cleaning import _may_read, _read_format
    from evalkit.config import load_rules

    text = pd.Series(values, dtype="str")
    for fmt in load_rules("cleaning")["date_formats"]:
        # (with an offset, pandas reads the instant only when it may convert every value to UTC)
        readable = pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt).notna().to_numpy().copy()
        readable |= _read_format(text, fmt, "Africa/Johannesburg").notna().to_numpy()
        assert not (readable & ~_may_read(text, fmt)).any(), fmt
