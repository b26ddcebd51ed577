"""Helpers for the retention and deletion tests: real studies through the ingest service."""

from datetime import date

import pytest

from archive.ingest.service import Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Study
from tenants.audit import Actor
from tests.dicom_factory import make_ct_series, to_bytes


@pytest.fixture
def tier1(settings, tmp_path):
    settings.TIER1_PATH = str(tmp_path / "tier1")
    settings.INGEST_TMP_DIR = str(tmp_path / "tmp")
    return tmp_path / "tier1"


def ingest_series(tenant, n=2, *, study_date="20100115", birth_date="19700101", modality="CT",
                  study_uid=None, seed=0, blank_study_date=False, **kwargs):
    datasets = make_ct_series(n, rows=16, cols=16, study_uid=study_uid, study_date=study_date,
                              birth_date=birth_date, modality=modality, seed=seed, **kwargs)
    for ds in datasets:
        if blank_study_date:
            ds.StudyDate = ""
        result = instance_ingest(tenant=tenant, spooled=spool_chunks([to_bytes(ds)]),
                                 actor=Actor.system("test"))
        assert result.outcome == Outcome.STORED, result.reason
    return Study.objects.for_tenant(tenant).get(study_instance_uid=datasets[0].StudyInstanceUID)


def past(years: int) -> str:
    """A DICOM date `years` before today (same month and day; Feb 29 -> Feb 28)."""
    today = date.today()
    day = 28 if (today.month, today.day) == (2, 29) else today.day
    return f"{today.year - years:04d}{today.month:02d}{day:02d}"
