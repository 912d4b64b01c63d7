"""pandera schemas for every processed table, checked on every run.

Each clean table has a class that says what the cleaner guarantees: the columns
(and no others, so no personal column can slip through), their types, the record
key, the allowed categories, whole numbers where the contract says integer, and
the consistency rules whose violations the cleaner resolves. ``ChildOutcomes``
says what the indicators stage adds on the same children. Allowed categories
and plausible ranges are not retyped here: they come from the same rules the
cleaner uses (``evalkit/rules/*.yml``, with a codebook's ranges), so the schema
and the cleaner cannot drift apart.

A failure is a bug or an unexpected input, never a crash: :func:`schema_failures`
returns every failure as one tidy table (a data-quality report for free), and
:func:`validate_clean_tables` / :func:`validate_child_outcomes` raise one
:class:`~evalkit.errors.InputError` line naming the table, the column and the problem.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .config import ELOM_DOMAINS, load_rules
from .errors import InputError

__all__ = [
    "CentresClean",
    "PartnershipsClean",
    "ChildAssessmentsClean",
    "ParentSurveyClean",
    "ChildOutcomes",
    "CLEAN_MODELS",
    "FAILURE_COLUMNS",
    "clean_schema",
    "child_outcomes_schema",
    "schema_failures",
    "validate_clean_tables",
    "validate_child_outcomes",
]

_RULES = load_rules("cleaning")
_CATEGORIES = {name: sorted(values) for name, values in _RULES["categories"].items()}
_PROVINCES = [p["name"] for p in load_rules("provinces")["provinces"]]

#: Columns of :func:`schema_failures`.
FAILURE_COLUMNS = ["table", "column", "check", "failure_case", "row", "n_failures"]


def _category(name: str) -> object:
    return pa.Field(isin=_CATEGORIES[name], nullable=True)


def _whole_number(series: pd.Series) -> pd.Series:
    return series.isna() | (series % 1 == 0)


def _number() -> object:
    # Ranges and whole numbers are added from the rules (clean_schema), not retyped here.
    return pa.Field(nullable=True)


class CentresClean(pa.DataFrameModel):
    """One row per centre: canonical province and categories, counts ≥ 0."""

    centre_id: Series[str] = pa.Field(unique=True, nullable=False)
    centre_name: Series[str] = pa.Field(nullable=True)
    province: Series[str] = pa.Field(isin=_PROVINCES, nullable=False)
    district: Series[str] = pa.Field(nullable=True)
    setting: Series[str] = _category("setting")
    registration_status: Series[str] = _category("registration_status")
    fee_band: Series[str] = _category("fee_band")
    feedback_channel: Series[str] = _category("feedback_channel")
    enrolment: Series[float] = _number()
    practitioners: Series[float] = _number()
    practitioners_trained: Series[float] = _number()
    parent_events: Series[float] = _number()

    class Config:
        strict = True
        ordered = True


class PartnershipsClean(pa.DataFrameModel):
    """One row per partnership (MOU) of a known centre."""

    partnership_id: Series[str] = pa.Field(unique=True, nullable=False)
    centre_id: Series[str] = pa.Field(nullable=False)
    partner_name: Series[str] = pa.Field(nullable=True)
    partner_type: Series[str] = _category("partner_type")
    mou_signed_date: Series[pa.DateTime] = pa.Field(nullable=True)
    status: Series[str] = _category("status")

    class Config:
        strict = True
        ordered = True


class ChildWave(pa.DataFrameModel):
    """What every child-level table shares: one row per child per wave, the ELOM domains."""

    child_id: Series[str] = pa.Field(nullable=False)
    centre_id: Series[str] = pa.Field(nullable=False)
    wave: Series[str] = pa.Field(isin=_CATEGORIES["wave"], nullable=False)
    sex: Series[str] = _category("sex")
    elom_gmd: Series[float] = _number()
    elom_fmc: Series[float] = _number()
    elom_enm: Series[float] = _number()
    elom_cef: Series[float] = _number()
    elom_ell: Series[float] = _number()

    class Config:
        unique = ["child_id", "wave"]


class ChildAssessmentsClean(ChildWave):
    """Clean child assessments: dates, anthropometry and attendance, consistent; nothing personal."""

    assessment_date: Series[pa.DateTime] = pa.Field(nullable=True)
    date_of_birth: Series[pa.DateTime] = pa.Field(nullable=True)
    height_cm: Series[float] = _number()
    weight_kg: Series[float] = _number()
    elom_sef: Series[float] = _number()  # optional teacher-rated social-emotional scale; all missing when absent
    days_attended: Series[float] = _number()
    days_possible: Series[float] = _number()
    assessor_id: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = True

    @pa.dataframe_check(error="date_of_birth after assessment_date")
    def born_before_assessment(cls, frame: pd.DataFrame) -> pd.Series:
        later = frame["date_of_birth"] > frame["assessment_date"]
        return ~later.fillna(False).astype(bool)

    @pa.dataframe_check(error="days_attended above days_possible")
    def attended_within_possible(cls, frame: pd.DataFrame) -> pd.Series:
        over = frame["days_attended"] > frame["days_possible"]
        return ~over.fillna(False).astype(bool)


class ParentSurveyClean(pa.DataFrameModel):
    """One row per parent response; no phone numbers; ratings are whole numbers."""

    response_id: Series[str] = pa.Field(unique=True, nullable=False)
    centre_id: Series[str] = pa.Field(nullable=False)
    submission_time: Series[pa.DateTime] = pa.Field(nullable=True)
    sat_communication: Series[float] = _number()
    sat_safety: Series[float] = _number()
    sat_learning: Series[float] = _number()
    sat_staff_respect: Series[float] = _number()
    sat_responsiveness: Series[float] = _number()
    sat_overall: Series[float] = _number()
    recommend: Series[float] = _number()

    class Config:
        strict = True
        ordered = True


def _band_labels() -> list[str]:
    sets = load_rules("elom").get("label_sets", {})
    return sorted({label for labels in sets.values() for label in labels.values()})


class ChildOutcomes(ChildWave):
    """``child_outcomes``: what the indicators stage adds to each child and wave.

    The stage may add more columns (strict is off), but never a personal one.
    """

    region: Series[str] = pa.Field(nullable=True)
    age_months: Series[float] = pa.Field(ge=0, nullable=True)
    elom_total: Series[float] = pa.Field(ge=0, le=100, nullable=True)
    elom_band: Series[str] = pa.Field(isin=_band_labels(), nullable=True)
    haz: Series[float] = pa.Field(nullable=True)
    waz: Series[float] = pa.Field(nullable=True)
    whz: Series[float] = pa.Field(nullable=True)
    baz: Series[float] = pa.Field(nullable=True)
    haz_flag: Series[bool] = pa.Field(coerce=False)
    waz_flag: Series[bool] = pa.Field(coerce=False)
    whz_flag: Series[bool] = pa.Field(coerce=False)
    baz_flag: Series[bool] = pa.Field(coerce=False)
    attendance_rate: Series[float] = pa.Field(ge=0, le=1, nullable=True)

    class Config:
        strict = False

    @pa.dataframe_check(error="elom_total is not the sum of the five domains")
    def total_is_the_sum(cls, frame: pd.DataFrame) -> pd.Series:
        domains = frame[list(ELOM_DOMAINS)]
        expected = domains.sum(axis=1, min_count=len(ELOM_DOMAINS)).where(domains.notna().all(axis=1))
        same = (frame["elom_total"] - expected).abs() < 1e-9
        return same | (frame["elom_total"].isna() & expected.isna())


#: The schema class of each clean table.
CLEAN_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "centres": CentresClean,
    "partnerships": PartnershipsClean,
    "child_assessments": ChildAssessmentsClean,
    "parent_survey": ParentSurveyClean,
}


def _is_text(series: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        return True
    return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")


def _text_any_dtype(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """Text columns may be pandas' ``str`` or ``object`` dtype (categories are ``object`` with
    ``pd.NA``); either way every value must be text. pandera cannot tell an empty ``object``
    column of text from anything else, so the dtype is checked by value."""
    updates = {}
    for name, column in schema.columns.items():
        if str(column.dtype) in ("str", "string", "string[python]", "string[pyarrow]"):
            updates[name] = {"dtype": None,
                             "checks": [*column.checks, pa.Check(_is_text, name="text", error="wrong type (expected text)")]}
    return schema.update_columns(updates) if updates else schema


def _with_rules(schema: pa.DataFrameSchema, rules: dict, whole: tuple[str, ...] = ()) -> pa.DataFrameSchema:
    """Add each column's plausible range from the run's rules (the codebook may change them)
    and the whole-number check of the contract's integer columns."""
    schema = _text_any_dtype(schema)
    checks: dict[str, list[pa.Check]] = {}
    for column, (low, high) in rules.get("ranges", {}).items():
        if column in schema.columns:
            checks.setdefault(column, []).append(pa.Check.in_range(low, high))
    for column in whole:
        if column in schema.columns:
            checks.setdefault(column, []).append(
                pa.Check(_whole_number, name="whole_number", error="must be a whole number"))
    updates = {column: {"checks": [*schema.columns[column].checks, *extra]} for column, extra in checks.items()}
    return schema.update_columns(updates) if updates else schema


def _personal_columns(rules: dict) -> set[str]:
    return {c for columns in rules.get("personal_columns", {}).values() for c in columns}


def clean_schema(table: str, rules: dict | None = None) -> pa.DataFrameSchema:
    """The schema of one clean table, with the run's ranges."""
    rules = rules or _RULES
    kinds = rules["tables"][table]["columns"]
    return _with_rules(CLEAN_MODELS[table].to_schema(), rules,
                       whole=tuple(c for c, kind in kinds.items() if kind == "integer"))


def child_outcomes_schema(rules: dict | None = None) -> pa.DataFrameSchema:
    """The schema of ``child_outcomes``, with the run's ranges for the ELOM domains."""
    rules = rules or _RULES
    domain_ranges = {c: r for c, r in rules.get("ranges", {}).items() if c in ELOM_DOMAINS}
    personal = sorted(_personal_columns(rules))
    schema = _with_rules(ChildOutcomes.to_schema(), {"ranges": domain_ranges})
    no_personal = pa.Check(lambda frame: pd.Series(not any(c in frame.columns for c in personal)),
                           name="no_personal_columns", error=f"holds a personal column ({', '.join(personal)})")
    return schema.set_checks([*schema.checks, no_personal]) if hasattr(schema, "set_checks") else \
        pa.DataFrameSchema(schema.columns, checks=[*schema.checks, no_personal], unique=schema.unique,
                           strict=schema.strict, name=schema.name)


_PLAIN_CHECKS = {
    "column_in_schema": "is not a column of this table (personal or unexpected data)",
    "column_in_dataframe": "column is missing",
    "field_uniqueness": "duplicate value",
    "multiple_fields_uniqueness": "duplicate record key",
    "not_nullable": "missing value where one is required",
}


def _plain_check(check: str) -> str:
    if check in _PLAIN_CHECKS:
        return _PLAIN_CHECKS[check]
    if check.startswith("in_range("):
        return "outside the plausible range " + check[len("in_range"):].replace("(", "[").replace(")", "]")
    if check.startswith("isin("):
        return "not an allowed value"
    if check.startswith("dtype("):
        return f"wrong type (expected {check[6:-1]})"
    return check


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame, table: str) -> pd.DataFrame:
    try:
        # inplace: pandera would otherwise copy the whole frame first. Nothing is coerced, and
        # reset_index already gives a frame of its own (copy-on-write), so the caller's is untouched.
        schema.validate(frame.reset_index(drop=True), lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    except pa.errors.SchemaError as exc:  # a problem with the frame as a whole
        cases = pd.DataFrame({"schema_context": ["DataFrameSchema"], "column": [""], "check": [str(exc.check)],
                              "failure_case": [""], "index": [None]})
    else:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    cases = cases.reindex(columns=["schema_context", "column", "check", "failure_case", "index"]).copy()
    cases["check"] = cases["check"].astype(str)
    cases["column"] = cases["column"].fillna("").astype(str)
    cases["failure_case"] = cases["failure_case"].astype(str)
    whole_frame = cases["schema_context"].eq("DataFrameSchema").to_numpy()
    about_columns = cases["check"].isin(["column_in_schema", "column_in_dataframe"]).to_numpy()
    # "An extra column" and "a missing column" name the column in failure_case.
    cases.loc[about_columns, "column"] = cases.loc[about_columns, "failure_case"]
    cases.loc[about_columns, "failure_case"] = ""
    # A check on whole rows (a key, a consistency rule) fails once per row, not once per column.
    per_row = whole_frame & ~about_columns
    if per_row.any():
        grouped = cases.loc[per_row].groupby(["check", "index"], dropna=False, sort=False)
        collapsed = grouped.agg(schema_context=("schema_context", "first"),
                                column=("column", lambda c: "/".join(dict.fromkeys(c)))).reset_index()
        # A key names its columns; a rule on whole rows (birth after assessment) names none.
        collapsed["column"] = collapsed["column"].where(collapsed["check"].str.contains("uniqueness"), "")
        collapsed["failure_case"] = ""
        cases = pd.concat([cases.loc[~per_row], collapsed], ignore_index=True)
    cases = cases.reset_index(drop=True)
    out = pd.DataFrame({
        "table": table,
        "column": cases["column"],
        "check": cases["check"].map(_plain_check),
        "failure_case": cases["failure_case"].replace({"nan": "", "None": ""}),
        "row": pd.to_numeric(cases["index"], errors="coerce").add(1).astype("Int64"),
    })
    counts = out.groupby(["column", "check"], dropna=False)["check"].transform("size")
    return out.assign(n_failures=counts.astype(int))[FAILURE_COLUMNS]


def schema_failures(tables: dict[str, pd.DataFrame], rules: dict | None = None) -> pd.DataFrame:
    """Every schema failure of the clean tables, one row per failing value or column.

    Columns: ``table, column, check, failure_case, row, n_failures`` (``row`` is the
    1-based row of the clean table; empty for whole-column failures such as a
    missing or extra column).
    """
    parts = [_failures(clean_schema(name, rules), frame, name) for name, frame in tables.items()
             if name in CLEAN_MODELS]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FAILURE_COLUMNS)


def _raise_first(failures: pd.DataFrame, what: str) -> None:
    if failures.empty:
        return
    first = failures.iloc[0]
    same = failures[(failures["table"] == first["table"]) & (failures["column"] == first["column"])
                    & (failures["check"] == first["check"])]
    example = f", e.g. {first['failure_case']!r}" if first["failure_case"] not in ("", "None", "nan") else ""
    row = f" (row {int(first['row'])})" if pd.notna(first["row"]) else ""
    others = len(failures) - len(same)
    more = f"; {others} other failure{'s' if others != 1 else ''}" if others else ""
    cases = f" ({len(same)} cases)" if len(same) > 1 else ""
    raise InputError(f"{first['table']} ({what})",
                     f"schema check failed: {first['check']}{cases}{example}{row}{more}",
                     column=first["column"] or None)


def validate_clean_tables(tables: dict[str, pd.DataFrame], rules: dict | None = None) -> None:
    """Check every clean table against its schema; raise one InputError line on failure.

    Parameters
    ----------
    tables : dict of DataFrame
        ``CleanData.tables``.
    rules : dict, optional
        The run's cleaning rules (``RawData.rules``), for the plausible ranges.
    """
    _raise_first(schema_failures(tables, rules), "clean table")


def validate_child_outcomes(frame: pd.DataFrame, rules: dict | None = None) -> None:
    """Check ``child_outcomes`` against :class:`ChildOutcomes`; raise one InputError line on failure."""
    _raise_first(_failures(child_outcomes_schema(rules), frame, "child_outcomes"), "processed table")
