"""Retention dates at ingest, policy changes, the past-retention report and command, and
the promise that nothing is ever deleted automatically."""

import json
from datetime import date
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from archive.models import Instance, Study
from archive.retention.models import RetentionPolicy, StudyRetention
from archive.retention.policy import add_years
from archive.retention.services import (
    policy_get,
    policy_update,
    retention_fill_missing,
    retention_past,
)
from archive.storage.tier1 import tier1_path
from tenants.audit import Actor, AuditEvent
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.archive.study_rows import bulk_studies, make_study

pytestmark = pytest.mark.usefixtures("tier1")
ADMIN = Actor.system("test admin")


def retention(study) -> StudyRetention:
    return StudyRetention.objects.for_tenant(study.tenant).get(study=study)


def test_policy_is_created_with_defaults_on_first_use(tenant):
    assert not RetentionPolicy.objects.for_tenant(tenant).exists()
    policy = policy_get(tenant=tenant)
    assert (policy.adult_years, policy.minor_years, policy.mammography_years) == (7, 7, 10)
    assert policy_get(tenant=tenant).pk == policy.pk


def test_ingest_sets_the_retention_date(tenant):
    adult = ingest_series(tenant, study_date="20100115", birth_date="19700101")
    minor = ingest_series(tenant, study_date="20100115", birth_date="20050310")
    mammo = ingest_series(tenant, study_date="20100115", birth_date="19700101", modality="MG")
    assert (retention(adult).retain_until, retention(adult).rule) == (date(2017, 1, 15), "adult")
    assert (retention(minor).retain_until, retention(minor).rule) == (date(2030, 3, 10), "minor")
    assert (retention(mammo).retain_until, retention(mammo).rule) == (date(2020, 1, 15), "mammography")


def test_ingest_without_study_date_counts_from_the_ingest_date(tenant):
    study = ingest_series(tenant, blank_study_date=True, birth_date="")
    assert study.study_date == ""
    assert retention(study).retain_until == add_years(timezone.localdate(), 7)
    assert retention(study).rule == "adult"


def test_a_later_mammography_series_extends_the_study(tenant):
    study = ingest_series(tenant, study_date="20100115")
    assert retention(study).retain_until == date(2017, 1, 15)
    ingest_series(tenant, study_uid=study.study_instance_uid, study_date="20100115", modality="MG", seed=3)
    row = retention(study)
    assert (row.retain_until, row.rule, row.mammography) == (date(2020, 1, 15), "mammography", True)
    assert StudyRetention.objects.for_tenant(tenant).count() == 1


def test_policy_change_recomputes_every_study_and_is_audited(tenant):
    adult = ingest_series(tenant, study_date="20100115")
    mammo = ingest_series(tenant, study_date="20100115", modality="MG")
    changes, recomputed = policy_update(tenant=tenant, actor=ADMIN, adult_years=10, minor_years=7,
                                        mammography_years=12)
    assert changes == {"adult_years": [7, 10], "mammography_years": [10, 12]} and recomputed == 2
    assert retention(adult).retain_until == date(2020, 1, 15)
    assert retention(mammo).retain_until == date(2022, 1, 15)
    event = AuditEvent.objects.for_tenant(tenant).filter(action="retention.policy_changed").get()
    assert event.detail["changes"]["adult_years"] == [7, 10] and event.detail["studies_recomputed"] == 2
    # No change: nothing recomputed, nothing audited.
    assert policy_update(tenant=tenant, actor=ADMIN, adult_years=10) == ({}, 0)
    assert AuditEvent.objects.for_tenant(tenant).filter(action="retention.policy_changed").count() == 1


def test_policy_refuses_nonsense(tenant):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        policy_update(tenant=tenant, actor=ADMIN, adult_years=0)
    assert policy_get(tenant=tenant).adult_years == 7


def test_policy_change_recomputes_many_studies_in_batches(tenant, django_assert_max_num_queries):
    bulk_studies(tenant, 5000, patients=50)
    retention_fill_missing(tenant=tenant)
    # Reads and upserts in batches (2000 per query; SQLite caps an upsert at ~160 rows):
    # a bounded number of queries, never one per study.
    with django_assert_max_num_queries(60):
        _, recomputed = policy_update(tenant=tenant, actor=ADMIN, adult_years=20)
    assert recomputed == 5000
    study = Study.objects.for_tenant(tenant).order_by("pk").first()
    year = int(study.study_date[:4])
    assert retention(study).retain_until.year == year + 20


def test_report_lists_only_studies_past_retention(tenant, other_tenant):
    old = ingest_series(tenant, study_date=past(8))
    ingest_series(tenant, study_date=past(6))  # within 7 years
    old_mammo = ingest_series(tenant, study_date=past(9), modality="MG")  # MG: 10 years
    ingest_series(other_tenant, study_date=past(20))
    assert [r.study_id for r in retention_past(tenant=tenant)] == [old.pk]
    # A study indexed without ingest gets its date when the report runs.
    legacy = make_study(tenant, study_date=past(30))
    assert retention_fill_missing(tenant=tenant) == 1
    assert [r.study_id for r in retention_past(tenant=tenant)] == [legacy.pk, old.pk]
    assert old_mammo.pk not in [r.study_id for r in retention_past(tenant=tenant)]


def test_command_prints_the_report_as_json(tenant):
    old = ingest_series(tenant, study_date=past(8), patient_name="Secret^Patient")
    ingest_series(tenant, study_date=past(1))
    out = StringIO()
    call_command("retention_report", tenant.slug, "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["past_retention"] == 1
    assert report["studies"][0]["study_instance_uid"] == old.study_instance_uid
    assert report["studies"][0]["rule"] == "adult" and report["studies"][0]["num_instances"] == 2
    assert "Secret" not in out.getvalue()  # no patient names in terminal output
    out = StringIO()
    call_command("retention_report", tenant.slug, "--json", "--date", "1990-01-01", stdout=out)
    assert json.loads(out.getvalue())["past_retention"] == 0
    with pytest.raises(CommandError):
        call_command("retention_report", "no-such-clinic")
    with pytest.raises(CommandError):
        call_command("retention_report", tenant.slug, "--date", "yesterday")


def test_nothing_is_deleted_automatically(tenant):
    study = ingest_series(tenant, study_date=past(40))
    keys = list(Instance.objects.for_tenant(tenant).values_list("storage_key", flat=True))
    call_command("retention_report", tenant.slug, stdout=StringIO())
    policy_update(tenant=tenant, actor=ADMIN, adult_years=1)
    assert [r.study_id for r in retention_past(tenant=tenant)] == [study.pk]
    # Still all there: rows and files.
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
    assert Instance.objects.for_tenant(tenant).count() == 2
    assert all(tier1_path(k).exists() for k in keys)
    # And no periodic task that could delete: beat runs only sweeps, audits and evictions
    # (tier-1 eviction removes cached copies only after both regions are verified).
    tasks = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    # Except the one that runs deletions a member asked for and nobody cancelled, in a clinic
    # with a single admin (test_deletion_cooling_off.py): nothing anyone did not ask for.
    tasks.discard("archive.deletions_due")
    assert not any(word in task for task in tasks for word in ("delet", "retention", "purge"))
