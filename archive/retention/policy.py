"""Retention arithmetic: when may a study be deleted, and which rule says so.

Pure functions on dates, so the rules are tested without a database. The rules (the
clinic's `RetentionPolicy` supplies the numbers):

- every study is kept `adult_years` after its study date;
- a study of a minor (under 18 on the study date) is also kept until `minor_years` after
  the patient's 18th birthday;
- a study containing mammography (modality MG) is also kept `mammography_years` after
  its study date.

When several rules apply the LONGEST wins: retention periods are legal minimums, so
keeping longer is always allowed and keeping shorter never is. `retain_until` is the last
day the study must be kept; it is past retention from the day after.

Missing or unreadable dates: no study date -> the ingest date; no birth date -> the
patient is treated as an adult (the study date rules still apply).
"""

from dataclasses import dataclass
from datetime import date

ADULT, MINOR, MAMMOGRAPHY = "adult", "minor", "mammography"
RULE_CHOICES = [(ADULT, "Adult: years after the study date"),
                (MINOR, "Minor: years after the 18th birthday"),
                (MAMMOGRAPHY, "Mammography: years after the study date")]
AGE_OF_MAJORITY = 18


@dataclass(frozen=True)
class Periods:
    adult_years: int
    minor_years: int
    mammography_years: int


def parse_dicom_date(value: str | None) -> date | None:
    """A DICOM DA value (YYYYMMDD; old ACR-NEMA files write YYYY.MM.DD) or None if it is
    missing, partial or not a real date."""
    digits = "".join(ch for ch in (value or "") if ch.isdigit())
    if len(digits) != 8:
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def add_years(day: date, years: int) -> date:
    """`day` moved by whole years. Feb 29 in a year without one becomes Mar 1: for a
    retention date the later of the two candidates is the safe one, and for a birthday it
    is when the person has certainly reached the age."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # Feb 29 -> a year that is not a leap year
        return date(day.year + years, 3, 1)


def retention_compute(*, study_date: date, birth_date: date | None, modalities: set[str],
                      periods: Periods) -> tuple[date, str]:
    """(retain_until, rule): the latest date any applicable rule gives, and that rule."""
    candidates = [(add_years(study_date, periods.adult_years), ADULT)]
    if birth_date is not None:
        majority = add_years(birth_date, AGE_OF_MAJORITY)
        if study_date < majority:
            candidates.append((add_years(majority, periods.minor_years), MINOR))
    if "MG" in modalities:
        candidates.append((add_years(study_date, periods.mammography_years), MAMMOGRAPHY))
    # max() keeps the first of equal dates: the adult rule when a special one adds nothing.
    return max(candidates, key=lambda c: c[0])


def study_retention_compute(*, study_date: str, birth_date: str, modalities: str, ingested: date,
                            periods: Periods, extra_modality: str = "") -> tuple[date, str]:
    """The same from a study's stored DICOM strings (`modalities` backslash-separated)."""
    found = {m.strip().upper() for m in modalities.split("\\") if m.strip()}
    if extra_modality:
        found.add(extra_modality.strip().upper())
    return retention_compute(study_date=parse_dicom_date(study_date) or ingested,
                             birth_date=parse_dicom_date(birth_date), modalities=found, periods=periods)
