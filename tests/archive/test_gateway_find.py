"""C-FIND against the gateway, from pynetdicom and dcmtk's findscu: the Patient Root and
Study Root models at each level, the query model's matching, a cap, C-CANCEL, isolation
and the audit log."""

import shutil
import subprocess

import pytest
from pydicom import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from archive.gateway.models import DicomPeer
from tenants.models import AuditEvent
from tests.archive.test_gateway import running_gateway
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def archive(tenant, other_tenant):
    """Three studies of two patients in the clinic; one of another clinic with the same name."""
    DicomPeer.objects.for_tenant(tenant).create(ae_title="WORKSTATION")
    DicomPeer.objects.for_tenant(other_tenant).create(ae_title="WORKSTATION")
    made = {
        "jane_ct": make_ct_series(3, 16, 16, patient_name="Doe^Jane", patient_id="P1", study_date="20240105",
                                  accession="A1"),
        "jane_mr": make_ct_series(2, 16, 16, patient_name="Doe^Jane", patient_id="P1", study_date="20250310",
                                  accession="A2", modality="MR"),
        "john": make_ct_series(1, 16, 16, patient_name="Roe^John", patient_id="P2", study_date="20250311",
                               accession="A3"),
    }
    for series in made.values():
        for ds in series:
            assert ingest_bytes(tenant, to_bytes(ds)).ok
    for ds in make_ct_series(1, 16, 16, patient_name="Doe^Jane", patient_id="P1", accession="THEIRS"):
        assert ingest_bytes(other_tenant, to_bytes(ds)).ok
    with running_gateway() as port:
        yield port, made


def find(port, tenant, identifier: Dataset, model=StudyRootQueryRetrieveInformationModelFind):
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
    assert assoc.is_established
    answers, final = [], None
    try:
        for status, answer in assoc.send_c_find(identifier, model):
            if status.Status in (0xFF00, 0xFF01):
                answers.append(answer)
            else:
                final = status
    finally:
        assoc.release()
    return answers, final


def identifier(level, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_study_level_matching_and_return_keys(archive, tenant):
    port, made = archive
    answers, final = find(port, tenant, identifier("STUDY", PatientName="DOE*", StudyDate="20250101-",
                                                   StudyInstanceUID="", AccessionNumber="", ModalitiesInStudy="",
                                                   NumberOfStudyRelatedInstances=""))
    assert final.Status == 0x0000
    [answer] = answers
    assert answer.StudyInstanceUID == made["jane_mr"][0].StudyInstanceUID
    assert (answer.AccessionNumber, answer.ModalitiesInStudy, int(answer.NumberOfStudyRelatedInstances)) == (
        "A2", "MR", 2)
    assert answer.QueryRetrieveLevel == "STUDY" and answer.RetrieveAETitle == tenant.ae_title
    assert "PatientID" not in answer  # only the keys asked for come back


def test_series_and_image_levels_under_a_study(archive, tenant):
    port, made = archive
    study_uid = made["jane_ct"][0].StudyInstanceUID
    series, _ = find(port, tenant, identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="",
                                              Modality="", NumberOfSeriesRelatedInstances=""))
    assert [(s.SeriesInstanceUID, s.Modality, int(s.NumberOfSeriesRelatedInstances)) for s in series] == [
        (made["jane_ct"][0].SeriesInstanceUID, "CT", 3)]
    images, _ = find(port, tenant, identifier("IMAGE", StudyInstanceUID=study_uid,
                                              SeriesInstanceUID=made["jane_ct"][0].SeriesInstanceUID,
                                              SOPInstanceUID="", InstanceNumber=""))
    assert sorted(i.SOPInstanceUID for i in images) == sorted(ds.SOPInstanceUID for ds in made["jane_ct"])
    # A list of UIDs matches any of them.
    both = "\\".join([made["jane_ct"][0].SOPInstanceUID, made["jane_ct"][1].SOPInstanceUID])
    picked, _ = find(port, tenant, identifier("IMAGE", StudyInstanceUID=study_uid, SOPInstanceUID=both))
    assert len(picked) == 2


def test_patient_root_patient_level(archive, tenant):
    port, _ = archive
    answers, final = find(port, tenant, identifier("PATIENT", PatientName="", PatientID="", PatientBirthDate=""),
                          model=PatientRootQueryRetrieveInformationModelFind)
    assert final.Status == 0x0000
    assert sorted((str(a.PatientName), a.PatientID) for a in answers) == [("Doe^Jane", "P1"), ("Roe^John", "P2")]


def test_no_match_is_success_and_other_clinics_are_invisible(archive, tenant, other_tenant):
    port, _ = archive
    answers, final = find(port, tenant, identifier("STUDY", PatientName="NOBODY*", StudyInstanceUID=""))
    assert answers == [] and final.Status == 0x0000
    theirs, _ = find(port, other_tenant, identifier("STUDY", AccessionNumber="", StudyInstanceUID=""))
    assert [a.AccessionNumber for a in theirs] == ["THEIRS"]
    ours, _ = find(port, tenant, identifier("STUDY", AccessionNumber="THEIRS"))
    assert ours == []


def test_cap_cancel_bad_query_and_audit(archive, tenant, settings):
    port, _ = archive
    settings.DICOM_FIND_MAX_RESULTS = 2
    answers, final = find(port, tenant, identifier("STUDY", StudyInstanceUID=""))
    assert len(answers) == 2 and final.Status == 0xA700 and "narrow the query" in final.ErrorComment
    settings.DICOM_FIND_MAX_RESULTS = 1000
    # A C-CANCEL between answers stops them. (Over the network six answers are out before a
    # cancel can arrive, so the answers' generator is driven here, as pynetdicom drives it.)
    from archive.gateway.find import find_answers

    given = []
    for status, answer in find_answers(tenant=tenant, identifier=identifier("IMAGE", SOPInstanceUID=""),
                                       is_cancelled=lambda: len(given) >= 2):
        given.append((status, answer))
    assert [s if isinstance(s, int) else s.Status for s, _ in given] == [0xFF00, 0xFF00, 0xFE00]
    _, bad = find(port, tenant, identifier("STUDY", StudyDate="2025-01-01x"))
    assert bad.Status == 0xC000
    _, no_level = find(port, tenant, identifier("WARD"))
    assert no_level.Status == 0xA900
    events = AuditEvent.objects.for_tenant(tenant).filter(action="dicom.find")
    assert events.count() == 3
    assert events.filter(detail__answers=2, detail__level="STUDY").exists()
    assert all("DOE" not in str(e.detail).upper() for e in events)  # keys, never values


@pytest.mark.skipif(shutil.which("findscu") is None, reason="dcmtk's findscu is not installed")
def test_dcmtk_findscu(archive, tenant):
    port, made = archive
    done = subprocess.run(["findscu", "-S", "-aet", "WORKSTATION", "-aec", tenant.ae_title, "-k",
                           "QueryRetrieveLevel=STUDY", "-k", "PatientID=P1", "-k", "StudyInstanceUID",
                           "-k", "StudyDate", "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = done.stdout + done.stderr
    assert made["jane_ct"][0].StudyInstanceUID in found and made["jane_mr"][0].StudyInstanceUID in found
    assert made["john"][0].StudyInstanceUID not in found


def test_a_worklist_context_is_not_accepted(archive, tenant):
    """A model the gateway does not serve (Modality Worklist) is not accepted at all: its
    presentation context is rejected, so no C-FIND can be sent on it."""
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    port, _ = archive
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
    assert assoc.is_established
    assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [StudyRootQueryRetrieveInformationModelFind]
    assert [cx.abstract_syntax for cx in assoc.rejected_contexts] == [ModalityWorklistInformationFind]
    assoc.release()


def _with_procedure(series, value: str, meaning: str):
    for ds in series:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "LOCAL", meaning
        ds.ProcedureCodeSequence = [code]
    return series


def test_sequence_matching(tenant):
    """PS3.4 C.2.2.2.6: a sequence key's item is matched on the stored headers; an empty
    item is universal (returned, not matched)."""
    DicomPeer.objects.for_tenant(tenant).create(ae_title="WORKSTATION")
    head = _with_procedure(make_ct_series(1, 16, 16, patient_id="P9"), "CT-HEAD", "CT Head")
    chest = _with_procedure(make_ct_series(1, 16, 16, patient_id="P9"), "CT-CHEST", "CT Chest")
    for ds in (*head, *chest):
        assert ingest_bytes(tenant, to_bytes(ds)).ok

    def procedure(**item) -> Dataset:
        code = Dataset()
        for keyword, value in item.items():
            setattr(code, keyword, value)
        return identifier("STUDY", PatientID="P9", StudyInstanceUID="", ProcedureCodeSequence=[code])

    with running_gateway() as port:
        answers, final = find(port, tenant, procedure(CodeValue="CT-HEAD", CodeMeaning=""))
        assert final.Status == 0x0000
        assert [a.StudyInstanceUID for a in answers] == [head[0].StudyInstanceUID]
        assert answers[0].ProcedureCodeSequence[0].CodeMeaning == "CT Head"
        answers, _ = find(port, tenant, procedure(CodeMeaning="*Chest"))
        assert [a.StudyInstanceUID for a in answers] == [chest[0].StudyInstanceUID]
        answers, _ = find(port, tenant, procedure(CodeValue="MR-*"))
        assert answers == []
        answers, _ = find(port, tenant, procedure(CodeValue=""))  # universal: both, with their codes
        assert {a.ProcedureCodeSequence[0].CodeValue for a in answers} == {"CT-HEAD", "CT-CHEST"}


def test_a_signed_report_is_found_by_c_find(tenant, archive):
    """Reports travel with the study: a workstation's C-FIND at IMAGE level finds the SR."""
    from archive.models import Study
    from archive.reports import services
    from tenants.audit import Actor
    from tests.conftest import tenant_owner

    port, made = archive
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=made["john"][0].StudyInstanceUID)
    owner = tenant_owner(tenant)
    services.draft_save(study=study, user=owner, findings="Clear lungs.", impression="Normal.",
                        actor=Actor.system("test"))
    version = services.draft_sign(study=study, user=owner, actor=Actor.system("test"))
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study.study_instance_uid
    query.SeriesInstanceUID = made["john"][0].SeriesInstanceUID
    query.SOPInstanceUID = ""
    assert [a.SOPInstanceUID for a in find(port, tenant, query)[0]] == [made["john"][0].SOPInstanceUID]
    series = Dataset()
    series.QueryRetrieveLevel = "SERIES"
    series.StudyInstanceUID = study.study_instance_uid
    series.Modality = "SR"
    series.SeriesInstanceUID = ""
    [hit] = find(port, tenant, series)[0]
    image = Dataset()
    image.QueryRetrieveLevel = "IMAGE"
    image.StudyInstanceUID = study.study_instance_uid
    image.SeriesInstanceUID = hit.SeriesInstanceUID
    image.SOPInstanceUID = ""
    image.SOPClassUID = ""
    [sr] = find(port, tenant, image)[0]
    assert sr.SOPInstanceUID == version.sop_instance_uid and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.11"
