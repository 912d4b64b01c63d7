"""pandera schemas: clean tables pass; every kind of violation is one row, one clear line."""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.cleaning import clean_all
from evalkit.config import TABLES, load_rules
from evalkit.errors import InputError
from evalkit.indicators import build_child_outcomes
from evalkit.readers import read_data_folder
from evalkit.schemas import (
    CLEAN_MODELS,
    FAILURE_COLUMNS,
    ChildAssessmentsClean,
    ChildOutcomes,
    ChildWave,
    schema_failures,
    validate_child_outcomes,
    validate_clean_tables,
)
from evalkit.treatment import derive_treatment

FIXTURE = Path(__file__).parent / "fixtures" / "canonical"


@pytest.fixture(scope="module")
def clean():
    raw = read_data_folder(FIXTURE)
    return clean_all(raw.tables, raw.rules)


@pytest.fixture(scope="module")
def outcomes(clean):
    tables = clean.tables
    treatment = derive_treatment(tables["centres"], tables["partnerships"], tables["child_assessments"])
    return build_child_outcomes(tables["child_assessments"], tables["centres"], treatment)


def test_clean_tables_of_the_fixture_and_the_sample_pass(clean):
    assert schema_failures(clean.tables).empty
    validate_clean_tables(clean.tables)
    assert set(CLEAN_MODELS) == set(TABLES)


def test_child_outcomes_pass(outcomes):
    validate_child_outcomes(outcomes)


def test_stages_inherit_what_they_share():
    assert issubclass(ChildAssessmentsClean, ChildWave) and issubclass(ChildOutcomes, ChildWave)


def _with(clean, table, change):
    tables = {name: frame.copy() for name, frame in clean.tables.items()}
    tables[table] = change(tables[table])
    return tables


@pytest.mark.parametrize("table, change, column, check", [
    ("child_assessments", lambda f: f.assign(child_name="Zoë"), "child_name", "is not a column of this table"),
    ("parent_survey", lambda f: f.assign(respondent_phone="082"), "respondent_phone", "is not a column"),
    ("centres", lambda f: f.drop(columns=["setting"]), "setting", "column is missing"),
    ("child_assessments", lambda f: f.assign(elom_gmd=f["elom_gmd"].where(f.index != 0, 21.0)), "elom_gmd",
     "outside the plausible range [0, 20]"),
    ("parent_survey", lambda f: f.assign(sat_overall=f["sat_overall"].where(f.index != 0, 3.5)), "sat_overall",
     "whole number"),
    ("centres", lambda f: f.assign(province=f["province"].where(f.index != 0, "Gondwana")), "province",
     "not an allowed value"),
    ("child_assessments", lambda f: f.assign(sex=f["sex"].where(f.index != 0, "F")), "sex", "not an allowed value"),
    ("partnerships", lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "partnership_id", "duplicate value"),
    ("child_assessments", lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "child_id/wave",
     "duplicate record key"),
    ("child_assessments", lambda f: f.assign(date_of_birth=f["assessment_date"] + pd.Timedelta(days=1)), "",
     "date_of_birth after assessment_date"),
    ("child_assessments", lambda f: f.assign(days_attended=f["days_possible"] + 1), "",
     "days_attended above days_possible"),
    ("centres", lambda f: f.assign(enrolment=f["enrolment"].astype(str)), "enrolment", "wrong type"),
    ("child_assessments", lambda f: f.assign(centre_id=f["centre_id"].where(f.index != 0, None)), "centre_id",
     "missing value where one is required"),
])
def test_each_violation_is_reported(clean, table, change, column, check):
    failures = schema_failures(_with(clean, table, change))
    assert list(failures.columns) == FAILURE_COLUMNS
    hit = failures[(failures["table"] == table) & (failures["column"] == column)
                   & failures["check"].str.contains(check, regex=False)]
    assert len(hit) >= 1, failures
    with pytest.raises(InputError) as err:
        validate_clean_tables(_with(clean, table, change))
    message = str(err.value)
    assert message.startswith(f"{table} (clean table)") and "schema check failed" in message
    assert "\n" not in message


def test_the_failing_row_is_named(clean):
    failures = schema_failures(_with(clean, "child_assessments",
                                     lambda f: f.assign(elom_gmd=f["elom_gmd"].where(f.index != 2, 99.0))))
    assert failures[["column", "failure_case", "row"]].values.tolist() == [["elom_gmd", "99.0", 3]]


def test_ranges_come_from_the_runs_rules(clean):
    tables = _with(clean, "child_assessments", lambda f: f.assign(height_cm=f["height_cm"].where(f.index != 0, 150)))
    assert schema_failures(tables).empty
    narrow = copy.deepcopy(load_rules("cleaning"))
    narrow["ranges"]["height_cm"] = [60, 140]  # as a codebook may declare
    assert schema_failures(tables, narrow)["column"].tolist() == ["height_cm"]


@pytest.mark.parametrize("change, check", [
    (lambda f: f.assign(child_name="x"), "holds a personal column"),
    (lambda f: f.assign(elom_total=f["elom_total"] + 1), "elom_total is not the sum"),
    (lambda f: f.assign(attendance_rate=f["attendance_rate"] * 0 + 1.5), "[0, 1]"),
    (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "duplicate record key"),
    (lambda f: f.assign(elom_band="Excellent"), "not an allowed value"),
    (lambda f: f.assign(haz_flag=f["haz_flag"].astype(float)), "wrong type"),
])
def test_child_outcome_violations(outcomes, change, check):
    with pytest.raises(InputError) as err:
        validate_child_outcomes(change(outcomes.copy()))
    assert str(err.value).startswith("child_outcomes (processed table)")


def test_an_empty_clean_table_still_passes(clean):
    tables = {name: frame.iloc[0:0] for name, frame in clean.tables.items()}
    assert schema_failures(tables).empty


def test_float_columns_with_all_missing_pass(clean):
    tables = _with(clean, "child_assessments", lambda f: f.assign(height_cm=np.nan))
    assert schema_failures(tables).empty


def test_validation_leaves_the_frames_as_they_were(clean, outcomes):
    # Validation runs without pandera's copy of each frame; it must still never change one,
    # also when it fails (a violation with wrong types, which a coercing schema would rewrite).
    before = {name: frame.copy(deep=True) for name, frame in clean.tables.items()}
    validate_clean_tables(clean.tables)
    bad = outcomes.assign(haz_flag=outcomes["haz_flag"].astype(float), elom_band="Excellent")
    bad_before = bad.copy(deep=True)
    with pytest.raises(InputError):
        validate_child_outcomes(bad)
    for name, frame in clean.tables.items():
        pd.testing.assert_frame_equal(frame, before[name])
    pd.testing.assert_frame_equal(bad, bad_before)
