"""De-identified shares: every URL the share opens answers with pseudonyms only (no name,
ID, birth date, accession, description, institution or real UID in any body, JSON or
DICOM), the same pseudonyms across the shared studies; searches cannot be used to ask
about the real values; downloads are de-identified files with the pixels untouched; and
images likely to carry burned-in text are flagged."""

import gzip
import io
import zipfile

import pytest
from django.test import Client
from pydicom import dcmread

from archive.models import Study
from archive.sharing.services import share_create
from tenants.audit import Actor
from tests.archive.dicomweb_data import ingest_datasets
from tests.archive.test_share_scope_walker import SHARE_ROUTES, _url
from tests.dicom_factory import make_ct_series, make_us_multiframe, to_bytes

SECRETS = ["Secret", "SECRET-ID-42", "19510203", "SECRET-ACC-7", "Leaky", "Hush Hospital", "SECRET DESC",
           "20240115"]


def _secret_series(tenant, n=2, study_uid=None, seed=0):
    series = make_ct_series(n, 16, 16, patient_name="Secret^Sally", patient_id="SECRET-ID-42",
                            birth_date="19510203", accession="SECRET-ACC-7", referring="Leaky^Lou",
                            study_date="20240115", study_uid=study_uid, seed=seed)
    for ds in series:
        ds.InstitutionName = "Hush Hospital"
        ds.StudyDescription = "SECRET DESC"
        ds.OperatorsName = "Secret^Operator"
    ingest_datasets(tenant, series)
    return series


def _body(response) -> bytes:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return gzip.decompress(body) if response.get("Content-Encoding") == "gzip" else body


def _open(made) -> Client:
    client = Client()
    assert client.post(f"/s/{made.token}", {"answer": "12345678"}).status_code == 302
    return client


@pytest.fixture
def deid_share(tenant):
    first = _secret_series(tenant)
    prior = _secret_series(tenant, seed=3)  # another study of the same patient
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=first[0].StudyInstanceUID)
    # A signed PDF report naming the patient: a de-identified share must show none of it.
    from archive.reports.services import pdf_attach
    from tests.conftest import tenant_owner

    pdf_attach(study=study, user=tenant_owner(tenant), title="Report",
               pdf=b"%PDF-1.4\n% " + " ".join(SECRETS).encode() + b"\n%%EOF\n", actor=Actor.system("test"))
    made = share_create(tenant=tenant, study=study, actor=Actor.system("test"), access_code="12345678",
                        allow_download=True, deidentify=True, whole_patient=True)
    reals = {ds.StudyInstanceUID for ds in first + prior} | {ds.SeriesInstanceUID for ds in first + prior} \
        | {ds.SOPInstanceUID for ds in first + prior} | {ds.FrameOfReferenceUID for ds in first + prior}
    return made, first, prior, reals


def _pseudo(made, ds) -> dict:
    from archive.sharing.deidentify import Deidentifier

    deid = Deidentifier(made.share)
    return {"pk": Study.objects.for_tenant(made.share.tenant).get(study_instance_uid=ds.StudyInstanceUID).pk,
            "study_uid": deid.uid(ds.StudyInstanceUID), "series_uid": deid.uid(ds.SeriesInstanceUID),
            "sop_uid": deid.uid(ds.SOPInstanceUID), "frame_list": "1", "tag_path": "7FE00010", "rest": "viewer"}


# A report names its patient more often than not: a de-identified share offers none.
NOT_DEIDENTIFIED = {"report_pdf"}


@pytest.mark.parametrize("route", SHARE_ROUTES, ids=lambda r: r.name)
def test_no_url_of_the_share_answers_anything_identifying(route, deid_share):
    made, first, _, reals = deid_share
    client = _open(made)
    response = client.get(_url(route, made.share.public_id, {**_pseudo(made, first[0]), "number": 1}))
    if route.name in NOT_DEIDENTIFIED:
        assert response.status_code == 404, (route.name, response.status_code)
        return
    assert 200 <= response.status_code < 300, (route.name, response.status_code)
    body = _body(response)
    if response.get("Content-Type", "").startswith("application/zip"):
        archive = zipfile.ZipFile(io.BytesIO(body))
        body = b"".join(archive.read(n) for n in archive.namelist())
    text = body.decode("latin-1")
    leaked = [s for s in SECRETS + sorted(reals) if s in text]
    assert leaked == [], (route.name, leaked)


def test_pseudonyms_are_consistent_and_searches_ask_nothing_real(deid_share):
    made, first, prior, reals = deid_share
    client = _open(made)
    root = f"/s/v/{made.share.public_id}/dicomweb"
    found = client.get(f"{root}/studies").json()
    assert len(found) == 2
    names = {r["00100010"]["Value"][0]["Alphabetic"] for r in found}
    ids = {r["00100020"]["Value"][0] for r in found}
    assert names == {"Anonymous^1"} and len(ids) == 1 and all(r["00120062"]["Value"] == ["YES"] for r in found)
    pseudo = _pseudo(made, first[0])
    assert pseudo["study_uid"] in {r["0020000D"]["Value"][0] for r in found}
    metadata = client.get(f"{root}/studies/{pseudo['study_uid']}/metadata").json()
    assert {m["0020000D"]["Value"][0] for m in metadata} == {pseudo["study_uid"]}
    images = [m for m in metadata if m["00080016"]["Value"][0] != "1.2.840.10008.5.1.4.1.1.104.1"]
    assert len(images) == len(first) and len(metadata) == len(first) + 1  # and the report, emptied
    assert all(m["7FE00010"]["BulkDataURI"].startswith(f"http://testserver{root}/studies/{pseudo['study_uid']}/")
               for m in images)
    assert not [m for m in metadata if "00420011" in m]  # no encapsulated document
    # A search on a real value is no oracle: the key is ignored, the answer the same.
    assert len(client.get(f"{root}/studies", {"PatientName": "Nobody*"}).json()) == 2
    assert len(client.get(f"{root}/studies", {"PatientID": "SECRET-ID-42"}).json()) == 2
    assert client.get(f"{root}/studies", {"StudyInstanceUID": pseudo["study_uid"]}).json()[0]["0020000D"] \
        == {"vr": "UI", "Value": [pseudo["study_uid"]]}
    assert client.get(f"{root}/studies", {"StudyInstanceUID": first[0].StudyInstanceUID}).json() == []
    # The real UIDs open nothing.
    assert client.get(f"{root}/studies/{first[0].StudyInstanceUID}/metadata").status_code == 404
    # Only pixel data is bulk data here.
    uid = pseudo
    path = f"{root}/studies/{uid['study_uid']}/series/{uid['series_uid']}/instances/{uid['sop_uid']}/bulkdata"
    assert client.get(f"{path}/7FE00010").status_code == 200
    assert client.get(f"{path}/00100010").status_code == 404


def test_downloaded_files_are_deidentified_and_keep_their_pixels(deid_share):
    made, first, prior, reals = deid_share
    client = _open(made)
    pseudo = _pseudo(made, first[0])
    response = client.get(f"/s/v/{made.share.public_id}/studies/{pseudo['pk']}/download.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    files = [dcmread(io.BytesIO(archive.read(n))) for n in archive.namelist()[1:]]
    # The signed PDF report goes as an empty shell: its document (naming the patient) is not sent.
    [report] = [ds for ds in files if "PixelData" not in ds]
    assert "EncapsulatedDocument" not in report and str(report.PatientName) == "Anonymous^1"
    files = [ds for ds in files if "PixelData" in ds]
    by_position = {tuple(ds.ImagePositionPatient): ds for ds in first}
    for ds in files:
        assert str(ds.PatientName) == "Anonymous^1" and ds.PatientIdentityRemoved == "YES"
        assert ds.StudyInstanceUID == pseudo["study_uid"] and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "PatientBirthDate" not in ds and "InstitutionName" not in ds and "OperatorsName" not in ds
        assert ds.PixelData == by_position[tuple(ds.ImagePositionPatient)].PixelData
    dicomdir = archive.read("DICOMDIR")
    assert b"Anonymous^1" in dicomdir and not [s for s in SECRETS + sorted(reals) if s.encode() in dicomdir]


def test_burned_in_text_is_flagged_and_birth_date_check_refused(tenant):
    from django.core.exceptions import ValidationError

    us = make_us_multiframe(frames=2)
    ingest_datasets(tenant, [us])
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=us.StudyInstanceUID)
    made = share_create(tenant=tenant, study=study, actor=Actor.system("test"), access_code="12345678",
                        deidentify=True)
    assert made.share.burned_in_risk
    ct = _secret_series(tenant)
    ct_study = Study.objects.for_tenant(tenant).get(study_instance_uid=ct[0].StudyInstanceUID)
    assert not share_create(tenant=tenant, study=ct_study, actor=Actor.system("test"), access_code="12345678",
                            deidentify=True).share.burned_in_risk
    with pytest.raises(ValidationError):
        share_create(tenant=tenant, study=ct_study, actor=Actor.system("test"), access="birth_date",
                     deidentify=True)
    assert to_bytes  # the factory's writer is what ingest used


def test_a_sequence_under_a_kept_tag_is_dropped_and_studies_come_in_pseudonym_order(deid_share):
    from archive.sharing.deidentify import Deidentifier

    made, first, prior, _ = deid_share
    deid = Deidentifier(made.share)
    crafted = {"00080008": {"vr": "SQ", "Value": [{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Secret"}]}}]},
               "00280010": {"vr": "US", "Value": [16]}}
    assert "00080008" not in deid.json(crafted) and "Secret" not in str(deid.json(crafted))
    client = _open(made)
    found = [r["0020000D"]["Value"][0] for r in client.get(f"/s/v/{made.share.public_id}/dicomweb/studies").json()]
    assert found == sorted(found)
