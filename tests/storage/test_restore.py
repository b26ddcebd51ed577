"""The whole archive comes back from the secondary region alone, bit for bit."""

import uuid
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db.models import ProtectedError, RestrictedError

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.storage import keys, pipeline
from archive.storage.reader import open_instance
from archive.storage.selectors import storage_status
from archive.storage.tier1 import tier1_path
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes


@pytest.fixture
def fresh_buckets(s3_regions, seaweed, settings):
    """Buckets of this test only: a restore reads everything in a region."""
    storages = dict(settings.STORAGES)
    for region, server in seaweed.items():
        bucket = f"restore-{region[:3]}-{uuid.uuid4().hex[:8]}"
        server.client().create_bucket(Bucket=bucket)
        storages[region] = {**storages[region], "OPTIONS": {**storages[region]["OPTIONS"], "bucket_name": bucket}}
    settings.STORAGES = storages
    keys._exported.clear()
    buckets = {region: storages[region]["OPTIONS"]["bucket_name"] for region in seaweed}
    yield buckets
    keys._exported.clear()
    for region, bucket in buckets.items():  # each bucket holds volumes of the server's few
        client = seaweed[region].client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


def _wipe_index(tenant):
    """Delete every archive row of the clinic (as if the database were lost); clinics stay."""
    models = [m for config in apps.get_app_configs() if config.name.split(".")[0] == "archive"
              for m in config.get_models() if hasattr(m, "unscoped")]
    for _ in range(len(models) + 1):
        left = False
        for model in models:
            try:
                model.unscoped.filter(tenant=tenant).delete()
            except (ProtectedError, RestrictedError):
                left = True
        if not left:
            return
    raise AssertionError("could not wipe the archive index")


def test_restore_from_secondary_alone(tenant, fresh_buckets, seaweed, tier1):
    originals = {}
    for ds in [*make_ct_series(2), *make_ct_series(1, patient_name="Roe^Richard", patient_id="P2")]:
        originals[ds.SOPInstanceUID] = to_bytes(ds)
        assert ingest_bytes(tenant, originals[ds.SOPInstanceUID]).ok
    keys.data_key_rotate(tenant=tenant)  # objects under two key versions
    late = make_ct_series(1, seed=3)[0]
    originals[late.SOPInstanceUID] = to_bytes(late)
    ingest_bytes(tenant, originals[late.SOPInstanceUID])
    for row in Outbox.objects.for_tenant(tenant):
        assert pipeline.outbox_drive_inline(row.pk)

    # Disaster: the index, tier 1 and the whole primary region are gone.
    _wipe_index(tenant)
    for path in sorted(tier1.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    primary = seaweed["primary"].client()
    for item in primary.list_objects_v2(Bucket=fresh_buckets["primary"]).get("Contents", []):
        primary.delete_object(Bucket=fresh_buckets["primary"], Key=item["Key"])
    assert not Instance.objects.for_tenant(tenant).exists()

    out = StringIO()
    call_command("restore_from_region", "secondary", stdout=out)
    assert "restore: 4/4 objects, 4 restored" in out.getvalue()

    restored = {i.sop_instance_uid: i for i in Instance.objects.for_tenant(tenant)}
    assert set(restored) == set(originals)
    status = storage_status(tenant=tenant)
    assert (status["instances"], status["primary_verified"], status["secondary_verified"]) == (4, 4, 4)
    for uid, instance in restored.items():
        tier1_path(instance.storage_key).unlink()  # read back through the rebuilt primary
        with open_instance(instance) as fh:
            assert fh.read() == originals[uid]
    assert {s.patient_name for s in Instance.objects.for_tenant(tenant)[0].study.__class__.objects
            .for_tenant(tenant)} == {"Doe^Jane", "Roe^Richard"}

    again = StringIO()
    call_command("restore_from_region", "secondary", stdout=again)
    assert "0 restored, 4 already indexed" in again.getvalue()
    assert Instance.objects.for_tenant(tenant).count() == 4


def test_restore_with_the_wrong_master_key_restores_nothing(tenant, fresh_buckets, settings):
    import base64
    import os

    ingest_bytes(tenant, to_bytes(make_ct_series(1)[0]))
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get().pk)
    _wipe_index(tenant)
    settings.CLOUDPACS_MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
    keys.master_key.cache_clear()
    with pytest.raises(keys.KeyUnavailable, match="CLOUDPACS_MASTER_KEY"):
        call_command("restore_from_region", "secondary", stdout=StringIO())
    assert not Instance.objects.for_tenant(tenant).exists()


def test_restore_keeps_deleted_studies_gone(tenant, owner, make_member, fresh_buckets, monkeypatch,
                                            django_capture_on_commit_callbacks):
    """A study deleted by two admins whose objects a region still holds (its purge has not
    finished there) does not come back with a restore."""
    from archive.models import Study
    from archive.retention import purge
    from archive.retention.deletion import deletion_request_approve, deletion_request_create
    from archive.retention.models import DeletionRequest, StudyTombstone
    from tenants import roles
    from tenants.audit import Actor

    kept, gone = make_ct_series(1, patient_id="KEEP"), make_ct_series(2, patient_id="GONE")
    for ds in [*kept, *gone]:
        assert ingest_bytes(tenant, to_bytes(ds)).ok
    for row in Outbox.objects.for_tenant(tenant):
        assert pipeline.outbox_drive_inline(row.pk)
    # The regions are unreachable for the purge: the objects stay in both.
    monkeypatch.setattr(purge, "storage_keys_delete", lambda keys: list(keys))
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=gone[0].StudyInstanceUID)
    approver = make_member(tenant, roles.ADMIN)  # a member before the request: may approve it
    request = deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate upload",
                                      override_retention=True, actor=Actor.system("test"))
    with django_capture_on_commit_callbacks(execute=True):
        deletion_request_approve(tenant=tenant, request_id=request.pk, user=approver,
                                 actor=Actor.system("test"))
    assert StudyTombstone.objects.for_tenant(tenant).get().objects_purged_at is None

    # The index is lost; the deletion records survive (they are part of what a restore reads).
    tombstones = list(StudyTombstone.objects.for_tenant(tenant).values())
    requests = list(DeletionRequest.objects.for_tenant(tenant).values())
    _wipe_index(tenant)
    DeletionRequest.unscoped.bulk_create([DeletionRequest(**r) for r in requests])
    StudyTombstone.unscoped.bulk_create([StudyTombstone(**t) for t in tombstones])

    out = StringIO()
    call_command("restore_from_region", "secondary", stdout=out)
    assert "1 restored" in out.getvalue() and "2 of deleted studies kept gone" in out.getvalue()
    assert {i.study.patient_identifier for i in Instance.objects.for_tenant(tenant)} == {"KEEP"}


def _disaster(tenants, tier1, seaweed, fresh_buckets):
    """The index, tier 1 and the whole primary region are gone; the clinic rows stay."""
    for clinic in tenants:
        _wipe_index(clinic)
    for path in sorted(tier1.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    primary = seaweed["primary"].client()
    for item in primary.list_objects_v2(Bucket=fresh_buckets["primary"]).get("Contents", []):
        primary.delete_object(Bucket=fresh_buckets["primary"], Key=item["Key"])


def _recreate_in_other_order(first, second, *, with_uuids=True):
    """As if both clinics were re-created, the second one first, in a new database (with
    their uuids, as create_tenant --uuid does, or new ones): each numeric id now belongs to
    the other clinic. Swapping the rows' identities does it without deleting the clinics'
    append-only audit events."""
    import uuid as uuidlib

    from tenants.models import Tenant

    idents = [(t.slug, t.name, t.uuid if with_uuids else uuidlib.uuid4()) for t in (first, second)]
    Tenant.objects.filter(pk=first.pk).update(slug="moving", uuid=uuidlib.uuid4())
    Tenant.objects.filter(pk=second.pk).update(slug=idents[0][0], name=idents[0][1], uuid=idents[0][2])
    Tenant.objects.filter(pk=first.pk).update(slug=idents[1][0], name=idents[1][1], uuid=idents[1][2])
    return Tenant.objects.get(pk=second.pk), Tenant.objects.get(pk=first.pk)


def _archive_two_clinics(clinics):
    """A two-slice study per clinic in both regions; returns {slug: StudyInstanceUID}."""
    studies = {}
    for clinic in clinics:
        series = make_ct_series(2, patient_id=f"{clinic.slug.upper()}-1")
        studies[clinic.slug] = series[0].StudyInstanceUID
        for ds in series:
            assert ingest_bytes(clinic, to_bytes(ds)).ok
        for row in Outbox.objects.for_tenant(clinic):
            assert pipeline.outbox_drive_inline(row.pk)
    return studies


def _studies_of(clinic):
    from archive.models import Study

    return set(Study.objects.for_tenant(clinic).values_list("study_instance_uid", flat=True))


def test_restore_into_clinics_recreated_in_the_other_order(tenant, other_tenant, fresh_buckets, seaweed,
                                                           tier1):
    studies = _archive_two_clinics([tenant, other_tenant])
    _disaster([tenant, other_tenant], tier1, seaweed, fresh_buckets)
    acme, other = _recreate_in_other_order(tenant, other_tenant)
    assert (acme.slug, other.slug) == ("acme", "other") and acme.pk == other_tenant.pk

    one = StringIO()  # one clinic first: only its own objects count
    call_command("restore_from_region", "secondary", "--tenant", "other", stdout=one)
    assert "restore: 2/2 objects, 2 restored" in one.getvalue()
    assert (_studies_of(other), _studies_of(acme)) == ({studies["other"]}, set())

    out = StringIO()
    call_command("restore_from_region", "secondary", stdout=out)
    assert "restore: 4/4 objects, 2 restored, 2 already indexed" in out.getvalue()
    for clinic in (acme, other):
        assert _studies_of(clinic) == {studies[clinic.slug]}
        assert Instance.objects.for_tenant(clinic).count() == 2
        status = storage_status(tenant=clinic)
        assert (status["primary_verified"], status["secondary_verified"]) == (2, 2)
        for instance in Instance.objects.for_tenant(clinic):  # readable in its clinic
            tier1_path(instance.storage_key).unlink()
            with open_instance(instance) as fh:
                assert fh.read(132)[128:] == b"DICM"


def test_restore_refuses_objects_whose_clinic_is_not_here(tenant, other_tenant, fresh_buckets, seaweed,
                                                          tier1):
    """Clinics re-created under their slugs but without their uuids: a slug alone does not
    prove it is the same clinic, so nothing is restored into either, and the command says
    which objects it refused and exits non-zero."""
    from django.core.management.base import CommandError

    _archive_two_clinics([tenant, other_tenant])
    _disaster([tenant, other_tenant], tier1, seaweed, fresh_buckets)
    acme, other = _recreate_in_other_order(tenant, other_tenant, with_uuids=False)

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="4 refused"):
        call_command("restore_from_region", "secondary", stdout=out, stderr=err)
    assert "0 restored" in out.getvalue() and "4 refused" in out.getvalue()
    refused = [line for line in err.getvalue().splitlines() if line.startswith("refused: ")]
    assert len(refused) == 4
    assert sum(f"create_tenant acme --uuid {tenant.uuid}" in line for line in refused) == 2
    assert not any(name in err.getvalue() for name in ("Doe", "Jane", "ACME-1", "OTHER-1"))
    assert not Instance.unscoped.filter(tenant__in=[acme, other]).exists()


def _make_key_documents_old_format(region_client, bucket):
    """Rewrite the region's key documents as archives written before keys were bound to
    the clinic's uuid: wrapped under the numeric clinic id, no uuid recorded."""
    import base64
    import json
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from archive.storage.models import DataKey

    for item in region_client.list_objects_v2(Bucket=bucket, Prefix="_keys/")["Contents"]:
        doc = json.loads(region_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
        row = DataKey.unscoped.get(pk=doc["key_id"])
        key = keys.data_key_for(tenant_id=row.tenant_id, key_id=row.pk)
        nonce = os.urandom(12)
        aad = f"cloudpacs-data-key:{row.tenant_id}:{row.version}".encode()
        doc["wrapped"] = base64.b64encode(nonce + AESGCM(keys.master_key()).encrypt(nonce, key, aad)).decode()
        del doc["tenant_uuid"]
        region_client.put_object(Bucket=bucket, Key=item["Key"], Body=json.dumps(doc).encode())


def test_restore_of_old_format_keys_matches_clinics_by_slug(tenant, other_tenant, fresh_buckets, seaweed,
                                                            tier1):
    """An archive written before keys were bound to uuids restores by the slug its key
    documents record, re-wrapped for the clinic found, even re-created in another order."""
    from archive.storage.models import DataKey

    studies = _archive_two_clinics([tenant, other_tenant])
    _make_key_documents_old_format(seaweed["secondary"].client(), fresh_buckets["secondary"])
    _disaster([tenant, other_tenant], tier1, seaweed, fresh_buckets)
    acme, other = _recreate_in_other_order(tenant, other_tenant, with_uuids=False)

    out = StringIO()
    call_command("restore_from_region", "secondary", stdout=out)
    assert "restore: 4/4 objects, 4 restored" in out.getvalue()
    for clinic in (acme, other):
        assert _studies_of(clinic) == {studies[clinic.slug]}
        assert not any(keys.is_legacy(row.wrapped) for row in DataKey.objects.for_tenant(clinic))


def test_upgrade_data_keys_rebinds_old_keys_to_the_clinic_uuid(tenant, fresh_buckets, seaweed):
    """The migration path for a deployed archive: old-format keys are re-wrapped and their
    key documents replaced in both regions, then restore matches them by uuid."""
    import json

    from archive.storage.models import DataKey

    _archive_two_clinics([tenant])
    _make_key_documents_old_format(seaweed["secondary"].client(), fresh_buckets["secondary"])
    row = DataKey.objects.for_tenant(tenant).get()
    key = keys.data_key_for(tenant_id=tenant.pk, key_id=row.pk)
    doc = json.loads(seaweed["secondary"].client().get_object(
        Bucket=fresh_buckets["secondary"], Key=f"_keys/{row.pk}.json")["Body"].read())
    DataKey.unscoped.filter(pk=row.pk).update(wrapped=keys.base64.b64decode(doc["wrapped"]))
    assert keys.data_key_for(tenant_id=tenant.pk, key_id=row.pk) == key  # old rows still unwrap

    out = StringIO()
    call_command("upgrade_data_keys", stdout=out)
    assert "1 data key" in out.getvalue()
    assert not keys.is_legacy(DataKey.unscoped.get(pk=row.pk).wrapped)
    assert keys.data_key_for(tenant_id=tenant.pk, key_id=row.pk) == key
    for region, server in seaweed.items():
        doc = json.loads(server.client().get_object(
            Bucket=fresh_buckets[region], Key=f"_keys/{row.pk}.json")["Body"].read())
        assert doc["tenant_uuid"] == str(tenant.uuid) and not keys.is_legacy(keys.base64.b64decode(doc["wrapped"]))


def test_new_data_keys_after_a_restore_into_a_new_database(tenant, make_tenant, fresh_buckets, seaweed, tier1):
    """Keys come back with their ids; a new database's id sequence must move past them, or
    the next clinic's first key (or a rotation) collides with a restored one."""
    from django.db import connection

    from archive.storage.models import DataKey

    _archive_two_clinics([tenant])
    _disaster([tenant], tier1, seaweed, fresh_buckets)
    with connection.cursor() as cursor:  # as in a new database: ids start again at 1
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence('archive_datakey', 'id'), 1, false)")
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = 'archive_datakey'")
    call_command("restore_from_region", "secondary", stdout=StringIO())
    restored = set(DataKey.unscoped.values_list("pk", flat=True))
    newcomer_key, _ = keys.active_data_key(tenant=make_tenant("newcomer"))
    rotated = keys.data_key_rotate(tenant=tenant)
    assert newcomer_key not in restored and rotated.pk not in restored | {newcomer_key}


def test_renamed_objects_and_forged_key_documents_do_not_move_studies(tenant, other_tenant, fresh_buckets,
                                                                     seaweed, tier1):
    """The clinic comes from the key the object decrypts with, bound to the clinic's uuid:
    an object moved under another clinic's number still goes to its own clinic, and a key
    document edited to name another clinic is refused with its objects."""
    import json

    from django.core.management.base import CommandError

    from archive.storage.models import DataKey

    studies = _archive_two_clinics([tenant, other_tenant])
    client, bucket = seaweed["secondary"].client(), fresh_buckets["secondary"]
    moved = Instance.objects.for_tenant(tenant).first().storage_key
    renamed = f"{other_tenant.pk}/{moved.split('/', 1)[1]}"
    client.copy_object(Bucket=bucket, Key=renamed, CopySource={"Bucket": bucket, "Key": moved})
    client.delete_object(Bucket=bucket, Key=moved)
    forged = f"_keys/{DataKey.objects.for_tenant(other_tenant).get().pk}.json"
    doc = json.loads(client.get_object(Bucket=bucket, Key=forged)["Body"].read())
    doc.update(tenant_uuid=str(tenant.uuid), tenant_slug=tenant.slug, tenant_id=tenant.pk)
    client.put_object(Bucket=bucket, Key=forged, Body=json.dumps(doc).encode())
    _disaster([tenant, other_tenant], tier1, seaweed, fresh_buckets)

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 refused"):
        call_command("restore_from_region", "secondary", stdout=out, stderr=err)
    assert "2 restored" in out.getvalue()
    assert _studies_of(tenant) == {studies["acme"]} and not _studies_of(other_tenant)
    assert Instance.objects.for_tenant(tenant).filter(storage_key=renamed).exists()
    assert err.getvalue().count("is not a key of clinic 'acme'") == 2


def test_restore_keeps_corrections(tenant, owner, fresh_buckets):
    """A corrected image's earlier header stays in the regions (for a revert); a restore
    brings back the corrected one, not whichever of the two it lists first."""
    from archive.corrections.models import Correction, HeaderVersion
    from archive.corrections.services import correct_demographics
    from archive.models import Study
    from tenants.audit import Actor

    series = make_ct_series(2, patient_name="Wrnog^Name", patient_id="CORR")
    for ds in series:
        assert ingest_bytes(tenant, to_bytes(ds)).ok
    for row in Outbox.objects.for_tenant(tenant):
        assert pipeline.outbox_drive_inline(row.pk)
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=series[0].StudyInstanceUID)
    correct_demographics(study=study, user=owner, actor=Actor.system("test"), changes={"PatientName": "Wrong^Name"})
    for row in Outbox.objects.for_tenant(tenant).filter(kind="correct"):
        assert pipeline.outbox_drive_inline(row.pk)

    corrections = list(Correction.objects.for_tenant(tenant).values())
    versions = list(HeaderVersion.objects.for_tenant(tenant).values())
    _wipe_index(tenant)
    Correction.unscoped.bulk_create([Correction(**{**c, "study_id": None}) for c in corrections])
    HeaderVersion.unscoped.bulk_create([HeaderVersion(**{**v, "instance_id": None}) for v in versions])

    out = StringIO()
    call_command("restore_from_region", "secondary", stdout=out)
    assert "2 restored" in out.getvalue() and "2 earlier headers of corrected images left aside" in out.getvalue()
    assert {i.study.patient_name for i in Instance.objects.for_tenant(tenant)} == {"Wrong^Name"}
