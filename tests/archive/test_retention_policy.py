"""Retention arithmetic (archive/retention/policy.py): pure functions, no database."""

from datetime import date

import pytest

from archive.retention.policy import (
    ADULT,
    MAMMOGRAPHY,
    MINOR,
    Periods,
    add_years,
    parse_dicom_date,
    study_retention_compute,
)

DEFAULT = Periods(adult_years=7, minor_years=7, mammography_years=10)
INGESTED = date(2024, 6, 1)


def compute(study_date="20200315", birth_date="19700101", modalities="CT", periods=DEFAULT, **kw):
    return study_retention_compute(study_date=study_date, birth_date=birth_date, modalities=modalities,
                                   ingested=INGESTED, periods=periods, **kw)


def test_adult_is_kept_seven_years_after_the_study():
    assert compute() == (date(2027, 3, 15), ADULT)


def test_minor_is_kept_until_seven_years_after_the_18th_birthday():
    # Born 2010-05-20, studied at 9: 18 on 2028-05-20, kept until 25 = 2035-05-20.
    assert compute(birth_date="20100520") == (date(2035, 5, 20), MINOR)


def test_minor_the_day_before_18_and_adult_on_the_birthday():
    assert compute(study_date="20200519", birth_date="20020520") == (date(2027, 5, 20), MINOR)
    assert compute(study_date="20200520", birth_date="20020520") == (date(2027, 5, 20), ADULT)
    # Studied at 17 and 11 months with minor_years shorter than adult_years: the adult rule
    # (7 years after the study) is later, and the longest rule wins.
    short_minor = Periods(adult_years=7, minor_years=1, mammography_years=10)
    assert compute(study_date="20200419", birth_date="20020520", periods=short_minor) == (date(2027, 4, 19), ADULT)


def test_mammography_is_kept_ten_years():
    assert compute(modalities="MG") == (date(2030, 3, 15), MAMMOGRAPHY)
    assert compute(modalities="CT\\MG\\SR") == (date(2030, 3, 15), MAMMOGRAPHY)
    assert compute(modalities="CT", extra_modality="mg") == (date(2030, 3, 15), MAMMOGRAPHY)


def test_longest_rule_wins_between_minor_and_mammography():
    # A 16-year-old's mammogram: 18 on 2022-01-01, +7 = 2029-01-01; MG: 2020+10 = 2030.
    assert compute(birth_date="20040101", modalities="MG") == (date(2030, 3, 15), MAMMOGRAPHY)
    # A 3-year-old: 18 in 2035, +7 = 2042, later than MG's 2030.
    assert compute(birth_date="20170101", modalities="MG") == (date(2042, 1, 1), MINOR)


@pytest.mark.parametrize("missing", ["", "2020", "202003", "20201345", "garbage!", None])
def test_missing_or_broken_study_date_uses_the_ingest_date(missing):
    assert compute(study_date=missing) == (date(2031, 6, 1), ADULT)


@pytest.mark.parametrize("missing", ["", "19", "19701301", None])
def test_missing_or_broken_birth_date_is_treated_as_adult(missing):
    assert compute(birth_date=missing) == (date(2027, 3, 15), ADULT)


def test_feb_29():
    # A leap-day study: 7 years later has no Feb 29; kept through Mar 1 (the later day).
    assert compute(study_date="20200229") == (date(2027, 3, 1), ADULT)
    assert add_years(date(2020, 2, 29), 4) == date(2024, 2, 29)
    # Born 2004-02-29: 18 on 2022-03-01 (2022 has no Feb 29), so still a minor on Feb 28.
    assert compute(study_date="20220228", birth_date="20040229") == (date(2029, 3, 1), MINOR)
    assert compute(study_date="20220301", birth_date="20040229") == (date(2029, 3, 1), ADULT)
    # Kept until 7 years past that 18th birthday: 2029-03-01.
    assert compute(study_date="20100101", birth_date="20040229") == (date(2029, 3, 1), MINOR)


def test_old_acr_nema_dates_with_dots():
    assert parse_dicom_date("2020.03.15") == date(2020, 3, 15)
    assert parse_dicom_date(" 20200315 ") == date(2020, 3, 15)


def test_configured_periods_are_used():
    periods = Periods(adult_years=10, minor_years=3, mammography_years=15)
    assert compute(periods=periods) == (date(2030, 3, 15), ADULT)
    assert compute(birth_date="20100520", periods=periods) == (date(2031, 5, 20), MINOR)
    assert compute(modalities="MG", periods=periods) == (date(2035, 3, 15), MAMMOGRAPHY)
