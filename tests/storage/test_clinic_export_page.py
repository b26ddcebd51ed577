"""A clinic admin asks for the whole archive on the settings page: a real Celery worker
builds the zip, encrypted in the (real SeaweedFS) primary region; the admin downloads it
and finds every instance bit for bit; nobody else can; it expires."""

import io
import zipfile
from datetime import timedelta

import pydicom
import pytest
from django.utils import timezone

from archive.download.bundle import exports_expire
from archive.download.models import ClinicExport
from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import wait_for

pytestmark = pytest.mark.worker
NAME = "Exportable^Erin"


def _server(seaweed):
    return seaweed["primary"]


def test_admin_asks_for_the_archive_and_downloads_it(client, tenant, other_tenant, make_member, login,
                                                    start_worker, seaweed, settings):
    sent = {}
    for study in range(2):
        for ds in make_ct_series(2, 32, 32, patient_name=NAME, patient_id=f"P{study}"):
            sent[ds.SOPInstanceUID] = to_bytes(ds)
            assert ingest_bytes(tenant, sent[ds.SOPInstanceUID]).ok
    start_worker()
    admin = make_member(tenant, roles.ADMIN)
    login(admin)
    assert client.post("/t/acme/settings/export/").status_code == 302
    export = ClinicExport.objects.for_tenant(tenant).get()

    def ready():
        export.refresh_from_db()
        assert export.state != ClinicExport.FAILED, export.error
        return export.state == ClinicExport.READY

    wait_for(ready, timeout=90, interval=0.5, what="the worker to build the export")
    page = client.get("/t/acme/settings/export/")
    assert b"Download" in page.content and b"2 studies" in page.content
    # In the region it is ciphertext: no DICOM file, no patient name.
    server = _server(seaweed)
    stored = server.client().get_object(Bucket=server.bucket, Key=export.storage_key)["Body"].read()
    assert b"DICM" not in stored and NAME.encode() not in stored

    answer = client.get(f"/t/acme/settings/export/{export.pk}/download.zip")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    body = b"".join(answer.streaming_content)
    assert len(body) == int(answer["Content-Length"])
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = zf.namelist()
        manifest = zf.read("manifest.csv").decode().splitlines()
        assert len(manifest) == 1 + len(sent)
        files = {pydicom.dcmread(io.BytesIO(zf.read(n))).SOPInstanceUID: zf.read(n)
                 for n in names if "/DICOM/" in n}
        assert sum(n.endswith("/DICOMDIR") for n in names) == 2
    assert files == sent
    actions = set(AuditEvent.objects.for_tenant(tenant).filter(action__startswith="clinic.export")
                  .values_list("action", flat=True))
    assert actions == {"clinic.export_requested", "clinic.export_ready", "clinic.export_downloaded"}

    # Another clinic's admin, and a viewer of this one, get nothing.
    client.logout()
    login(make_member(other_tenant, roles.ADMIN, email="other-admin@cloudpacs.test"))
    assert client.get(f"/t/other/settings/export/{export.pk}/download.zip").status_code == 404
    client.logout()
    login(make_member(tenant, roles.VIEWER, email="viewer@cloudpacs.test"))
    assert client.get(f"/t/acme/settings/export/{export.pk}/download.zip").status_code == 403

    # Past its expiry the zip goes from the region.
    assert exports_expire(now=timezone.now() + timedelta(days=settings.EXPORT_KEEP_DAYS + 1)) == 1
    export.refresh_from_db()
    assert export.state == ClinicExport.EXPIRED
    listed = server.client().list_objects_v2(Bucket=server.bucket, Prefix="_exports/").get("Contents", [])
    assert not [o for o in listed if o["Key"].startswith(f"_exports/{tenant.pk}/")]


def test_an_export_whose_file_is_gone_says_so(client, tenant, make_member, login):
    export = ClinicExport.objects.for_tenant(tenant).create(state=ClinicExport.READY, size_bytes=10,
                                                            storage_key="_exports/gone/nothing-here",
                                                            expires_at=timezone.now() + timedelta(days=1))
    login(make_member(tenant, roles.ADMIN))
    answer = client.get(f"/t/acme/settings/export/{export.pk}/download.zip", follow=True)
    assert answer.status_code == 200 and b"ask for a new export" in answer.content
    export.refresh_from_db()
    assert export.state == ClinicExport.FAILED


def test_deleting_a_study_withdraws_the_exports_that_may_hold_it(client, tenant, make_member, login):
    """A study deleted with the two-person rule must not stay downloadable in an export
    made before: the clinic's ready exports expire at once and their zips go."""
    from archive.retention.deletion import deletion_request_approve, deletion_request_create
    from archive.storage.keys import active_data_key
    from cloudpacs.objectstore import crypto
    from cloudpacs.objectstore.objects import object_exists, object_put
    from tenants.audit import Actor
    from tests.archive.study_rows import make_study

    key_id, data_key = active_data_key(tenant=tenant)
    object_put("primary", "_exports/withdraw/zip", io.BytesIO(b"".join(crypto.encrypt_chunks(
        io.BytesIO(b"an export"), data_key=data_key, key_id=key_id))))
    export = ClinicExport.objects.for_tenant(tenant).create(
        state=ClinicExport.READY, size_bytes=9, storage_key="_exports/withdraw/zip",
        expires_at=timezone.now() + timedelta(days=7))
    admin, owner = make_member(tenant, roles.ADMIN), make_member(tenant, roles.OWNER)
    login(admin)
    assert client.get(f"/t/acme/settings/export/{export.pk}/download.zip").status_code == 200
    study = make_study(tenant, name="Deleted^Dora", patient_id="DEL-1", study_date="19900101")
    request = deletion_request_create(tenant=tenant, study=study, user=admin, reason="wrong patient",
                                      override_retention=True, actor=Actor.system("test"))
    deletion_request_approve(tenant=tenant, request_id=request.pk, user=owner, actor=Actor.system("test"))
    assert client.get(f"/t/acme/settings/export/{export.pk}/download.zip").status_code == 404
    assert exports_expire() == 1 and not object_exists("primary", "_exports/withdraw/zip")
