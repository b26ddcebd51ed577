"""The study as a zip of DICOM files with a DICOMDIR: every file byte for byte as stored,
a DICOMDIR that pydicom reads back as a File-set pointing at each of them, the length
known up front, memory bounded while streaming, audited, and refused without the
download permission (or from a share that does not allow it)."""

import hashlib
import io
import shutil
import subprocess
import tracemalloc
import zipfile

import pytest
from django.urls import reverse
from pydicom import dcmread
from pydicom.fileset import FileSet

from archive.models import Instance
from archive.sharing.services import share_create
from tenants import roles
from tenants.audit import Actor, AuditEvent
from tests.archive.dicomweb_data import bundled, ingest, ingest_datasets
from tests.dicom_factory import make_ct_series


def _url(tenant, study):
    return reverse("archive:study_download", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})


def _two_series_study(tenant):
    first = make_ct_series(3, 16, 16, patient_name="Zip^Zoë", patient_id="MRN-Z1")
    second = make_ct_series(2, 16, 16, study_uid=first[0].StudyInstanceUID, patient_name="Zip^Zoë",
                            patient_id="MRN-Z1", seed=2)
    for ds in second:
        ds.SeriesNumber = 2
    instances = ingest_datasets(tenant, first + second)
    return instances[0].study


def test_zip_holds_every_file_and_a_dicomdir_that_points_at_them(login, make_member, tenant, tmp_path):
    study = _two_series_study(tenant)
    client = login(make_member(tenant, roles.RADIOLOGIST))
    response = client.get(_url(tenant, study))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="study-{study.pk}.zip"'
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[0] == "DICOMDIR" and len(names) == 1 + 5
    stored = {i.sha256 for i in Instance.objects.for_tenant(tenant).filter(study=study)}
    assert {hashlib.sha256(archive.read(n)).hexdigest() for n in names[1:]} == stored
    # The DICOMDIR, read back by pydicom as a File-set (it follows every record offset).
    archive.extractall(tmp_path)
    fileset = FileSet(dcmread(tmp_path / "DICOMDIR"))
    assert len(fileset) == 5
    assert {str(i.path) for i in fileset} == {str(tmp_path / n) for n in names[1:]}
    assert fileset.find(SeriesNumber=2) and len(fileset.find(SeriesNumber=2)) == 2
    [patient] = fileset.find_values("PatientName")
    assert str(patient) == "Zip^Zoë"
    for instance in fileset:
        assert instance.load().SOPInstanceUID == instance.ReferencedSOPInstanceUIDInFile
    if shutil.which("dcmdump"):
        dump = subprocess.run(["dcmdump", str(tmp_path / "DICOMDIR")], capture_output=True, text=True)
        assert dump.returncode == 0 and "IMAGE" in dump.stdout, dump.stderr
    event = AuditEvent.objects.for_tenant(tenant).get(action="study.downloaded")
    assert event.detail["instances"] == 5 and event.object_id == str(study.pk)


def test_compressed_and_multiframe_files_are_listed_with_their_syntax(login, make_member, tenant, tmp_path):
    instance = ingest(tenant, bundled("MR_small_jp2klossless.dcm"))
    client = login(make_member(tenant, roles.RADIOLOGIST))
    body = b"".join(client.get(_url(tenant, instance.study)).streaming_content)
    zipfile.ZipFile(io.BytesIO(body)).extractall(tmp_path)
    [record] = list(FileSet(dcmread(tmp_path / "DICOMDIR")))
    assert record.ReferencedTransferSyntaxUIDInFile == "1.2.840.10008.1.2.4.90"


def test_streaming_memory_is_bounded(login, make_member, tenant):
    series = make_ct_series(24, 512, 512, patient_name="Big^Ben", patient_id="MRN-B")
    study = ingest_datasets(tenant, series)[0].study
    client = login(make_member(tenant, roles.RADIOLOGIST))
    response = client.get(_url(tenant, study))
    total = 0
    tracemalloc.start()
    try:
        for chunk in response.streaming_content:
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 12_000_000
    assert peak < 6_000_000, f"peak {peak} bytes while streaming {total}"


def test_without_the_download_permission_nothing_is_sent(login, make_member, tenant):
    study = _two_series_study(tenant)
    viewer = login(make_member(tenant, roles.VIEWER))
    assert viewer.get(_url(tenant, study)).status_code == 403
    page = viewer.get(reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": study.pk}))
    assert b"download.zip" not in page.content
    assert not AuditEvent.objects.for_tenant(tenant).filter(action="study.downloaded").exists()


@pytest.mark.parametrize("allowed", [True, False])
def test_a_share_downloads_only_when_allowed(allowed, tenant, client):
    study = _two_series_study(tenant)
    made = share_create(tenant=tenant, study=study, actor=Actor.system("test"), access_code="12345678",
                        allow_download=allowed)
    assert client.post(f"/s/{made.token}", {"answer": "12345678"}).status_code == 302
    url = reverse("sharing:download", kwargs={"public_id": made.share.public_id, "pk": study.pk})
    response = client.get(url)
    assert response.status_code == (200 if allowed else 404)
    page = client.get(reverse("sharing:page", kwargs={"public_id": made.share.public_id})).content
    assert (b"download.zip" in page) is allowed
    if allowed:
        assert zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()[0] == "DICOMDIR"
        assert AuditEvent.objects.for_tenant(tenant).get(action="study.downloaded").actor_type == "share"
