"""Storage classes: a clinic's copies older than its policy's days move to the colder class
in both real SeaweedFS regions, each confirmed by the store, and stay readable; the
operator's page shows bytes per class and the estimated cost."""

from datetime import timedelta

import pytest
from django.utils import timezone

from archive.models import Instance
from archive.storage.classes import cold_move
from archive.storage.integrity import copy_check
from archive.storage.models import InstanceCopy
from archive.storage.policy import policy_update
from tenants.audit import Actor
from tests.conftest import PASSWORD
from tests.storage.test_pipeline import drive_all, ingest

ADMIN = Actor.system("test")


def _age(instance, days: int) -> None:
    Instance.objects.for_tenant(instance.tenant).filter(pk=instance.pk).update(
        created_at=timezone.now() - timedelta(days=days))


def _head_class(seaweed, region: str, key: str) -> str:
    server = seaweed[region]
    return server.client().head_object(Bucket=server.bucket, Key=key).get("StorageClass") or "STANDARD"


def test_old_copies_move_to_the_cold_class_and_stay_readable(tenant, s3_regions, seaweed):
    policy_update(tenant=tenant, actor=ADMIN, cold_after_days=30)
    old, new = ingest(tenant, 2)
    drive_all(tenant)
    _age(old, 40)
    assert cold_move()["moved"] == 2  # the old instance's copy in each region
    for region in ("primary", "secondary"):
        assert _head_class(seaweed, region, old.storage_key) == "STANDARD_IA"
        assert _head_class(seaweed, region, new.storage_key) == "STANDARD"
        assert copy_check(Instance.objects.for_tenant(tenant).get(pk=old.pk), region).ok
    assert set(InstanceCopy.objects.for_tenant(tenant).filter(instance=old).values_list("storage_class", flat=True)) \
        == {"STANDARD_IA"}
    assert cold_move()["moved"] == 0  # done once


def test_a_clinic_without_the_policy_keeps_its_copies_standard(tenant, s3_regions, seaweed):
    (instance,) = ingest(tenant, 1)
    drive_all(tenant)
    _age(instance, 4000)
    assert cold_move()["moved"] == 0
    assert _head_class(seaweed, "primary", instance.storage_key) == "STANDARD"


def test_local_folder_regions_have_no_classes(tenant, settings, tmp_path):
    from cloudpacs.settings import _region_storage

    for region in ("primary", "secondary"):
        settings.STORAGES = {**settings.STORAGES, region: {
            **_region_storage(region), "OPTIONS": {"location": str(tmp_path / region), "allow_overwrite": True}}}
    policy_update(tenant=tenant, actor=ADMIN, cold_after_days=30)
    (instance,) = ingest(tenant, 1)
    drive_all(tenant)
    _age(instance, 40)
    result = cold_move()
    assert result["moved"] == 0 and result["regions_without_classes"] == ["primary", "secondary"]


@pytest.fixture
def ops(login, db):
    from tenants.models import User

    return login(User.objects.create_superuser("ops@cloudpacs.test", PASSWORD))


def test_operator_page_shows_bytes_per_class_and_the_cost(ops, client, tenant, s3_regions, settings):
    settings.STORAGE_PRICES_GB_MONTH = "STANDARD=1000,STANDARD_IA=500"  # large enough to show in cents
    policy_update(tenant=tenant, actor=ADMIN, cold_after_days=30)
    old, _ = ingest(tenant, 2)
    drive_all(tenant)
    _age(old, 40)
    cold_move()
    page = client.get("/admin/storage/instancecopy/classes/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Acme Clinic" in text and "STANDARD_IA" in text and "Total estimated per month" in text
    ia = sum(InstanceCopy.objects.for_tenant(tenant).filter(storage_class="STANDARD_IA")
             .values_list("cipher_size", flat=True))
    assert f"{ia / 1e9 / 2 * 500:.2f}" in text  # one region's IA copy: half the IA bytes


def test_the_policy_page_sets_the_days_audited(client, tenant, make_member, login):
    from tenants import roles
    from tenants.audit import AuditEvent

    login(make_member(tenant, roles.ADMIN))
    assert client.post("/t/acme/settings/storage/", {"compression_syntax": "", "cold_after_days": "90"}).status_code == 302
    event = AuditEvent.objects.for_tenant(tenant).get(action="storage.policy_changed")
    assert event.detail == {"changes": {"cold_after_days": [None, 90]}}
    assert client.post("/t/acme/settings/storage/", {"cold_after_days": "3"}).status_code == 400  # too soon
