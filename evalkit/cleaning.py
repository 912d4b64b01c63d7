"""Clean the four contract tables, logging every change, flag and dropped row.

One pipeline of steps serves every table; what it does to a table is data, the
``tables`` section of ``evalkit/rules/cleaning.yml``: the columns in output
order with their kind (id, centre reference, text, province, category, date,
datetime, number, integer), the record key, the values a row cannot do without,
and the consistency checks. The other rules (missing codes, spellings, date
formats, unit slips, ranges) are data in the same file. The steps, in order:

1. strip spaces; drop personal-data columns (never logged);
2. drop blank rows, exact duplicate rows, rows without an id, rows whose centre is unknown;
3. type the columns a row cannot do without (province, wave); drop rows where
   they are missing or unknown;
4. type every other column: missing codes (reason kept), spellings, dates,
   numbers, unit slips, ranges;
5. consistency checks, flags for formula-like or markup text;
6. resolve conflicting duplicates of one record key (most complete row kept,
   the first in the file on a tie).

Every step appends whole blocks to the :class:`CleaningLog` (one row per
change, flag or dropped row); nothing is dropped or changed silently. A column of
which most values cannot be read is listed in :attr:`CleanData.unreadable`, so
that a run stops on it rather than estimating from what is left.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .config import TABLES, load_rules

__all__ = [
    "LOG_COLUMNS",
    "PERSONAL_COLUMNS",
    "SATISFACTION_ITEMS",
    "UNREADABLE_COLUMNS",
    "CleaningLog",
    "CleanData",
    "normalise_key",
    "harmonise_province",
    "harmonise_category",
    "parse_dates",
    "missing_code_reasons",
    "formula_safe",
    "clean_table",
    "clean_centres",
    "clean_partnerships",
    "clean_child_assessments",
    "clean_parent_survey",
    "clean_all",
]

#: Columns of the cleaning log (data contract, section 3), then the reason and severity.
LOG_COLUMNS = ["table", "record_id", "row", "column", "old_value", "new_value", "rule", "action",
               "reason", "severity"]

#: :attr:`CleanData.unreadable`: per contract column with values that could not be read, how many.
UNREADABLE_COLUMNS = ["table", "column", "rule", "n_values", "n_unreadable", "share", "example", "problem",
                      "is_error"]

#: Personal data declared by the contract: dropped at ingestion.
PERSONAL_COLUMNS = {table: tuple(columns)
                    for table, columns in load_rules("cleaning")["personal_columns"].items()}

SATISFACTION_ITEMS = (
    "sat_communication",
    "sat_safety",
    "sat_learning",
    "sat_staff_respect",
    "sat_responsiveness",
    "sat_overall",
)

_ARROW_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default ``str`` dtype
_SEVERITY_BY_ACTION = {"dropped": "error", "flagged": "warning", "changed": "info"}
_FORMULA_START = ("=", "+", "-", "@")
_DECIMAL_FORM = r"^[+-]?(?:\d*[.,]\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)$"
_PLAIN_NUMBER = r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?$"


def formula_safe(values: pd.Series) -> pd.Series:
    """Prefix text a spreadsheet would run as a formula with ``'``; plain numbers are left alone.

    A cell starting with ``=``, ``+``, ``-`` or ``@`` becomes a formula in Excel or
    LibreOffice (OWASP "CSV injection"); ``-99`` is a number, not a formula.
    """
    text = _blank_missing_text(values)
    # The regex runs only on the few values that start like a formula.
    risky = text.str.startswith(_FORMULA_START).to_numpy(dtype=bool, copy=True)
    if risky.any():
        risky[risky] = ~text[risky].str.match(_PLAIN_NUMBER).to_numpy(dtype=bool)
    if not risky.any():
        return text
    out = text.copy()
    out[risky] = "'" + text[risky]
    return out


def _blank_missing_text(values: pd.Series) -> pd.Series:
    """Values as ``str`` with missing values as ``""`` (text columns without a detour through objects)."""
    if values.dtype == _ARROW_STR:
        return values.fillna("") if values.hasnans else values.copy()
    return values.astype("object").where(values.notna(), "").astype(str)


class CleaningLog:
    """Accumulates log rows; every rule adds a whole block at once (vectorised).

    Parameters
    ----------
    rules : dict, optional
        The cleaning rules (record keys and the severity of each rule); the
        shipped ``cleaning.yml`` when not given.
    """

    def __init__(self, rules: dict | None = None) -> None:
        rules = rules or load_rules("cleaning")
        self._keys = {name: tuple(spec["key"]) for name, spec in rules["tables"].items()}
        self._severity = {rule: spec["severity"] for rule, spec in rules.get("log_rules", {}).items()}
        self._parts: list[pd.DataFrame] = []
        #: One row of :data:`UNREADABLE_COLUMNS` per column with values that could not be read.
        self.unreadable: list[dict[str, Any]] = []

    def mark(self) -> int:
        """A bookmark in the log: :meth:`since` gives the blocks added after it."""
        return len(self._parts)

    def since(self, mark: int) -> list[pd.DataFrame]:
        """The blocks added since ``mark`` (each is one rule on one column)."""
        return self._parts[mark:]

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
        reason: pd.Series | str | None = None,
    ) -> int:
        """Log the rows of ``frame`` selected by ``mask``; return how many.

        ``old``, ``new`` and ``reason`` are either one value for every row or a
        Series aligned with ``frame``.
        """
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        n = len(positions)
        if n == 0:
            return 0
        part = pd.DataFrame(
            {
                "table": table,
                "record_id": self._record_id(table, frame, positions),
                "row": frame.index.to_numpy()[positions] + 1,
                "column": column,
                "old_value": _as_text(old, positions, len(frame)),
                "new_value": _as_text(new, positions, len(frame)),
                "rule": rule,
                "action": action,
                "reason": _as_text(reason, positions, len(frame)),
            }
        )
        self._parts.append(part)
        return n

    def _record_id(self, table: str, frame: pd.DataFrame, positions: np.ndarray) -> Any:
        keys = [k for k in self._keys.get(table, ()) if k in frame.columns]
        if not keys:
            return np.full(len(positions), "", dtype=object)
        text = _format_series(frame[keys[0]].iloc[positions])
        for key in keys[1:]:
            text = text + "/" + _format_series(frame[key].iloc[positions])
        return _column_values(text)

    def to_frame(self) -> pd.DataFrame:
        """The log as one table with :data:`LOG_COLUMNS`; text that could run as a formula is quoted."""
        if not self._parts:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "str") for c in LOG_COLUMNS})
        frame = pd.concat(self._parts, ignore_index=True)
        # Rules and actions are a handful of distinct values: each is looked up once.
        by_rule, by_action = _Distinct.of(frame["rule"]), _Distinct.of(frame["action"])
        frame["severity"] = by_rule.spread(by_rule.values.map(self._severity)).fillna(
            by_action.spread(by_action.values.map(_SEVERITY_BY_ACTION)))
        for column in ("record_id", "old_value", "new_value"):
            frame[column] = formula_safe(frame[column])
        return frame[LOG_COLUMNS]


def _as_text(value: Any, positions: np.ndarray, n_rows: int) -> Any:
    if value is None:
        return ""
    if isinstance(value, pd.Series):
        selected = value.iloc[positions] if len(value) == n_rows else value
        return _column_values(_format_series(selected))
    return value


def _column_values(text: pd.Series) -> Any:
    """The values of a text Series for a log column: ``str`` arrays as they are (no detour through objects)."""
    return text.array if text.dtype == _ARROW_STR else text.to_numpy()


def _format_series(values: pd.Series) -> pd.Series:
    """Text form of values for the log: ISO dates, whole numbers without ``.0``, blanks for missing."""
    if pd.api.types.is_datetime64_any_dtype(values):
        with_time = values.dt.strftime("%Y-%m-%d %H:%M:%S")
        text = values.dt.strftime("%Y-%m-%d").where(values.dt.normalize() == values, with_time)
        return text.astype("object").where(values.notna(), "")
    if pd.api.types.is_float_dtype(values):
        text = values.astype(str).str.replace(r"\.0$", "", regex=True)
        return text.astype("object").where(values.notna(), "")
    return _blank_missing_text(values)


@dataclass(frozen=True)
class CleanData:
    """Clean, typed tables plus the log and a row account per table.

    ``row_counts[table]`` is ``{rows_in, rows_kept, rows_dropped, dropped_by_rule}``
    with ``rows_in == rows_kept + rows_dropped``; ``source_rows[table]`` links each
    clean row to its input row.
    """

    tables: dict[str, pd.DataFrame]
    log: pd.DataFrame
    row_counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: For each clean table, the input row (1-based, as in the log's ``row``) of every clean row.
    source_rows: dict[str, np.ndarray] = field(default_factory=dict)
    #: :data:`UNREADABLE_COLUMNS`: the columns with values that could not be read; ``is_error``
    #: where more than the rules' ``unreadable_share_error`` of their non-blank values could not.
    unreadable: pd.DataFrame = field(default_factory=lambda: _unreadable_frame([]))


# ----------------------------------------------------------------- distinct values


@dataclass(frozen=True)
class _Distinct:
    """A column as its distinct values and, per row, the position of its value among them.

    Every rule of the cleaner is a function of the value alone, so it runs once per distinct
    value (a score column of a million rows has about two thousand) and is spread to the rows.
    A missing value is a distinct value of its own, so rules see it as they would per row.
    """

    text: pd.Series
    codes: np.ndarray
    values: pd.Series

    @classmethod
    def of(cls, text: pd.Series) -> "_Distinct":
        if text.dtype != _ARROW_STR:
            # Factorising objects would merge None with NaN and 1 with "1" and True: every row is its own value.
            return cls(text, np.arange(len(text)), text.reset_index(drop=True))
        codes, uniques = pd.factorize(text, use_na_sentinel=False)
        return cls(text, codes, pd.Series(uniques, dtype=text.dtype, name=text.name))

    def spread(self, per_value: pd.Series | np.ndarray, name: Any = None) -> pd.Series:
        """Per-row Series of a per-distinct-value result, on the column's index."""
        taken = per_value.array.take(self.codes) if isinstance(per_value, pd.Series) else per_value[self.codes]
        return pd.Series(taken, index=self.text.index, name=name, dtype=per_value.dtype, copy=False)

    def rows(self, per_value: pd.Series | np.ndarray) -> np.ndarray:
        """Per-row boolean mask of a per-distinct-value mask."""
        return np.asarray(per_value, dtype=bool)[self.codes]


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


def _map_distinct(values: pd.Series, mapper: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply ``mapper`` to the distinct values only (a category column has a handful)."""
    codes, distinct = pd.factorize(values.astype(str))
    mapped = mapper(pd.Series(distinct)).astype("object").to_numpy()
    out = np.where(codes >= 0, mapped[np.maximum(codes, 0)] if len(mapped) else None, None)
    result = pd.Series(out, index=values.index, dtype="object")
    return result.where(result.notna(), pd.NA)


def _province_of_distinct(values: pd.Series) -> pd.Series:
    provinces = load_rules("provinces")["provinces"]
    lookup = _lookup({p["name"]: [p["code"], *p["variants"]] for p in provinces})
    key = normalise_key(values)
    # "Gauteng Province" → "gauteng"; the full key is tried first ("Northern Province").
    return key.map(lookup).fillna(key.str.replace(r"\s*province$", "", regex=True).map(lookup))


def harmonise_province(values: pd.Series) -> pd.Series:
    """Map every accepted spelling to the canonical province name; unknown → NA."""
    return _map_distinct(values, _province_of_distinct)


def harmonise_category(values: pd.Series, variable: str, rules: dict | None = None) -> pd.Series:
    """Map spelling variants of a categorical variable to canonical values; unknown → NA."""
    lookup = _lookup((rules or load_rules("cleaning"))["categories"][variable])
    return _map_distinct(values, lambda distinct: normalise_key(distinct).map(lookup))


def parse_dates(values: pd.Series, formats: list[str] | None = None,
                local_timezone: str | None = None) -> pd.Series:
    """Parse mixed day-first date formats; every value tries the formats in order.

    A time with an offset (``+02:00``, ``+0200``) keeps the time as written; a time in UTC
    (``Z``) is converted to ``local_timezone`` (the rules' ``local_timezone`` when not given).
    """
    rules = load_rules("cleaning")
    return _parse_dates_by_format(values, formats or rules["date_formats"],
                                  local_timezone or rules.get("local_timezone"))[0]


def _parse_dates_by_format(values: pd.Series, formats: list[str],
                           local_timezone: str | None = None) -> tuple[pd.Series, np.ndarray]:
    """Parsed dates and, per value, the position in ``formats`` of the format that read it (-1: none)."""
    distinct = _Distinct.of(values.astype(str).str.strip())
    parsed, which = _parse_distinct_dates(distinct.values, formats, local_timezone)
    return distinct.spread(parsed), which[distinct.codes]


def _parse_distinct_dates(text: pd.Series, formats: list[str],
                          local_timezone: str | None = None) -> tuple[pd.Series, np.ndarray]:
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    which = np.full(len(text), -1, dtype=np.int16)
    todo = (text != "").to_numpy(dtype=bool, copy=True)
    for position, fmt in enumerate(formats):
        if not todo.any():
            break
        tried = todo & _may_read(text, fmt)
        attempt = _read_format(text[tried], fmt, local_timezone)
        done = attempt.notna().to_numpy()
        rows = np.flatnonzero(tried)[done]
        parsed.iloc[rows] = attempt[done].to_numpy()
        which[rows] = position
        todo[rows] = False
    return parsed, which


# A UTC offset at the end of a value, as strptime's %z reads it: Z, +02:00, +0200.
_OFFSET = r"^(.*?)([Zz]|[+-]\d{2}:?[0-5]\d)$"


def _read_format(text: pd.Series, fmt: str, local_timezone: str | None) -> pd.Series:
    """``pd.to_datetime(text, format=fmt)``, with NaT where ``fmt`` does not read the value; naive times.

    A format ending in ``%z`` reads the offset itself, so that values with different offsets
    can stand in one column: a time with an offset is the local time as written (its date is
    the date as written); a time in UTC (``Z``) is converted to ``local_timezone``.
    """
    if not fmt.endswith("%z") or fmt.endswith("%%z"):
        return pd.to_datetime(text, format=fmt, errors="coerce")
    parts = text.str.extract(_OFFSET)
    wall = pd.to_datetime(parts[0], format=fmt[:-2], errors="coerce")
    utc = (parts[1].str.upper() == "Z").fillna(False).to_numpy(dtype=bool) & wall.notna().to_numpy()
    if local_timezone and utc.any():
        local = wall[utc].dt.tz_localize("UTC").dt.tz_convert(local_timezone).dt.tz_localize(None)
        wall = wall.astype(local.dtype)
        wall[utc] = local
    return wall


# The characters, beyond digits and spaces, that each strptime directive of a "plain" format
# reads (%b: English month abbreviations; %p: AM/PM; %z: a UTC offset or Z).
_DIRECTIVE_CHARS = {**dict.fromkeys("YymdHMSIf", ""), "%": "%", "z": "+-:.Z",
                    "b": "JanFebMarAprMayJunJulAugSepOctNovDec", "p": "AMP"}


def _may_read(text: pd.Series, fmt: str) -> np.ndarray:
    """False where ``fmt`` certainly cannot read the value, so that it is not tried (True elsewhere).

    A format made of numeric fields (day, month, year, hour, minute, second, fraction), month
    abbreviations, AM/PM, a UTC offset and literal separators reads only digits, spaces, those
    separators and the directives' own characters: a datetime with a ``:`` is never tried with a
    date format, nor ``five`` with ``%b %d, %Y``. Any other format is tried on every value.
    """
    directives = re.findall(r"%(.)", fmt)
    if text.dtype != _ARROW_STR or not set(directives) <= set(_DIRECTIVE_CHARS):
        return np.ones(len(text), dtype=bool)
    literals = set(re.sub(r"%.", "", fmt)) | {c for d in directives for c in _DIRECTIVE_CHARS[d]}
    literals |= {"+", "-"}  # signed years
    literals |= {c.lower() for c in literals} | {c.upper() for c in literals}  # strptime ignores case
    # Unicode digits, separators and control characters: a superset of strptime's \d and \s.
    other = "[^\\p{Nd}\\p{Z}\\p{Cc}" + "".join(re.escape(c) for c in sorted(literals)) + "]"
    return ~text.str.contains(other, regex=True).fillna(False).to_numpy(dtype=bool)


def _code_tables(rules: dict) -> tuple[dict[str, str], dict[float, str]]:
    by_text: dict[str, str] = {}
    by_number: dict[float, str] = {}
    codes = {**rules.get("missing_codes_assumed", {}), **rules["missing_codes"]}
    for code, reason in codes.items():
        code = str(code).strip()
        by_text.setdefault(code.upper(), str(reason))
        try:
            by_number.setdefault(float(code), str(reason))
        except ValueError:
            pass
    return by_text, by_number


def missing_code_reasons(text: pd.Series, rules: dict | None = None,
                         numbers: pd.Series | None = None) -> pd.Series:
    """The reason of each value that is a missing code (``"blank"`` for ``""``), else NA.

    Text codes match without regard to case (``NA`` and ``na`` are one code);
    numeric codes also match their decimal forms (``-99.0``, ``-99,0``).
    ``numbers`` may pass the column already read as numbers, to save reading it again.
    """
    distinct = _Distinct.of(text)
    if numbers is not None:
        # The number of each distinct value: that of its first row.
        first = np.empty(len(distinct.values), dtype=np.intp)
        first[distinct.codes[::-1]] = np.arange(len(distinct.codes) - 1, -1, -1)
        numbers = pd.Series(numbers.to_numpy()[first])
    return distinct.spread(_distinct_code_reasons(distinct.values, rules, numbers))


def _distinct_code_reasons(text: pd.Series, rules: dict | None, numbers: pd.Series | None) -> pd.Series:
    by_text, by_number = _code_tables(rules or load_rules("cleaning"))
    text = text.astype(str).str.strip()
    upper = text.str.upper()
    reason = pd.Series(pd.NA, index=text.index, dtype="object")
    hit = upper.isin(list(by_text)).to_numpy()
    reason[hit] = upper[hit].map(by_text).to_numpy()
    if by_number:
        # Only a decimal form ("-99.0") can be a code that the exact text did not match.
        todo = ~hit & text.str.match(_DECIMAL_FORM).to_numpy(dtype=bool)
        if todo.any():
            if numbers is None:
                found = pd.to_numeric(text[todo].str.replace(",", ".", regex=False), errors="coerce")
            else:
                found = numbers[todo]
            is_code = found.isin(list(by_number)).to_numpy()
            todo[todo] = is_code
            reason[todo] = found[is_code].map(by_number).to_numpy()
    return reason.where(reason.notna(), pd.NA)


# ------------------------------------------------------------------ column kinds
# Each converter is f(frame, table, column, log, rules) -> typed Series, logging as it goes.


def _isin(values: pd.Series, known: pd.Index) -> np.ndarray:
    """``values.isin(known)``, by pyarrow for text (pandas' isin of ``str`` values is slow)."""
    if values.dtype == _ARROW_STR and known.dtype == _ARROW_STR:
        found = pc.is_in(pa.array(values.array), value_set=pa.array(known.array))
        return found.to_numpy(zero_copy_only=False).astype(bool)
    return values.isin(known).to_numpy(dtype=bool)


def _text_of(frame: pd.DataFrame, column: str) -> pd.Series:
    if column in frame.columns:
        return frame[column]
    return pd.Series("", index=frame.index, dtype="str")


def _log_missing_codes(frame, table, column, distinct: _Distinct, log, rules,
                       numbers: pd.Series | None = None) -> pd.Series:
    """Log the missing codes of a column (blanks are not logged); return the reason of each distinct value."""
    reason = _distinct_code_reasons(distinct.values, rules, numbers)
    coded = reason.notna() & (distinct.values != "")
    if coded.any():
        log.add(table, frame, distinct.rows(coded), column=column, old=distinct.text, new="", rule="missing_code",
                action="changed", reason=distinct.spread(reason))
    return reason


def _as_text_kind(frame, table, column, log, rules) -> pd.Series:
    text = _text_of(frame, column)
    return text.where(text != "")


def _as_text_with_codes(frame, table, column, log, rules) -> pd.Series:
    distinct = _Distinct.of(_text_of(frame, column))
    reason = _log_missing_codes(frame, table, column, distinct, log, rules)
    return distinct.text.where(distinct.rows(reason.isna()))


def _as_category(frame, table, column, log, rules, *, flag_unknown: bool = True) -> pd.Series:
    distinct = _Distinct.of(_text_of(frame, column))
    text = distinct.text
    reason = _log_missing_codes(frame, table, column, distinct, log, rules)
    mapped = harmonise_category(distinct.values, column, rules).where(reason.isna(), pd.NA)
    changed = mapped.notna() & (mapped.astype(str) != distinct.values)
    mapped_rows = distinct.spread(mapped)
    log.add(table, frame, distinct.rows(changed), column=column, old=text, new=mapped_rows,
            rule="harmonise_spelling", action="changed")
    if flag_unknown:
        unknown = mapped.isna() & reason.isna()
        log.add(table, frame, distinct.rows(unknown), column=column, old=text, new="", rule="unknown_category",
                action="flagged", reason="not a known value: set missing")
    return mapped_rows


def _as_province(frame, table, column, log, rules, *, flag_unknown: bool = True) -> pd.Series:
    distinct = _Distinct.of(_text_of(frame, column))
    text = distinct.text
    province = harmonise_province(distinct.values)
    changed = province.notna() & (province.astype(str) != distinct.values)
    province_rows = distinct.spread(province)
    log.add(table, frame, distinct.rows(changed), column=column, old=text, new=province_rows,
            rule="harmonise_province", action="changed")
    if flag_unknown:
        log.add(table, frame, distinct.rows(province.isna() & (distinct.values != "")), column=column, old=text,
                new="", rule="unknown_category", action="flagged", reason="not a known province: set missing")
    return province_rows


def _date_formats_of(rules: dict, table: str, column: str) -> list[str]:
    """The formats a date column is read with, in order: the codebook's for it, then the rules'."""
    declared = list(rules["tables"].get(table, {}).get("date_formats", {}).get(column, ()))
    return [*declared, *(fmt for fmt in rules["date_formats"] if fmt not in declared)]


def _as_moment(frame, table, column, log, rules, *, iso: str) -> pd.Series:
    distinct = _Distinct.of(_text_of(frame, column))
    text = distinct.text
    reason = _log_missing_codes(frame, table, column, distinct, log, rules)
    # From here on each distinct value is worked on once; the results are spread to the rows.
    todo = distinct.values.where(reason.isna(), "")
    formats = _date_formats_of(rules, table, column)
    parsed, which = _parse_dates_by_format(todo, formats, rules.get("local_timezone"))
    as_date = iso == "%Y-%m-%d"
    if as_date:
        # A date-time in a date column stands for its (local) calendar date.
        parsed = parsed.dt.normalize()

    serial_range = rules.get("excel_serial_dates")
    is_serial = np.zeros(len(todo), dtype=bool)
    if serial_range:
        # A fraction of a day is the time of a date-time cell (to the second).
        candidates = (parsed.isna() & todo.str.fullmatch(r"\d{5}(?:\.\d*)?")).to_numpy(dtype=bool)
        if candidates.any():
            numbers = pd.to_numeric(todo[candidates], errors="coerce")
            serial_days = numbers.between(*serial_range).to_numpy()
            is_serial[np.flatnonzero(candidates)[serial_days]] = True
            seconds = (numbers[serial_days] * 86400).round()
            if as_date:
                seconds -= seconds % 86400
            parsed.loc[is_serial] = (pd.Timestamp("1899-12-30") + pd.to_timedelta(seconds, unit="s")).to_numpy()
            log.add(table, frame, distinct.rows(is_serial), column=column, old=text, new=distinct.spread(parsed),
                    rule="excel_serial_date", action="changed",
                    reason="Excel serial day number (days since 1899-12-30)")

    # A date written in another accepted format is a change of form, not of meaning; it is
    # logged so that the audit trail is complete. A value read by the ISO format itself is
    # canonical when it has the ISO length (zero-padded).
    iso_width = len(pd.Timestamp("2000-01-01").strftime(iso))
    is_iso = (which == formats.index(iso)) if iso in formats else np.zeros(len(todo), dtype=bool)
    is_iso &= (todo.str.len() == iso_width).to_numpy()
    reformatted = (which >= 0) & ~is_iso
    bad = parsed.isna().to_numpy() & (todo != "").to_numpy()
    parsed_rows = distinct.spread(parsed)
    if reformatted.any():
        # Each distinct date is written out once for the log.
        log.add(table, frame, distinct.rows(reformatted), column=column, old=text,
                new=distinct.spread(_format_series(parsed).astype(str)), rule="date_format_to_iso",
                action="changed")
    log.add(table, frame, distinct.rows(bad), column=column, old=text, new="", rule="unparseable_date",
            action="flagged", reason="no accepted date format (day first, never month first): set missing")

    bounds = rules.get("date_ranges", {}).get(column)
    if bounds:
        low, high = (pd.Timestamp(b) for b in bounds)
        outside = (parsed.notna() & ((parsed < low) | (parsed > high))).to_numpy(dtype=bool)
        if outside.any():
            outside_rows = distinct.rows(outside)
            log.add(table, frame, outside_rows, column=column, old=parsed_rows, new="", rule="date_out_of_range",
                    action="flagged", reason=f"outside [{bounds[0]}, {bounds[1]}]: set missing")
            parsed_rows = parsed_rows.mask(outside_rows)
    return parsed_rows


def _as_date(frame, table, column, log, rules) -> pd.Series:
    return _as_moment(frame, table, column, log, rules, iso="%Y-%m-%d")


def _as_datetime(frame, table, column, log, rules) -> pd.Series:
    return _as_moment(frame, table, column, log, rules, iso="%Y-%m-%d %H:%M:%S")


def _as_number(frame, table, column, log, rules, *, whole: bool = False) -> pd.Series:
    """Text → float: missing codes to NA (reason kept), then unit slips and ranges."""
    distinct = _Distinct.of(_text_of(frame, column))
    text, values_text = distinct.text, distinct.values
    has_comma = values_text.str.contains(",", regex=False)
    numbers = pd.to_numeric(values_text.str.replace(",", ".", regex=False), errors="coerce").astype("float64")
    reason = _log_missing_codes(frame, table, column, distinct, log, rules, numbers)
    coded = reason.notna().to_numpy()
    bad_text = numbers.isna().to_numpy() & ~coded
    comma = has_comma.to_numpy(dtype=bool) & ~coded & numbers.notna().to_numpy()
    values = distinct.spread(numbers.mask(coded), name=text.name)

    log.add(table, frame, distinct.rows(bad_text), column=column, old=text, new="", rule="not_a_number",
            action="flagged", reason="text in a numeric column: set missing")
    log.add(table, frame, distinct.rows(comma), column=column, old=text, new=values, rule="decimal_comma",
            action="changed")
    if whole:
        fraction = (values.notna() & (values % 1 != 0)).to_numpy(dtype=bool)
        log.add(table, frame, fraction, column=column, old=values, new="", rule="not_a_whole_number",
                action="flagged", reason="a count or rating must be a whole number: set missing")
        values = values.mask(fraction)
    values = _apply_unit_slips(frame, table, column, values, log, rules)
    return _apply_range(frame, table, column, values, log, rules)


def _as_integer(frame, table, column, log, rules) -> pd.Series:
    return _as_number(frame, table, column, log, rules, whole=True)


def _apply_unit_slips(frame: pd.DataFrame, table: str, column: str, values: pd.Series,
                      log: CleaningLog, rules: dict) -> pd.Series:
    rule = rules.get("unit_slips", {}).get(column)
    if rule is None:
        return values
    low, high = rule["plausible"]
    corrected = values / rule["divide_by"]
    slip = ((values > rule["above"]) & corrected.between(low, high)).to_numpy(dtype=bool)
    log.add(table, frame, slip, column=column, old=values, new=corrected, rule="unit_slip", action="changed",
            reason=f"value above {rule['above']} divided by {rule['divide_by']}")
    return values.mask(slip, corrected)


def _apply_range(frame: pd.DataFrame, table: str, column: str, values: pd.Series,
                 log: CleaningLog, rules: dict) -> pd.Series:
    bounds = rules.get("ranges", {}).get(column)
    if bounds is None:
        return values
    low, high = bounds
    outside = (values.notna() & ~values.between(low, high)).to_numpy(dtype=bool)
    log.add(table, frame, outside, column=column, old=values, new="", rule="out_of_range", action="flagged",
            reason=f"outside [{low}, {high}]: set missing")
    return values.mask(outside)


_CONVERTERS: dict[str, Callable[..., pd.Series]] = {
    "id": _as_text_kind,
    "centre_ref": _as_text_kind,
    "text": _as_text_with_codes,
    "province": _as_province,
    "category": _as_category,
    "date": _as_date,
    "datetime": _as_datetime,
    "number": _as_number,
    "integer": _as_integer,
}
_TEXT_KINDS = ("id", "centre_ref", "text")
_HARMONISE_RULE = {"province": "harmonise_province", "category": "harmonise_spelling"}
_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
              "==": operator.eq, "!=": operator.ne}


# ------------------------------------------------------------------ row-level steps


def _strip_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda col: col.astype(str).str.strip())


def _drop_personal(frame: pd.DataFrame, table: str, rules: dict) -> pd.DataFrame:
    declared = rules.get("personal_columns", {}).get(table, ())
    return frame.drop(columns=[c for c in declared if c in frame.columns])


# The row-level drops below take the rows still kept (``alive``) and return those kept after
# them; the frame is cut once at the end, not copied after every step.


def _drop_blank_rows(frame: pd.DataFrame, table: str, log: CleaningLog, alive: np.ndarray) -> np.ndarray:
    # Spreadsheets leave rows of empty cells below the data; they are not records.
    blank = (frame == "").all(axis=1).to_numpy() if len(frame.columns) else np.ones(len(frame), dtype=bool)
    blank = blank & alive
    log.add(table, frame, blank, column="", old=None, new=None, rule="blank_row", action="dropped",
            reason="every cell is blank")
    return alive & ~blank


def _duplicated_rows(frame: pd.DataFrame) -> np.ndarray:
    """``frame.duplicated(keep="first")``: hashing finds the candidates fast; the exact comparison decides."""
    candidates = pd.util.hash_pandas_object(frame, index=False).duplicated(keep=False).to_numpy()
    dup = np.zeros(len(frame), dtype=bool)
    if candidates.any():
        dup[candidates] = frame.loc[candidates].duplicated(keep="first").to_numpy()
    return dup


def _drop_exact_duplicates(frame: pd.DataFrame, table: str, log: CleaningLog, alive: np.ndarray) -> np.ndarray:
    # Judged on the whole row as read (personal columns are gone by now); only the id is logged.
    dup = np.zeros(len(frame), dtype=bool)
    if alive.any():
        dup[alive] = _duplicated_rows(frame if alive.all() else frame.loc[alive])
    log.add(table, frame, dup, column="", old=None, new=None, rule="exact_duplicate_row", action="dropped",
            reason="repeats an earlier row exactly")
    return alive & ~dup


def _drop_blank_ids(frame: pd.DataFrame, table: str, id_column: str, log: CleaningLog,
                    alive: np.ndarray) -> np.ndarray:
    blank = (_text_of(frame, id_column) == "").to_numpy() & alive
    log.add(table, frame, blank, column=id_column, old=None, new=None, rule="missing_record_id",
            action="dropped", reason=f"{id_column} is blank")
    return alive & ~blank


def _drop_unknown_centres(frame, table, column: str, known: pd.Index, log: CleaningLog,
                          alive: np.ndarray) -> np.ndarray:
    distinct = _Distinct.of(_text_of(frame, column))
    unknown = distinct.rows(~_isin(distinct.values, known)) & alive
    log.add(table, frame, unknown, column=column, old=frame.get(column), new="",
            rule="centre_id_not_in_centres", action="dropped", reason="centre not in the clean centres table")
    return alive & ~unknown


def _flag_unsafe_text(out: pd.DataFrame, table: str, columns: list[str], log: CleaningLog,
                      rules: dict) -> None:
    safety = rules.get("text_safety", {})
    starts = tuple(safety.get("formula_starts", _FORMULA_START))
    pattern = safety.get("markup_pattern")
    for column in columns:
        text = out[column].astype(str).where(out[column].notna(), "")
        formula = text.str.startswith(starts).to_numpy(dtype=bool, copy=True)
        if formula.any():
            formula[formula] = ~text[formula].str.match(_PLAIN_NUMBER).to_numpy()
        log.add(table, out, formula, column=column, old=text, new=None, rule="formula_like_text",
                action="flagged", reason="starts like a spreadsheet formula: kept as text")
        markup = text.str.contains("<", regex=False).to_numpy(dtype=bool, copy=True)
        if pattern and markup.any():
            markup[markup] = text[markup].str.contains(pattern, regex=True).to_numpy()
            log.add(table, out, markup, column=column, old=text, new=None, rule="markup_in_text",
                    action="flagged", reason="contains HTML-like markup: kept as text, shown escaped")


def _run_checks(out: pd.DataFrame, table: str, checks: list[dict], log: CleaningLog) -> pd.DataFrame:
    for check in checks:
        left, op, right = check["when"]
        if left not in out.columns or right not in out.columns:
            continue
        fires = _OPERATORS[op](out[left], out[right]).fillna(False).to_numpy(dtype=bool)
        if not fires.any():
            continue
        set_missing = list(check.get("set_missing", []))
        fired = out.loc[fires]
        action_note = f": {', '.join(set_missing)} set missing" if set_missing else ": values kept"
        detail = (f"{left} " + _format_series(fired[left]) + f" {op} {right} " + _format_series(fired[right])
                  + action_note)
        log.add(table, out, fires, column=left, old=out[left], new="" if left in set_missing else None,
                rule=check["rule"], action="flagged", reason=detail.reindex(out.index))
        out = out.assign(**{column: out[column].mask(fires) for column in set_missing})
    return out


def _resolve_conflicting_duplicates(out: pd.DataFrame, table: str, key: list[str],
                                    log: CleaningLog) -> pd.DataFrame:
    """Keep one row per record key: the most complete, the first in the file on a tie."""
    clash = out.duplicated(key, keep=False).to_numpy()
    if not clash.any():
        return out
    rows = out.loc[clash]
    ranked = rows[key].assign(_complete=rows.notna().sum(axis=1).to_numpy(), _position=np.arange(len(rows)))
    ranked = ranked.sort_values([*key, "_complete", "_position"],
                                ascending=[True] * len(key) + [False, True], kind="stable")
    keep_index = ranked.drop_duplicates(key, keep="first").index
    dropped = rows.loc[~rows.index.isin(keep_index)]

    kept = rows.loc[keep_index]
    partner = dropped[key].merge(kept[key].assign(_kept=keep_index.to_numpy()), on=key, how="left")["_kept"]
    kept_rows = out.loc[partner.to_numpy()]
    differs = pd.Series("", index=dropped.index, dtype="object")
    for column in out.columns.difference(key, sort=False):
        same = _format_series(dropped[column]).to_numpy() == _format_series(kept_rows[column]).to_numpy()
        differs = differs + np.where(same, "", column + " ")
    more_complete = (kept_rows.notna().sum(axis=1).to_numpy() > dropped.notna().sum(axis=1).to_numpy())
    why = np.where(more_complete, "the more complete", "the first in the file")
    reason = ("same " + "/".join(key) + " as row " + (partner.astype(int) + 1).astype(str).to_numpy()
              + ", which was kept (" + why + "); differs in: " + differs.str.strip().str.replace(" ", ", "))
    mask = out.index.isin(dropped.index)
    log.add(table, out, mask, column="", old=None, new=None, rule="conflicting_duplicate",
            action="dropped", reason=pd.Series(reason, index=dropped.index).reindex(out.index))
    return out.loc[~mask]


# ------------------------------------------------------------ unreadable columns

#: The rules that mean a value could not be read at all, and what it could not be read as.
_UNREADABLE_RULES = {"unparseable_date": "dates", "not_a_number": "numbers", "unknown_category": "categories"}


def _note_unreadable(frame: pd.DataFrame, table: str, log: CleaningLog, mark: int, rules: dict) -> None:
    """Count, per column typed since ``mark``, the non-blank values that could not be read.

    A column of which most values cannot be read (dates in a format no rule knows, numbers
    typed as words, codes without their labels) would leave the analysis with nothing and no
    message: :func:`clean_all` reports it in :attr:`CleanData.unreadable` so that a run stops
    and ``evalkit check`` shows an error.
    """
    threshold = rules.get("unreadable_share_error")
    for block in log.since(mark):
        rule, column = block["rule"].iat[0], block["column"].iat[0]
        if rule not in _UNREADABLE_RULES:
            continue
        n_values = int((_text_of(frame, column) != "").sum())
        n_bad, example = len(block), str(block["old_value"].iat[0])
        share = n_bad / n_values if n_values else 0.0
        if rule == "unparseable_date":
            # A format holding a space or a comma is quoted, so that the list reads unambiguously.
            tried = (f"'{fmt}'" if " " in fmt or "," in fmt else fmt for fmt in _date_formats_of(rules, table, column))
            hint = f"formats tried: {', '.join(tried)}; add the format to the codebook (date_formats)"
        elif rule == "not_a_number":
            hint = ("expected numbers such as 12 or 3.5 (or 3,5), or a missing code; "
                    "correct the export, or recode the values in the codebook (values)")
        elif rules["tables"][table]["columns"].get(column) == "province":
            hint = ("expected a province name or code (or a variant in provinces.yml); "
                    "recode the values in the codebook (values)")
        else:
            known = list(rules.get("categories", {}).get(column, {}))
            expected = f"one of: {', '.join(known)}" if known else "a known value"
            hint = (f"expected {expected} (or a spelling in cleaning.yml categories); "
                    "recode the values in the codebook (values)")
        problem = (f"{n_bad} of {n_values} values cannot be read as {_UNREADABLE_RULES[rule]} "
                   f"(e.g. '{example}'); {hint}")
        log.unreadable.append({"table": table, "column": column, "rule": rule, "n_values": n_values,
                               "n_unreadable": n_bad, "share": share, "example": example, "problem": problem,
                               "is_error": threshold is not None and share > threshold})


def _unreadable_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=UNREADABLE_COLUMNS)
    return frame.astype({"n_values": "int64", "n_unreadable": "int64", "share": "float64", "is_error": "bool"})


# ---------------------------------------------------------------------- tables


def clean_table(raw: pd.DataFrame, table: str, log: CleaningLog, rules: dict | None = None,
                centre_ids: pd.Index | None = None) -> pd.DataFrame:
    """Clean one contract table by the steps its rules declare.

    Parameters
    ----------
    raw : DataFrame
        The table as read: text columns, canonical names, one row per input row.
    table : str
        Its name in the contract (``centres``, ``partnerships``, ...).
    log : CleaningLog
        Receives one row per change, flag and dropped row.
    rules : dict, optional
        Cleaning rules; the shipped ``cleaning.yml`` when not given.
    centre_ids : Index, optional
        Clean centre ids; rows whose centre is not among them are dropped.
        Not checked when not given.

    Returns
    -------
    DataFrame
        Typed canonical columns in the order of ``rules["tables"][table]["columns"]``,
        indexed by the input row position.
    """
    rules = rules or load_rules("cleaning")
    spec = rules["tables"][table]
    kinds: dict[str, str] = dict(spec["columns"])
    key = list(spec["key"])

    frame = _strip_text(raw)
    frame = _drop_personal(frame, table, rules)
    alive = _drop_blank_rows(frame, table, log, np.ones(len(frame), dtype=bool))
    alive = _drop_exact_duplicates(frame, table, log, alive)
    for column in (c for c, kind in kinds.items() if kind == "id"):
        alive = _drop_blank_ids(frame, table, column, log, alive)
    if centre_ids is not None:
        for column in (c for c, kind in kinds.items() if kind == "centre_ref"):
            alive = _drop_unknown_centres(frame, table, column, centre_ids, log, alive)
    if not alive.all():
        frame = frame.loc[alive]

    # Rows without a usable value where one is required are dropped first, so that nothing
    # else is logged for them; a silent pass finds them.
    typed: dict[str, pd.Series] = {}
    for column, rule in spec.get("required_values", {}).items():
        kind = kinds[column]
        values = _CONVERTERS[kind](frame, table, column, CleaningLog(rules), rules, flag_unknown=False)
        lost = values.isna().to_numpy()
        log.add(table, frame, lost, column=column, old=_text_of(frame, column), new="", rule=rule,
                action="dropped", reason=f"{column} is missing or unknown: never guessed")
        if lost.any():
            frame, values = frame.loc[~lost], values.loc[~lost]
            typed = {c: v.loc[~lost] for c, v in typed.items()}
        text = _text_of(frame, column)
        values_text = values.astype(str)
        if column in key:
            # Later log rows name the record by its canonical key (the wave "baseline", not "BL").
            frame = frame.assign(**{column: values_text})
        log.add(table, frame, values_text != text, column=column, old=text, new=values,
                rule=_HARMONISE_RULE[kind], action="changed")
        typed[column] = values
    first_typed = log.mark()
    for column, kind in kinds.items():
        if column not in typed:
            typed[column] = _CONVERTERS[kind](frame, table, column, log, rules)
    _note_unreadable(frame, table, log, first_typed, rules)
    out = pd.DataFrame(typed, index=frame.index)[list(kinds)]

    for column, rule in spec.get("flag_when_missing", {}).items():
        log.add(table, out, out[column].isna(), column=column, old=None, new=None, rule=rule,
                action="flagged", reason=f"{column} is missing")
    out = _run_checks(out, table, spec.get("checks", []), log)
    _flag_unsafe_text(out, table, [c for c, kind in kinds.items() if kind in _TEXT_KINDS], log, rules)
    return _resolve_conflicting_duplicates(out, table, key, log)


def clean_centres(raw: pd.DataFrame, log: CleaningLog, rules: dict | None = None) -> pd.DataFrame:
    """Clean the centres table: one row per centre with canonical province and categories."""
    return clean_table(raw, "centres", log, rules)


def clean_partnerships(raw: pd.DataFrame, log: CleaningLog, centre_ids: pd.Index,
                       rules: dict | None = None) -> pd.DataFrame:
    """Clean the partnerships (MOUs) table."""
    return clean_table(raw, "partnerships", log, rules, centre_ids)


def clean_child_assessments(raw: pd.DataFrame, log: CleaningLog, centre_ids: pd.Index,
                            rules: dict | None = None) -> pd.DataFrame:
    """Clean child assessments: one row per child per wave, personal data removed."""
    return clean_table(raw, "child_assessments", log, rules, centre_ids)


def clean_parent_survey(raw: pd.DataFrame, log: CleaningLog, centre_ids: pd.Index,
                        rules: dict | None = None) -> pd.DataFrame:
    """Clean the parent satisfaction survey, phone numbers removed."""
    return clean_table(raw, "parent_survey", log, rules, centre_ids)


def clean_all(raw_tables: dict[str, pd.DataFrame], rules: dict | None = None) -> CleanData:
    """Clean every table and account for every input row.

    Parameters
    ----------
    raw_tables : dict of DataFrame
        The four contract tables as read (:attr:`evalkit.readers.RawData.tables`).
    rules : dict, optional
        Cleaning rules; pass :attr:`evalkit.readers.RawData.rules` so that a
        codebook's missing codes and ranges apply. The shipped ``cleaning.yml``
        when not given.
    """
    rules = rules or load_rules("cleaning")
    log = CleaningLog(rules)
    tables = {"centres": clean_table(raw_tables["centres"], "centres", log, rules)}
    known = pd.Index(tables["centres"]["centre_id"])
    for name in TABLES:
        if name != "centres":
            tables[name] = clean_table(raw_tables[name], name, log, rules, known)
    log_frame = log.to_frame()
    dropped_rows = log_frame[log_frame["action"] == "dropped"]
    counts, source_rows = {}, {}
    for name, clean in tables.items():
        dropped = dropped_rows[dropped_rows["table"] == name]
        counts[name] = {
            "rows_in": int(len(raw_tables[name])),
            "rows_kept": int(len(clean)),
            "rows_dropped": int(len(dropped)),
            "dropped_by_rule": {str(k): int(v) for k, v in dropped.groupby("rule").size().items()},
        }
        if counts[name]["rows_in"] != counts[name]["rows_kept"] + counts[name]["rows_dropped"]:
            raise AssertionError(f"row account does not balance for {name}: {counts[name]}")
        source_rows[name] = clean.index.to_numpy() + 1
        tables[name] = clean.reset_index(drop=True)
    return CleanData(tables=tables, log=log_frame, row_counts=counts, source_rows=source_rows,
                     unreadable=_unreadable_frame(log.unreadable))
