"""UIDs are validated (PS3.5 9.1), never truncated, at every door: the ingest service,
STOW-RS, browser upload and DICOMweb URLs. Identifiers (PatientID, AccessionNumber...)
are stored whole or refused, never cut. The C-STORE door is in test_gateway_conformance."""

import pytest

from archive.ingest import errors
from archive.ingest.service import Outcome
from archive.models import Instance, Patient, Study
from archive.uids import is_valid_uid
from tenants import roles
from tests.archive.dicomweb_data import bearer, ingest, url
from tests.archive.stow_helpers import assert_nothing_stored, files_under, multipart, private_dirs  # noqa: F401
from tests.archive.test_services_ingest import ingest_bytes
from tests.archive.test_stow import dataset, stow  # noqa: F401
from tests.archive.upload_helpers import TusClient
from tests.dicom_factory import make_ct_series, to_bytes

ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's UID root
# Two study UIDs of 70 characters that differ only in the 68th: cut to 64 they are one.
LONG_STUDY_A = ROOT + "1" * 41 + "1" + "00"
LONG_STUDY_B = ROOT + "1" * 41 + "2" + "00"
# Values that are no UID. Each has at least 5 characters (see with_raw_uid).
BAD_UIDS = {
    "markup": b"1.2.3.abc<script>",
    "path": b"../../tmp/x",
    "inner-nul": b"1.2.3\x00.45",
    "leading-zero": b"1.02.3.4",
    "empty-component": b"1.2..3.4",
    "trailing-dot": b"1.2.3.4.",
    "leading-space": b" 1.2.3.4",
    "newline": b"1.2.3.4\n",
    "unicode-digit": "1.2.\u0663.4".encode(),  # an Arabic-Indic three
    "65-chars": (ROOT + "1" * 39).encode(),
}


def with_raw_uid(ds, keyword: str, raw: bytes) -> bytes:
    """The encoded instance with `raw` as the exact value bytes of `keyword` (pydicom would
    strip or refuse some of these when set): a same-length placeholder is replaced."""
    placeholder = "1.2." + "9" * (len(raw) - 4)
    setattr(ds, keyword, placeholder)
    if keyword in ("SOPInstanceUID", "SOPClassUID"):
        setattr(ds.file_meta, "MediaStorage" + keyword, placeholder)
    data = to_bytes(ds)
    assert placeholder.encode() in data
    return data.replace(placeholder.encode(), raw)


@pytest.mark.parametrize("value, valid", [
    ("1.2.840.10008.1.2.1", True), ("0.1", True), ("1.2.0.3", True), ("1", True),
    (ROOT + "1" * 38, True),  # exactly 64
    (ROOT + "1" * 39, False),  # 65
    ("1.02", False), ("00.1", False), ("1..2", False), ("1.2.", False), (".1.2", False), ("", False),
    ("1.2.3\n", False),  # pydicom's UID.is_valid accepts this one
    ("1.2.3 ", False), ("1.2.a", False), ("1.2.\u0663", False),
])
def test_uid_syntax(value, valid):
    assert is_valid_uid(value) is valid


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"])
@pytest.mark.parametrize("raw", BAD_UIDS.values(), ids=BAD_UIDS.keys())
def test_invalid_uid_refused_nothing_stored(tenant, private_dirs, keyword, raw):  # noqa: F811
    result = ingest_bytes(tenant, with_raw_uid(make_ct_series(1, 8, 8)[0], keyword, raw))
    assert result.outcome == Outcome.FAILED
    assert result.failure_code == errors.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert f"{keyword} is not a valid UID" in result.reason
    assert raw.decode(errors="replace").strip() not in result.reason  # the value is not echoed
    assert_nothing_stored(tenant, private_dirs)
    assert not Patient.objects.for_tenant(tenant).exists()


def test_studies_differing_after_the_64th_character_are_not_merged(tenant, private_dirs):  # noqa: F811
    first = make_ct_series(1, 8, 8, study_uid=LONG_STUDY_A, patient_id="PAT-A", patient_name="A^A")[0]
    second = make_ct_series(1, 8, 8, study_uid=LONG_STUDY_B, patient_id="PAT-B", patient_name="B^B")[0]
    results = [ingest_bytes(tenant, to_bytes(ds)) for ds in (first, second)]
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert all("StudyInstanceUID is not a valid UID" in r.reason and "70 characters" in r.reason
               for r in results)
    assert_nothing_stored(tenant, private_dirs)


@pytest.mark.parametrize("padded", [b"1.2.3.4.5 ", b"1.2.3.4.5\x00", b"1.2.3.456"], ids=["space", "nul", "odd-nul"])
def test_uid_padding_is_stripped_not_refused(tenant, padded):
    instance = ingest(tenant, with_raw_uid(make_ct_series(1, 8, 8)[0], "SeriesInstanceUID", padded))
    assert instance.series.series_instance_uid == padded.rstrip(b"\0 ").decode()


@pytest.mark.parametrize("raw", [b"1.2.840.10008.1.2.X\x00", b"1.2.840.10008.1.02\x00\x00"], ids=["letter", "zero"])
def test_invalid_transfer_syntax_uid_refused(tenant, private_dirs, raw):  # noqa: F811
    data = to_bytes(make_ct_series(1, 8, 8)[0])
    result = ingest_bytes(tenant, data.replace(b"1.2.840.10008.1.2.1\x00", raw))
    assert result.outcome == Outcome.FAILED and result.failure_code == errors.CANNOT_UNDERSTAND
    assert "TransferSyntaxUID is not a valid UID" in result.reason
    assert_nothing_stored(tenant, private_dirs)


def test_long_identifiers_are_stored_whole(tenant):
    """Longer than their VR allows (LO 64, SH 16), as real senders do: kept whole, so two
    patients whose IDs differ after the 64th character stay two patients."""
    base = "P" * 70
    accession = "ACC-" + "7" * 36
    a = ingest(tenant, to_bytes(make_ct_series(1, 8, 8, patient_id=base + "A", accession=accession)[0]))
    b = ingest(tenant, to_bytes(make_ct_series(1, 8, 8, patient_id=base + "B")[0]))
    assert a.study.patient_id != b.study.patient_id
    assert sorted(Patient.objects.for_tenant(tenant).values_list("patient_id", flat=True)) == [base + "A", base + "B"]
    study = Study.objects.for_tenant(tenant).get(pk=a.study_id)
    assert (study.patient_identifier, study.accession_number) == (base + "A", accession)


@pytest.mark.parametrize("keyword", ["PatientID", "IssuerOfPatientID", "AccessionNumber", "StudyID", "PatientName"])
def test_absurdly_long_identifier_refused_not_cut(tenant, private_dirs, keyword):  # noqa: F811
    ds = make_ct_series(1, 8, 8)[0]
    setattr(ds, keyword, "9" * 400)
    result = ingest_bytes(tenant, to_bytes(ds))
    assert result.outcome == Outcome.FAILED and result.failure_code == errors.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert f"{keyword} is 400 characters long" in result.reason
    assert_nothing_stored(tenant, private_dirs)


def failed_items(response) -> list:
    return list(dataset(response).get("FailedSOPSequence", []))


def test_stow_refuses_invalid_uids_and_stores_the_rest(stow, tenant, private_dirs):  # noqa: F811
    good = make_ct_series(1, 8, 8)[0]
    parts = [with_raw_uid(make_ct_series(1, 8, 8)[0], "StudyInstanceUID", BAD_UIDS["markup"]),
             with_raw_uid(make_ct_series(1, 8, 8)[0], "SOPInstanceUID", BAD_UIDS["path"]),
             with_raw_uid(make_ct_series(1, 8, 8)[0], "SeriesInstanceUID", BAD_UIDS["inner-nul"]),
             to_bytes(good)]
    response = stow(*multipart(parts))
    assert response.status_code == 202, response.text
    failed = failed_items(response)
    assert [f.FailureReason for f in failed] == [errors.DATASET_DOES_NOT_MATCH_SOP_CLASS] * 3
    assert [i.ReferencedSOPInstanceUID for i in dataset(response).ReferencedSOPSequence] == [good.SOPInstanceUID]
    assert list(Instance.objects.for_tenant(tenant).values_list("sop_instance_uid", flat=True)) == [good.SOPInstanceUID]
    assert files_under(private_dirs.INGEST_TMP_DIR) == []


def test_stow_two_studies_differing_after_the_64th_character(stow, tenant, private_dirs):  # noqa: F811
    parts = [to_bytes(make_ct_series(1, 8, 8, study_uid=uid, patient_id=pid)[0])
             for uid, pid in ((LONG_STUDY_A, "PAT-A"), (LONG_STUDY_B, "PAT-B"))]
    response = stow(*multipart(parts))
    assert response.status_code == 409, response.text
    assert [f.FailureReason for f in failed_items(response)] == [errors.DATASET_DOES_NOT_MATCH_SOP_CLASS] * 2
    assert_nothing_stored(tenant, private_dirs)


def test_browser_upload_gives_a_readable_reason(client, tenant, make_member, login, settings, tmp_path):
    settings.INGEST_TMP_DIR = str(tmp_path / "spool")
    settings.TIER1_PATH = str(tmp_path / "tier1")
    settings.UPLOAD_DIR = str(tmp_path / "uploads")
    login(make_member(tenant, roles.TECHNOLOGIST))
    tus = TusClient(client, tenant.slug)
    data = with_raw_uid(make_ct_series(1, 8, 8)[0], "SOPInstanceUID", BAD_UIDS["path"])
    [entry] = tus.send(data, "bad.dcm")["files"]
    assert entry["status"] == "rejected"
    assert entry["reason"].startswith("SOPInstanceUID is not a valid UID")
    assert not Instance.objects.for_tenant(tenant).exists()
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH, settings.UPLOAD_DIR) == []


def test_invalid_uid_in_url_is_404_valid_one_reaches_the_view(client, tenant, make_token):
    token = make_token(tenant, scopes=("read",))
    stored = ingest(tenant, to_bytes(make_ct_series(1, 8, 8)[0]))
    study, series = stored.study.study_instance_uid, stored.series.series_instance_uid
    paths = ["studies/{}/metadata", f"studies/{study}/series/{{}}", f"studies/{study}/series/{series}/instances/{{}}/metadata"]
    for rest in paths:
        for uid in ["1.02.3", "1..2", "1.2.", ".1", "1" * 65, "1.2.3%00", "1.2.3%0A", "1.2.3%20", "abc"]:
            response = client.get(url(tenant, rest.format(uid)), **bearer(token))
            assert response.status_code == 404, (rest, uid)
    response = client.get(url(tenant, paths[2].format(stored.sop_instance_uid)), **bearer(token))
    assert response.status_code == 200
