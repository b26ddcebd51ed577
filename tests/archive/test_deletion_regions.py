"""Deletion against real storage: two SeaweedFS regions (the durable-storage test
fixtures), encrypted copies made by the real pipeline, then an approved deletion removes
them from tier 1 and both regions -- or, when a region is down, says so on the tombstone
and finishes on retry."""

import pytest
from django.test import Client
from django.urls import reverse

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.retention.deletion import deletion_request_approve, deletion_request_create
from archive.retention.models import StudyTombstone
from archive.storage import pipeline
from archive.storage.models import InstanceCopy
from archive.storage.tier1 import tier1_path
from cloudpacs.objectstore.objects import object_exists
from tenants import roles
from tenants.audit import Actor
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.servers import free_port
from tests.storage.conftest import master_key, s3_regions, seaweed  # noqa: F401

pytestmark = pytest.mark.usefixtures("tier1", "master_key", "s3_regions")
ACTOR = Actor.system("test")


def archived_study(tenant):
    study = ingest_series(tenant, study_date=past(8), n=2)
    for row in Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(done_at=None):
        assert pipeline.outbox_drive_inline(row.pk)
    keys = list(Instance.objects.for_tenant(tenant).filter(study=study).values_list("storage_key", flat=True))
    assert all(object_exists(r, k) for r in ("primary", "secondary") for k in keys)
    assert InstanceCopy.objects.for_tenant(tenant).filter(state="verified").count() == 4
    return study, keys


def two_admins(tenant, owner, make_member):
    return owner, make_member(tenant, roles.ADMIN)


def _region_endpoint(settings, region, endpoint):
    current = settings.STORAGES[region]
    settings.STORAGES = {**settings.STORAGES, region: {
        **current, "OPTIONS": {**current["OPTIONS"], "endpoint_url": endpoint}}}


def test_approval_removes_objects_from_tier1_and_both_regions(
        tenant, owner, make_member, django_capture_on_commit_callbacks):
    study, keys = archived_study(tenant)
    requester, approver = two_admins(tenant, owner, make_member)
    request = deletion_request_create(tenant=tenant, study=study, user=requester, reason="test",
                                      override_retention=False, actor=ACTOR)
    with django_capture_on_commit_callbacks(execute=True):
        tomb = deletion_request_approve(tenant=tenant, request_id=request.pk, user=approver, actor=ACTOR)
    assert not any(object_exists(r, k) for r in ("primary", "secondary") for k in keys)
    assert not any(tier1_path(k).exists() for k in keys)
    assert not InstanceCopy.objects.for_tenant(tenant).exists()
    assert not Outbox.objects.for_tenant(tenant).filter(kind="archive").exists()  # a charge and its work outlive the study
    tomb.refresh_from_db()
    assert tomb.objects_purged_at is not None and sorted(tomb.storage_keys) == sorted(keys)


def test_a_region_down_leaves_the_purge_unfinished_until_retried(
        tenant, owner, make_member, settings, login, request, django_capture_on_commit_callbacks):
    servers = request.getfixturevalue("seaweed")
    study, keys = archived_study(tenant)
    requester, approver = two_admins(tenant, owner, make_member)
    pending = deletion_request_create(tenant=tenant, study=study, user=requester, reason="test",
                                      override_retention=False, actor=ACTOR)
    _region_endpoint(settings, "secondary", f"http://127.0.0.1:{free_port()}")  # nothing listens
    with django_capture_on_commit_callbacks(execute=True):
        tomb = deletion_request_approve(tenant=tenant, request_id=pending.pk, user=approver, actor=ACTOR)
    tomb.refresh_from_db()
    # The study is deleted (rows committed); the secondary's copies are not yet.
    assert tomb.objects_purged_at is None and "secondary" in tomb.purge_error
    assert not any(object_exists("primary", k) for k in keys)
    client = login(approver, the_client=Client())
    listing = client.get(reverse("archive:deletion_requests", kwargs={"tenant_slug": tenant.slug}))
    assert b"objects left in storage" in listing.content
    _region_endpoint(settings, "secondary", servers["secondary"].endpoint)
    assert all(object_exists("secondary", k) for k in keys)
    response = client.post(reverse("archive:tombstone_purge",
                                   kwargs={"tenant_slug": tenant.slug, "tombstone_id": tomb.pk}))
    assert response.status_code == 302
    assert not any(object_exists("secondary", k) for k in keys)
    assert StudyTombstone.objects.for_tenant(tenant).get().objects_purged_at is not None
