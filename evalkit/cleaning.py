"""Clean the four contract tables, logging every change, flag and dropped row.

Each ``clean_<table>`` function is ``f(frame, log, rules) -> frame``: it takes the
text table as read, returns typed canonical columns, and appends one row per
change to the :class:`CleaningLog`. The rules (missing codes, spellings, date
formats, unit slips, ranges) are data in ``evalkit/rules/cleaning.yml``.

Personal data columns (``child_name``, ``respondent_phone``) are dropped here,
before anything is logged, and never reach a processed table or a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .config import ELOM_DOMAINS, load_rules

__all__ = [
    "LOG_COLUMNS",
    "PERSONAL_COLUMNS",
    "CleaningLog",
    "CleanData",
    "normalise_key",
    "harmonise_province",
    "harmonise_category",
    "parse_dates",
    "clean_centres",
    "clean_partnerships",
    "clean_child_assessments",
    "clean_parent_survey",
    "clean_all",
]

LOG_COLUMNS = ["table", "record_id", "row", "column", "old_value", "new_value", "rule", "action"]

#: Personal data declared by the contract: dropped at ingestion.
PERSONAL_COLUMNS = {"child_assessments": ("child_name",), "parent_survey": ("respondent_phone",)}

_RECORD_KEYS = {
    "centres": ("centre_id",),
    "partnerships": ("partnership_id",),
    "child_assessments": ("child_id", "wave"),
    "parent_survey": ("response_id",),
}

SATISFACTION_ITEMS = (
    "sat_communication",
    "sat_safety",
    "sat_learning",
    "sat_staff_respect",
    "sat_responsiveness",
    "sat_overall",
)


class CleaningLog:
    """Accumulates log rows; every rule adds a whole block at once (vectorised)."""

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []

    def add(
        self,
        table: str,
        frame: pd.DataFrame,
        mask: pd.Series | np.ndarray,
        *,
        column: str,
        old: pd.Series | str | None,
        new: pd.Series | str | None,
        rule: str,
        action: str,
    ) -> int:
        """Log the rows of ``frame`` selected by ``mask``; return how many."""
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            return 0
        rows = frame.loc[mask]
        part = pd.DataFrame(
            {
                "table": table,
                "record_id": _record_id(table, rows),
                "row": rows.index.to_numpy() + 1,
                "column": column,
                "old_value": _as_text(old, mask, n),
                "new_value": _as_text(new, mask, n),
                "rule": rule,
                "action": action,
            }
        )
        self._parts.append(part)
        return n

    def to_frame(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame({c: pd.Series(dtype="str") for c in LOG_COLUMNS})
        frame = pd.concat(self._parts, ignore_index=True)
        return frame[LOG_COLUMNS]


def _as_text(value: Any, mask: np.ndarray, n: int) -> Any:
    if value is None:
        return ""
    if isinstance(value, pd.Series):
        selected = value.loc[mask] if len(value) == len(mask) else value
        out = selected.astype("object").where(selected.notna(), "")
        return out.map(_format_value).to_numpy()
    return value


def _format_value(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _record_id(table: str, rows: pd.DataFrame) -> np.ndarray:
    keys = [k for k in _RECORD_KEYS[table] if k in rows.columns]
    if not keys:
        return np.full(len(rows), "", dtype=object)
    text = rows[keys[0]].astype(str)
    for key in keys[1:]:
        text = text + "/" + rows[key].astype(str)
    return text.to_numpy()


@dataclass(frozen=True)
class CleanData:
    """Clean, typed tables plus the log and a row account per table."""

    tables: dict[str, pd.DataFrame]
    log: pd.DataFrame
    row_counts: dict[str, dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- keys


def normalise_key(values: pd.Series) -> pd.Series:
    """Fold case, punctuation and spacing so spelling variants compare equal."""
    text = values.astype(str).str.lower().str.strip()
    text = text.str.replace(r"[\-_./,]+", " ", regex=True)
    text = text.str.replace(r"\s+", " ", regex=True).str.strip()
    return text


def _lookup(variants: dict[str, list[str]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, spellings in variants.items():
        for spelling in [canonical, *spellings]:
            key = normalise_key(pd.Series([str(spelling)])).iloc[0]
            table[key] = str(canonical)
    return table


def harmonise_province(values: pd.Series) -> pd.Series:
    """Map every accepted spelling to the canonical province name; unknown → NA."""
    provinces = load_rules("provinces")["provinces"]
    lookup = _lookup({p["name"]: [p["code"], *p["variants"]] for p in provinces})
    key = normalise_key(values)
    mapped = key.map(lookup)
    # "Gauteng Province" → "gauteng"; the full key is tried first ("Northern Province").
    mapped = mapped.fillna(key.str.replace(r"\s*province$", "", regex=True).map(lookup))
    return mapped.astype("object").where(mapped.notna(), other=pd.NA)


def harmonise_category(values: pd.Series, variable: str) -> pd.Series:
    """Map spelling variants of a categorical variable to canonical values; unknown → NA."""
    variants = load_rules("cleaning")["categories"][variable]
    lookup = _lookup(variants)
    mapped = normalise_key(values).map(lookup)
    return mapped.astype("object").where(mapped.notna(), other=pd.NA)


def parse_dates(values: pd.Series, formats: list[str] | None = None) -> pd.Series:
    """Parse mixed day-first date formats; every value tries the formats in order."""
    formats = formats or load_rules("cleaning")["date_formats"]
    text = values.astype(str).str.strip()
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in formats:
        todo = parsed.isna() & (text != "")
        if not todo.any():
            break
        parsed.loc[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    return parsed


# ------------------------------------------------------------------ generic steps


def _strip_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda col: col.astype(str).str.strip())


def _drop_personal(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    personal = [c for c in PERSONAL_COLUMNS.get(table, ()) if c in frame.columns]
    return frame.drop(columns=personal)


def _drop_exact_duplicates(frame: pd.DataFrame, table: str, log: CleaningLog) -> pd.DataFrame:
    # Duplicates are judged on the whole raw row, personal columns included,
    # but only the record id is logged.
    dup = frame.duplicated(keep="first")
    log.add(table, frame, dup, column="", old=None, new=None, rule="exact_duplicate_row", action="dropped")
    return frame.loc[~dup]


def _drop_blank_ids(frame: pd.DataFrame, table: str, id_column: str, log: CleaningLog) -> pd.DataFrame:
    blank = frame[id_column].astype(str).str.strip() == ""
    log.add(table, frame, blank, column=id_column, old=None, new=None, rule="missing_record_id", action="dropped")
    return frame.loc[~blank]


def _to_numeric(frame: pd.DataFrame, table: str, column: str, log: CleaningLog, rules: dict) -> pd.Series:
    """Text → float, turning missing codes into NA with the reason logged."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    text = frame[column].astype(str).str.strip()
    numbers = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
    result = numbers.astype("float64")
    codes: dict[str, str] = {}
    for key, reason in rules["missing_codes"].items():
        # Codes are matched without regard to case, so "NA" and "na" are one code.
        if str(key).upper() not in {c.upper() for c in codes}:
            codes[str(key)] = str(reason)
    for code, reason in codes.items():
        if code == "":
            continue
        try:
            code_number = float(code)
        except ValueError:
            hit = text.str.upper() == code.upper()
        else:
            hit = numbers == code_number
        hit = hit.fillna(False).to_numpy(dtype=bool)
        if hit.any():
            log.add(table, frame, hit, column=column, old=text, new="",
                    rule=f"missing_code {code} ({reason})", action="changed")
            result[hit] = np.nan
    bad_text = numbers.isna().to_numpy() & (text != "").to_numpy()
    bad_text &= ~text.str.upper().isin([c.upper() for c in codes]).to_numpy()
    log.add(table, frame, bad_text, column=column, old=text, new="",
            rule="not_a_number", action="flagged")
    return result


def _apply_unit_slips(frame: pd.DataFrame, table: str, column: str, values: pd.Series,
                      log: CleaningLog, rules: dict) -> pd.Series:
    rule = rules["unit_slips"].get(column)
    if rule is None:
        return values
    low, high = rule["plausible"]
    corrected = values / rule["divide_by"]
    slip = (values > rule["above"]) & corrected.between(low, high)
    slip = slip.fillna(False).to_numpy(dtype=bool)
    log.add(table, frame, slip, column=column, old=values, new=corrected,
            rule=f"unit_slip: value above {rule['above']} divided by {rule['divide_by']}",
            action="changed")
    values = values.copy()
    values[slip] = corrected[slip]
    return values


def _apply_range(frame: pd.DataFrame, table: str, column: str, values: pd.Series,
                 log: CleaningLog, rules: dict) -> pd.Series:
    bounds = rules["ranges"].get(column)
    if bounds is None:
        return values
    low, high = bounds
    out = (values.notna() & ~values.between(low, high)).to_numpy(dtype=bool)
    log.add(table, frame, out, column=column, old=values, new="",
            rule=f"out_of_range [{low}, {high}]: set missing", action="changed")
    values = values.copy()
    values[out] = np.nan
    return values


def _numeric_columns(frame, table, columns, log, rules) -> pd.DataFrame:
    result = {}
    for column in columns:
        values = _to_numeric(frame, table, column, log, rules)
        values = _apply_unit_slips(frame, table, column, values, log, rules)
        result[column] = _apply_range(frame, table, column, values, log, rules)
    return pd.DataFrame(result, index=frame.index)


def _category(frame, table, column, log, *, variable: str | None = None) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="object")
    text = frame[column].astype(str)
    mapped = harmonise_category(text, variable or column)
    changed = mapped.notna() & (mapped.astype(str) != text)
    log.add(table, frame, changed, column=column, old=text, new=mapped,
            rule="harmonise_spelling", action="changed")
    unknown = mapped.isna() & (text.str.strip() != "")
    log.add(table, frame, unknown, column=column, old=text, new="",
            rule="unknown_category: set missing", action="flagged")
    return mapped


def _dates(frame, table, column, log, rules) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    text = frame[column].astype(str).str.strip()
    parsed = parse_dates(text, rules["date_formats"])
    reformatted = parsed.notna() & (parsed.dt.strftime("%Y-%m-%d") != text)
    # A date written in another accepted format is a change of form, not of meaning;
    # it is logged so that the audit trail is complete.
    log.add(table, frame, reformatted, column=column, old=text, new=parsed,
            rule="date_format_to_iso", action="changed")
    bad = parsed.isna() & (text != "") & ~text.str.upper().isin(["NA", "N/A"])
    log.add(table, frame, bad, column=column, old=text, new="",
            rule="unparseable_date: set missing", action="flagged")
    return parsed


def _drop_unknown_centres(frame, table, known: pd.Index, log: CleaningLog) -> pd.DataFrame:
    unknown = ~frame["centre_id"].isin(known)
    log.add(table, frame, unknown, column="centre_id", old=frame["centre_id"], new="",
            rule="centre_id_not_in_centres", action="dropped")
    return frame.loc[~unknown]


# ---------------------------------------------------------------------- tables


def clean_centres(raw: pd.DataFrame, log: CleaningLog, rules: dict | None = None) -> pd.DataFrame:
    """Clean the centres table: one row per centre with canonical province and categories."""
    rules = rules or load_rules("cleaning")
    table = "centres"
    frame = _strip_text(raw)
    frame = _drop_exact_duplicates(frame, table, log)
    frame = _drop_blank_ids(frame, table, "centre_id", log)
    dup_id = frame["centre_id"].duplicated(keep="first")
    log.add(table, frame, dup_id, column="centre_id", old=None, new=None,
            rule="duplicate_centre_id: kept the first row", action="dropped")
    frame = frame.loc[~dup_id]

    province = harmonise_province(frame["province"])
    changed = province.notna() & (province.astype(str) != frame["province"])
    log.add(table, frame, changed, column="province", old=frame["province"], new=province,
            rule="harmonise_province", action="changed")
    unknown = province.isna()
    log.add(table, frame, unknown, column="province", old=frame["province"], new="",
            rule="unknown_province: never guessed, centre excluded", action="dropped")

    out = pd.DataFrame(index=frame.index)
    out["centre_id"] = frame["centre_id"]
    out["centre_name"] = frame.get("centre_name", pd.Series("", index=frame.index))
    out["province"] = province
    out["district"] = frame.get("district", pd.Series("", index=frame.index)).replace("", pd.NA)
    for column in ("setting", "registration_status", "fee_band", "feedback_channel"):
        out[column] = _category(frame, table, column, log)
    numbers = _numeric_columns(frame, table,
                               ["enrolment", "practitioners", "practitioners_trained", "parent_events"],
                               log, rules)
    out = out.join(numbers)
    over = (numbers["practitioners_trained"] > numbers["practitioners"]).to_numpy(dtype=bool)
    log.add(table, frame, over, column="practitioners_trained", old=numbers["practitioners_trained"],
            new=None, rule="trained_exceeds_practitioners", action="flagged")
    return out.loc[~unknown.to_numpy()]


def clean_partnerships(raw: pd.DataFrame, log: CleaningLog, centre_ids: pd.Index,
                       rules: dict | None = None) -> pd.DataFrame:
    """Clean the partnerships (MOUs) table."""
    rules = rules or load_rules("cleaning")
    table = "partnerships"
    frame = _strip_text(raw)
    frame = _drop_exact_duplicates(frame, table, log)
    frame = _drop_blank_ids(frame, table, "partnership_id", log)
    dup_id = frame["partnership_id"].duplicated(keep="first")
    log.add(table, frame, dup_id, column="partnership_id", old=None, new=None,
            rule="duplicate_partnership_id: kept the first row", action="dropped")
    frame = frame.loc[~dup_id]
    frame = _drop_unknown_centres(frame, table, centre_ids, log)

    out = pd.DataFrame(index=frame.index)
    out["partnership_id"] = frame["partnership_id"]
    out["centre_id"] = frame["centre_id"]
    out["partner_name"] = frame.get("partner_name", pd.Series("", index=frame.index))
    out["partner_type"] = _category(frame, table, "partner_type", log)
    out["mou_signed_date"] = _dates(frame, table, "mou_signed_date", log, rules)
    out["status"] = _category(frame, table, "status", log)
    no_date = out["mou_signed_date"].isna().to_numpy()
    log.add(table, frame, no_date, column="mou_signed_date", old=None, new=None,
            rule="mou_date_missing: cannot count towards treatment", action="flagged")
    return out


def clean_child_assessments(raw: pd.DataFrame, log: CleaningLog, centre_ids: pd.Index,
                            rules: dict | None = None) -> pd.DataFrame:
    """Clean child assessments: one row per child per wave, personal data removed."""
    rules = rules or load_rules("cleaning")
    table = "child_assessments"
    frame = _strip_text(raw)
    frame = _drop_exact_duplicates(frame, table, log)
    frame = _drop_personal(frame, table)
    frame = _drop_blank_ids(frame, table, "child_id", log)
    frame = _drop_unknown_centres(frame, table, centre_ids, log)

    wave = _category(frame, table, "wave", log)
    no_wave = wave.isna().to_numpy()
    log.add(table, frame, no_wave, column="wave", old=frame["wave"], new="",
            rule="unknown_wave: row cannot be placed", action="dropped")
    # Later log rows name the record by its canonical wave.
    frame = frame.assign(wave=wave.astype("object").where(wave.notna(), frame["wave"]))

    out = pd.DataFrame(index=frame.index)
    out["child_id"] = frame["child_id"]
    out["centre_id"] = frame["centre_id"]
    out["wave"] = wave
    out["assessment_date"] = _dates(frame, table, "assessment_date", log, rules)
    out["date_of_birth"] = _dates(frame, table, "date_of_birth", log, rules)
    out["sex"] = _category(frame, table, "sex", log)
    numeric = [*ELOM_DOMAINS, "height_cm", "weight_kg", "days_attended", "days_possible"]
    out = out.join(_numeric_columns(frame, table, numeric, log, rules))
    out["assessor_id"] = frame.get("assessor_id", pd.Series("", index=frame.index)).replace("", pd.NA)

    born_after = (out["date_of_birth"] > out["assessment_date"]).to_numpy(dtype=bool)
    log.add(table, out, born_after, column="date_of_birth", old=out["date_of_birth"], new="",
            rule="birth_after_assessment: date of birth set missing", action="flagged")
    out.loc[born_after, "date_of_birth"] = pd.NaT
    over = (out["days_attended"] > out["days_possible"]).to_numpy(dtype=bool)
    log.add(table, out, over, column="days_attended", old=out["days_attended"], new="",
            rule="attended_exceeds_possible: attendance set missing", action="flagged")
    out.loc[over, ["days_attended", "days_possible"]] = np.nan

    out = out.loc[~no_wave]
    return _resolve_conflicting_duplicates(out, log)


def _resolve_conflicting_duplicates(frame: pd.DataFrame, log: CleaningLog) -> pd.DataFrame:
    """Keep one record per child and wave: the most complete, the first on a tie."""
    completeness = frame.notna().sum(axis=1)
    order = pd.DataFrame({"completeness": completeness, "position": np.arange(len(frame))},
                         index=frame.index)
    ranked = frame[["child_id", "wave"]].join(order).sort_values(
        ["child_id", "wave", "completeness", "position"], ascending=[True, True, False, True])
    keep_index = ranked.drop_duplicates(["child_id", "wave"], keep="first").index
    dropped = ~frame.index.isin(keep_index)
    log.add("child_assessments", frame, dropped, column="", old=None, new=None,
            rule="conflicting_duplicate_child_wave: kept the most complete record (first in file on a tie)",
            action="dropped")
    return frame.loc[~dropped]


def clean_parent_survey(raw: pd.DataFrame, log: CleaningLog, centre_ids: pd.Index,
                        rules: dict | None = None) -> pd.DataFrame:
    """Clean the parent satisfaction survey, phone numbers removed."""
    rules = rules or load_rules("cleaning")
    table = "parent_survey"
    frame = _strip_text(raw)
    frame = _drop_exact_duplicates(frame, table, log)
    frame = _drop_personal(frame, table)
    frame = _drop_blank_ids(frame, table, "response_id", log)
    dup_id = frame["response_id"].duplicated(keep="first")
    log.add(table, frame, dup_id, column="response_id", old=None, new=None,
            rule="duplicate_response_id: kept the first row", action="dropped")
    frame = frame.loc[~dup_id]
    frame = _drop_unknown_centres(frame, table, centre_ids, log)

    out = pd.DataFrame(index=frame.index)
    out["response_id"] = frame["response_id"]
    out["centre_id"] = frame["centre_id"]
    out["submission_time"] = _dates(frame, table, "submission_time", log, rules)
    out = out.join(_numeric_columns(frame, table, [*SATISFACTION_ITEMS, "recommend"], log, rules))
    return out


def clean_all(raw_tables: dict[str, pd.DataFrame], rules: dict | None = None) -> CleanData:
    """Clean every table and account for every input row."""
    rules = rules or load_rules("cleaning")
    log = CleaningLog()
    centres = clean_centres(raw_tables["centres"], log, rules)
    known = pd.Index(centres["centre_id"])
    tables = {
        "centres": centres,
        "partnerships": clean_partnerships(raw_tables["partnerships"], log, known, rules),
        "child_assessments": clean_child_assessments(raw_tables["child_assessments"], log, known, rules),
        "parent_survey": clean_parent_survey(raw_tables["parent_survey"], log, known, rules),
    }
    log_frame = log.to_frame()
    counts = {}
    for name, clean in tables.items():
        dropped = log_frame[(log_frame["table"] == name) & (log_frame["action"] == "dropped")]
        by_rule = dropped.groupby("rule").size().astype(int).to_dict()
        counts[name] = {
            "rows_in": int(len(raw_tables[name])),
            "rows_kept": int(len(clean)),
            "rows_dropped": int(len(dropped)),
            "dropped_by_rule": by_rule,
        }
        if counts[name]["rows_in"] != counts[name]["rows_kept"] + counts[name]["rows_dropped"]:
            raise AssertionError(f"row account does not balance for {name}: {counts[name]}")
    for name, clean in tables.items():
        tables[name] = clean.reset_index(drop=True)
    return CleanData(tables=tables, log=log_frame, row_counts=counts)
