"""Timestamps and dates as the survey tools write them (docs/cleaning.md, "Dates and times").

Every expected value below is computed by hand: Africa/Johannesburg is UTC+2 all year (no
daylight saving), so a time in UTC (Z) is two hours later locally.
"""

import datetime as dt

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from evalkit.cleaning import CleaningLog, clean_all, clean_table, parse_dates
from evalkit.codebook import load_codebook, merge_rules
from evalkit.config import load_rules
from evalkit.errors import InputError
from evalkit.readers import read_data_folder, read_table

T = pd.Timestamp


@pytest.mark.parametrize("text, expected", [
    # ISO 8601 as ODK, KoboToolbox and SurveyCTO write it
    ("2025-02-03T10:14:53.000+02:00", T("2025-02-03 10:14:53")),
    ("2025-02-03T10:14:53.250+02:00", T("2025-02-03 10:14:53.250")),
    ("2025-02-03T10:14:53+02:00", T("2025-02-03 10:14:53")),
    ("2025-02-03T10:14:53+0200", T("2025-02-03 10:14:53")),
    ("2025-02-03T10:14:53.000+0200", T("2025-02-03 10:14:53")),
    ("2025-02-03T10:14:53-05:00", T("2025-02-03 10:14:53")),  # an explicit offset: the time as written
    ("2025-02-03 10:14:53+02:00", T("2025-02-03 10:14:53")),
    ("2025-02-03T10:14:53.000", T("2025-02-03 10:14:53")),
    ("2025-09-29T18:36:50.000Z", T("2025-09-29 20:36:50")),  # UTC: two hours later in Johannesburg
    ("2025-09-29T18:36:50Z", T("2025-09-29 20:36:50")),
    ("2025-09-29T22:36:50Z", T("2025-09-30 00:36:50")),
    ("2025-02-03", T("2025-02-03")),
    # SurveyCTO
    ("Feb 3, 2025", T("2025-02-03")),
    ("feb 03, 2025", T("2025-02-03")),
    ("Feb 3, 2025 2:14:53 PM", T("2025-02-03 14:14:53")),
    ("Feb 3, 2025 2:14:53 pm", T("2025-02-03 14:14:53")),
    ("Dec 31, 2024 12:00:00 PM", T("2024-12-31 12:00:00")),
    ("Jan 1, 2025 12:05:09 AM", T("2025-01-01 00:05:09")),
    ("Sep 29, 2025 11:59:59 PM", T("2025-09-29 23:59:59")),
    # the formats accepted before, unchanged: day first, never month first
    ("03/02/2025", T("2025-02-03")),
    ("2025/02/03", T("2025-02-03")),
    ("03-02-2025", T("2025-02-03")),
    ("2025-02-03 14:14:53", T("2025-02-03 14:14:53")),
    ("03/02/2025 14:14", T("2025-02-03 14:14:00")),
])
def test_every_accepted_form(text, expected):
    assert parse_dates(pd.Series([text], dtype="str")).iloc[0] == expected


@pytest.mark.parametrize("text", ["Feb 30, 2025", "Sept 3, 2025", "Feb 3 2025", "2025-02-03T25:00:00Z",
                                  "2025-02-03T10:14:53+02:60", "2025-02-03T10:14:53+2", "02/13/2025",
                                  "Feb 3, 2025 14:14:53 PM", "2025-02-03T10:14:53 +02:00 x"])
def test_near_misses_are_not_read(text):
    assert pd.isna(parse_dates(pd.Series([text], dtype="str")).iloc[0])


def test_offsets_differ_within_one_column():
    # pandas refuses mixed offsets under one %z format; each value keeps its own local time.
    values = pd.Series(["2025-02-03T10:14:53.000+02:00", "2025-02-03T10:14:53.000+01:00",
                        "2025-02-03T08:14:53.000Z", "2025-02-03T10:14:53.000-0300"], dtype="str")
    assert parse_dates(values).tolist() == [T("2025-02-03 10:14:53")] * 4


def _tables(dates: list[str], times: list[str]) -> dict[str, pd.DataFrame]:
    n = len(dates)
    return {
        "centres": pd.DataFrame({"centre_id": ["C1"], "province": ["GP"], "setting": ["urban"]}),
        "partnerships": pd.DataFrame({"partnership_id": [f"P{i}" for i in range(n)], "centre_id": ["C1"] * n,
                                      "mou_signed_date": dates, "status": ["active"] * n}),
        "child_assessments": pd.DataFrame({
            "child_id": [f"K{i}" for i in range(n)], "centre_id": ["C1"] * n, "wave": ["baseline"] * n,
            "assessment_date": dates, "date_of_birth": ["2020-01-01"] * n, "sex": ["F"] * n,
            **{d: ["10"] * n for d in ("elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell")}}),
        "parent_survey": pd.DataFrame({"response_id": [f"R{i}" for i in range(len(times))],
                                       "centre_id": ["C1"] * len(times), "submission_time": times}),
    }


def test_a_datetime_in_a_date_column_is_its_local_calendar_date():
    instants = ["2025-09-29T21:59:59Z",        # 23:59:59 in Johannesburg: still the 29th
                "2025-09-29T22:00:00Z",        # local midnight: the 30th
                "2025-09-29T22:36:50.000Z",    # the 30th
                "2025-09-29T23:30:00+02:00",   # an explicit offset: the date as written
                "2025-09-29T23:30:00-05:00",   # (which would be the 30th in Johannesburg)
                "2025-09-29T00:10:00.000+0200",
                "Sep 29, 2025 11:59:59 PM",
                "2025-09-29 23:59:59"]
    clean = clean_all(_tables(instants, instants))
    expected = [T("2025-09-29"), T("2025-09-30"), T("2025-09-30"), T("2025-09-29"), T("2025-09-29"),
                T("2025-09-29"), T("2025-09-29"), T("2025-09-29")]
    assert clean.tables["child_assessments"]["assessment_date"].tolist() == expected
    assert clean.tables["partnerships"]["mou_signed_date"].tolist() == expected
    # submission_time keeps its (local) time
    assert clean.tables["parent_survey"]["submission_time"].tolist() == [
        T("2025-09-29 23:59:59"), T("2025-09-30 00:00:00"), T("2025-09-30 00:36:50"), T("2025-09-29 23:30:00"),
        T("2025-09-29 23:30:00"), T("2025-09-29 00:10:00"), T("2025-09-29 23:59:59"), T("2025-09-29 23:59:59")]
    # each is a change of form, logged with the value kept
    log = clean.log[(clean.log["table"] == "partnerships") & (clean.log["rule"] == "date_format_to_iso")]
    assert log[["old_value", "new_value"]].values.tolist()[:3] == [
        ["2025-09-29T21:59:59Z", "2025-09-29"], ["2025-09-29T22:00:00Z", "2025-09-30"],
        ["2025-09-29T22:36:50.000Z", "2025-09-30"]]


def test_local_timezone_is_a_rule():
    rules = {**load_rules("cleaning"), "local_timezone": "UTC"}
    clean = clean_all(_tables(["2025-09-29T22:36:50Z"], ["2025-09-29T22:36:50Z"]), rules)
    assert clean.tables["child_assessments"]["assessment_date"].tolist() == [T("2025-09-29")]
    assert clean.tables["parent_survey"]["submission_time"].tolist() == [T("2025-09-29 22:36:50")]
    assert parse_dates(pd.Series(["2025-09-29T22:36:50Z"]), local_timezone="Asia/Tokyo").iloc[0] == T(
        "2025-09-30 07:36:50")


def test_excel_serial_numbers_with_and_without_a_time():
    serials = ["45691", "45691.59375", "45691.0"]  # 45691 is 2025-02-03; .59375 of a day is 14:15:00
    clean = clean_all(_tables(serials, serials))
    assert clean.tables["child_assessments"]["assessment_date"].tolist() == [T("2025-02-03")] * 3
    assert clean.tables["parent_survey"]["submission_time"].tolist() == [
        T("2025-02-03"), T("2025-02-03 14:15:00"), T("2025-02-03")]
    rules = clean.log.loc[clean.log["table"] == "parent_survey", "rule"]
    assert (rules == "excel_serial_date").sum() == 3


def test_excel_date_cells_arrive_as_iso_text_and_parse(tmp_path):
    path = tmp_path / "parent_survey.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["response_id", "centre_id", "submission_time"])
    sheet.append(["R1", "C1", dt.datetime(2025, 2, 3, 14, 14, 53)])
    sheet.append(["R2", "C1", dt.datetime(2025, 9, 29)])
    sheet.append(["R3", "C1", dt.date(2025, 9, 30)])
    workbook.save(path)
    frame = read_table(path, "parent_survey")
    assert frame["submission_time"].tolist() == ["2025-02-03 14:14:53", "2025-09-29", "2025-09-30"]
    out = clean_table(frame, "parent_survey", CleaningLog())
    assert out["submission_time"].tolist() == [T("2025-02-03 14:14:53"), T("2025-09-29"), T("2025-09-30")]


_MOMENTS = [dt.datetime(2025, 2, 3, 14, 14, 53), dt.datetime(2019, 12, 31, 23, 59, 59),
            dt.datetime(2025, 9, 29, 0, 0, 1), dt.datetime(2025, 10, 6, 0, 0, 0)]
_DATES = [dt.date(2025, 2, 3), dt.date(2020, 2, 29), dt.date(1999, 12, 31), None]


@pytest.mark.parametrize("suffix", [".dta", ".sav"])
def test_stata_and_spss_dates_and_datetimes_arrive_as_iso_text_and_parse(tmp_path, suffix):
    survey = pd.DataFrame({"response_id": ["R1", "R2", "R3", "R4"], "centre_id": ["C1"] * 4,
                           "submission_time": _MOMENTS})
    mous = pd.DataFrame({"partnership_id": ["P1", "P2", "P3", "P4"], "centre_id": ["C1"] * 4,
                         "mou_signed_date": _DATES, "status": ["active"] * 4})
    if suffix == ".dta":  # Stata %tc (milliseconds since 1960) and %td (days since 1960)
        pyreadstat.write_dta(survey, tmp_path / "parent_survey.dta", variable_format={"submission_time": "%tc"})
        pyreadstat.write_dta(mous, tmp_path / "partnerships.dta", variable_format={"mou_signed_date": "%td"})
    else:  # SPSS DATETIME and DATE (seconds since 1582)
        pyreadstat.write_sav(survey, tmp_path / "parent_survey.sav",
                             variable_format={"submission_time": "DATETIME20"})
        pyreadstat.write_sav(mous, tmp_path / "partnerships.sav", variable_format={"mou_signed_date": "DATE11"})
    _, meta = (pyreadstat.read_dta if suffix == ".dta" else pyreadstat.read_sav)(
        str(tmp_path / f"partnerships{suffix}"), metadataonly=True)
    assert meta.original_variable_types["mou_signed_date"] in ("%td", "DATE11")

    times = read_table(tmp_path / f"parent_survey{suffix}", "parent_survey")
    assert times["submission_time"].tolist() == ["2025-02-03 14:14:53", "2019-12-31 23:59:59",
                                                 "2025-09-29 00:00:01", "2025-10-06"]
    dates = read_table(tmp_path / f"partnerships{suffix}", "partnerships")
    assert dates["mou_signed_date"].tolist() == ["2025-02-03", "2020-02-29", "1999-12-31", ""]

    log = CleaningLog()
    assert clean_table(times, "parent_survey", log)["submission_time"].tolist() == [T(m) for m in _MOMENTS]
    clean = clean_table(dates, "partnerships", log)["mou_signed_date"]
    assert clean.tolist()[:3] == [pd.Timestamp(d) for d in _DATES[:3]] and pd.isna(clean.iloc[3])
    logged = log.to_frame()
    assert not (logged["rule"] == "unparseable_date").any()
    # (a date-time at midnight is written as its date, the ISO date form of a datetime column)
    assert logged.loc[logged["rule"] == "date_format_to_iso", "old_value"].tolist() == ["2025-10-06"]


# ------------------------------------------------------------------ codebook date_formats


def _folder(tmp_path, codebook: str, *, assessment: str = "03.02.2025", birth: str = "03.02.2020"):
    data = tmp_path / "data"
    data.mkdir()
    (data / "centres.csv").write_text("centre_id,province,setting\nC1,GP,urban\n")
    (data / "partnerships.csv").write_text("partnership_id,centre_id,mou_signed_date,status\n"
                                           "P1,C1,01.06.2024,active\n")
    (data / "child_assessments.csv").write_text(
        "child_id,centre_id,wave,assessment_date,date_of_birth,sex,elom_gmd,elom_fmc,elom_enm,elom_cef,elom_ell\n"
        f"K1,C1,baseline,{assessment},{birth},F,1,2,3,4,5\n")
    (data / "parent_survey.csv").write_text("response_id,centre_id,submission_time\nR1,C1,03.02.2025 14:15\n")
    (data / "codebook.yml").write_text(codebook, encoding="utf-8")
    return data


def test_codebook_date_formats_for_a_table(tmp_path):
    raw = read_data_folder(_folder(tmp_path, 'tables:\n  child_assessments:\n    date_formats: ["%d.%m.%Y"]\n'))
    assert raw.rules["tables"]["child_assessments"]["date_formats"] == {
        "assessment_date": ["%d.%m.%Y"], "date_of_birth": ["%d.%m.%Y"]}
    clean = clean_all(raw.tables, raw.rules)
    children = clean.tables["child_assessments"]
    assert children.loc[0, ["assessment_date", "date_of_birth"]].tolist() == [T("2025-02-03"), T("2020-02-03")]
    # only that table: the partnerships' dotted date is not read
    assert pd.isna(clean.tables["partnerships"]["mou_signed_date"].iloc[0])
    assert load_rules("cleaning")["tables"]["child_assessments"].get("date_formats") is None  # rules untouched


def test_codebook_date_formats_for_one_column_come_first(tmp_path):
    codebook = ("tables:\n  child_assessments:\n    date_formats: {date_of_birth: ['%m/%d/%Y']}\n"
                "  parent_survey:\n    date_formats:\n      submission_time: ['%d.%m.%Y %H:%M']\n")
    raw = read_data_folder(_folder(tmp_path, codebook, assessment="02/03/2025", birth="02/03/2020"))
    clean = clean_all(raw.tables, raw.rules)
    children = clean.tables["child_assessments"]
    # month first only where the codebook says so; the rules' day-first formats elsewhere
    assert children["date_of_birth"].tolist() == [T("2020-02-03")]
    assert children["assessment_date"].tolist() == [T("2025-03-02")]
    assert clean.tables["parent_survey"]["submission_time"].tolist() == [T("2025-02-03 14:15")]


@pytest.mark.parametrize("value, message", [
    ("5", "'tables.child_assessments.date_formats' must be a list of date formats"),
    ("[]", "'tables.child_assessments.date_formats' must be a list of date formats"),
    ('["dd.mm.yyyy"]', "'dd.mm.yyyy' is not a date format"),
    ('["%d.%m.%Q"]', "uses %Q, which is not a strptime directive"),
    ('["%z %d.%m.%Y"]', "has %z before its end"),
    ("{sex: ['%d.%m.%Y']}", "names 'sex', which is not a date column of child_assessments"),
    ("{date_of_birth: 7}", "'tables.child_assessments.date_formats.date_of_birth' must be a list"),
])
def test_bad_codebook_date_formats_are_one_line_errors(tmp_path, value, message):
    folder = _folder(tmp_path, f"tables:\n  child_assessments:\n    date_formats: {value}\n")
    with pytest.raises(InputError) as err:
        load_codebook(folder)
    assert err.value.file.endswith("codebook.yml") and message in str(err.value)


def test_a_table_without_dates_takes_no_date_formats(tmp_path):
    with pytest.raises(InputError, match="tables.centres.date_formats: centres has no date column"):
        load_codebook(_folder(tmp_path, 'tables:\n  centres:\n    date_formats: ["%d.%m.%Y"]\n'))


def test_merge_rules_keeps_the_rules_and_adds_the_formats(tmp_path):
    codebook = load_codebook(_folder(tmp_path, "tables:\n  partnerships:\n    date_formats: '%d.%m.%Y'\n"))
    assert codebook.tables["partnerships"].date_formats == {"mou_signed_date": ("%d.%m.%Y",)}
    merged = merge_rules(load_rules("cleaning"), codebook)
    assert merged["tables"]["partnerships"]["date_formats"] == {"mou_signed_date": ["%d.%m.%Y"]}
    assert merged["date_formats"] == load_rules("cleaning")["date_formats"]
    assert "date_formats" not in load_rules("cleaning")["tables"]["partnerships"]


def test_many_distinct_values_parse_as_one_by_one():
    # The per-distinct-value parser agrees with strptime value by value on a mix of every form.
    rng = np.random.default_rng(7)
    moments = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 6 * 365 * 86400, 300), unit="s")
    forms = ["%Y-%m-%dT%H:%M:%S.000+02:00", "%Y-%m-%dT%H:%M:%S+0200", "%b %d, %Y %I:%M:%S %p", "%b %d, %Y",
             "%Y-%m-%d", "%d/%m/%Y %H:%M:%S"]
    text = pd.Series([m.strftime(forms[i % len(forms)]) for i, m in enumerate(moments)], dtype="str")
    expected = [dt.datetime.strptime(t.replace(".000+02:00", "").replace("+0200", ""), f.replace(
        ".000+02:00", "").replace("+0200", "")) for t, f in zip(text, [forms[i % len(forms)] for i in range(300)])]
    assert parse_dates(text).tolist() == [pd.Timestamp(e) for e in expected]
