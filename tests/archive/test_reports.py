"""Reports: written (draft, signed, amended as new versions) or a signed PDF; each signed
version is a DICOM object in the study, so QIDO/WADO serve it with the images."""

import json

import pydicom
import pytest
from django.test import Client
from django.urls import reverse

from archive.models import Instance
from archive.reports import services
from archive.reports.dicom import BASIC_TEXT_SR, ENCAPSULATED_PDF
from archive.reports.models import FinalReportChanged, Report, ReportVersion
from archive.storage.reader import open_instance
from tenants import roles
from tenants.audit import Actor, AuditEvent
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401

pytestmark = pytest.mark.usefixtures("tier1")

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def actor(user):
    return Actor(AuditEvent.USER, str(user.pk), user.email)


def events(tenant, prefix="report."):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action__startswith=prefix).order_by("seq")
                .values_list("action", flat=True))


def stored(tenant, sop_uid) -> pydicom.Dataset:
    instance = Instance.objects.for_tenant(tenant).get(sop_instance_uid=sop_uid)
    with open_instance(instance) as f:
        return pydicom.dcmread(f)


def test_draft_sign_amend(tenant, make_member):
    doctor = make_member(tenant, roles.RADIOLOGIST)
    doctor.full_name = "Ana María Núñez"
    doctor.save()
    study = ingest_series(tenant, study_date=past(0), n=2, patient_name="Müller^Jürgen")
    services.draft_save(study=study, user=doctor, findings="No fracture.", impression="", actor=actor(doctor))
    services.draft_save(study=study, user=doctor, findings="No fracture. Soft tissue normal.",
                        impression="Normal study.", actor=actor(doctor))
    assert Report.objects.for_tenant(tenant).get(study=study).state == "draft"
    first = services.draft_sign(study=study, user=doctor, actor=actor(doctor))
    assert first.state == "final" and first.signed_by_name == "Ana María Núñez"
    assert Report.objects.for_tenant(tenant).get(study=study).state == "final"

    sr = stored(tenant, first.sop_instance_uid)
    assert sr.SOPClassUID == BASIC_TEXT_SR and sr.StudyInstanceUID == study.study_instance_uid
    assert str(sr.PatientName) == "Müller^Jürgen" and sr.Modality == "SR"
    assert sr.VerificationFlag == "VERIFIED" and str(sr.VerifyingObserverSequence[0].VerifyingObserverName) \
        == "Núñez^Ana María"
    texts = {item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue for item in sr.ContentSequence}
    assert texts == {"Finding": "No fracture. Soft tissue normal.", "Impression": "Normal study."}
    study.refresh_from_db()
    assert (study.num_series, study.num_instances) == (2, 3)

    # Signed means signed: no second signature, no edit in place, not even through the ORM.
    with pytest.raises(services.ReportRefused, match="signed already"):
        services.draft_sign(study=study, user=doctor, actor=actor(doctor))
    with pytest.raises(services.ReportRefused, match="amend it"):
        services.draft_save(study=study, user=doctor, findings="changed", impression="", actor=actor(doctor))
    first.findings = "tampered"
    with pytest.raises(FinalReportChanged):
        first.save()

    second = services.amendment_start(study=study, user=doctor, actor=actor(doctor))
    assert (second.number, second.amends_id, second.findings) == (2, first.pk, "No fracture. Soft tissue normal.")
    services.draft_save(study=study, user=doctor, findings="Hairline fracture of the radius.",
                        impression="Fracture.", actor=actor(doctor))
    second = services.draft_sign(study=study, user=doctor, actor=actor(doctor))
    amended = stored(tenant, second.sop_instance_uid)
    predecessor = amended.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert predecessor.ReferencedSOPInstanceUID == first.sop_instance_uid
    assert amended.SeriesInstanceUID == sr.SeriesInstanceUID  # one report series per study
    first.refresh_from_db()
    assert first.findings == "No fracture. Soft tissue normal."  # the original is kept
    assert events(tenant) == ["report.draft_saved", "report.draft_saved", "report.signed",
                              "report.amendment_started", "report.draft_saved", "report.signed"]


def test_signed_pdf_is_an_encapsulated_pdf(tenant, make_member):
    doctor = make_member(tenant, roles.RADIOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    version = services.pdf_attach(study=study, user=doctor, pdf=PDF, title="CT report", actor=actor(doctor))
    ds = stored(tenant, version.sop_instance_uid)
    assert ds.SOPClassUID == ENCAPSULATED_PDF and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == PDF
    with pytest.raises(services.ReportRefused, match="not a PDF"):
        services.pdf_attach(study=study, user=doctor, pdf=b"MZ\x90\x00", title="", actor=actor(doctor))
    assert ReportVersion.objects.for_tenant(tenant).count() == 1


def test_a_large_pdf_is_spooled_on_the_upload_disk_not_in_the_system_tmp(tenant, make_member, login,
                                                                         monkeypatch, settings, tmp_path):
    """A report PDF over FILE_UPLOAD_MAX_MEMORY_SIZE goes to a temporary file while the
    request runs: on the disk kept for uploads (INGEST_TMP_DIR, swept of leftovers), not in
    /tmp, which nobody is told to encrypt."""
    import subprocess
    import sys
    from pathlib import Path

    from django.core.files import uploadedfile

    # The setting follows INGEST_TMP_DIR, read fresh by a process of its own (this one's
    # INGEST_TMP_DIR is a per-test folder set after the settings were loaded).
    uploads = tmp_path / "uploads-disk"
    loaded = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings as s; "
                               "print(s.FILE_UPLOAD_TEMP_DIR)"],
        cwd=Path(settings.BASE_DIR), capture_output=True, text=True, timeout=120, check=True,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
             "CLOUDPACS_VAR_DIR": str(tmp_path / "var"), "INGEST_TMP_DIR": str(uploads)})
    assert loaded.stdout.strip() == str(uploads) and uploads.is_dir()

    made = []
    original = uploadedfile.TemporaryUploadedFile.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(Path(self.temporary_file_path()))

    monkeypatch.setattr(uploadedfile.TemporaryUploadedFile, "__init__", recording)
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    doctor = make_member(tenant, roles.RADIOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    client = login(doctor, the_client=Client())
    large = PDF + b"%" * (settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1)
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(reverse("archive:report_pdf_attach", kwargs={"tenant_slug": tenant.slug, "pk": study.pk}),
                           {"pdf": SimpleUploadedFile("r.pdf", large, "application/pdf")})
    assert response.status_code == 302 and ReportVersion.objects.for_tenant(tenant).count() == 1  # attached
    assert made and {path.parent for path in made} == {uploads}
    assert not any(path.exists() for path in made)  # removed once the request ended


def test_report_reaches_qido_and_wado(tenant, make_member, login):
    doctor = make_member(tenant, roles.RADIOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    services.draft_save(study=study, user=doctor, findings="Normal.", impression="Normal.", actor=actor(doctor))
    version = services.draft_sign(study=study, user=doctor, actor=actor(doctor))
    client = login(doctor, the_client=Client())
    base = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": tenant.slug})
    found = client.get(f"{base}/{study.study_instance_uid}/instances", {"Modality": "SR"},
                       HTTP_ACCEPT="application/dicom+json")
    assert found.status_code == 200
    [hit] = json.loads(found.content)
    assert hit["00080018"]["Value"] == [version.sop_instance_uid]


def test_assign_only_to_a_reader(tenant, make_member):
    doctor = make_member(tenant, roles.RADIOLOGIST)
    desk = make_member(tenant, roles.TECHNOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    services.assign(study=study, assignee=doctor, actor=Actor.system("test"))
    report = Report.objects.for_tenant(tenant).get(study=study)
    assert report.assigned_to == doctor and report.state == "unread"
    with pytest.raises(services.ReportRefused):
        services.assign(study=study, assignee=desk, actor=Actor.system("test"))
    assert events(tenant) == ["report.assigned"]


def test_share_page_shows_the_report_first(tenant, make_member):
    from archive.sharing.services import share_create

    doctor = make_member(tenant, roles.RADIOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    services.draft_save(study=study, user=doctor, findings="Small effusion on the left.",
                        impression="Effusion, no consolidation.", actor=actor(doctor))
    services.draft_sign(study=study, user=doctor, actor=actor(doctor))
    made = share_create(tenant=tenant, study=study, actor=Actor.system("test"), access_code="12345678")
    referrer = Client()
    page_url = referrer.post(f"/s/{made.token}", {"answer": "12345678"}).url
    body = referrer.get(page_url).content.decode()
    assert "Effusion, no consolidation." in body and "Small effusion on the left." in body
    assert body.index("Effusion, no consolidation.") < body.index("View images")


def test_someone_without_the_permission_is_refused_and_audited(tenant, make_member, login):
    desk = make_member(tenant, roles.TECHNOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    client = login(desk, the_client=Client())
    url = reverse("archive:report_action", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})
    response = client.post(url, {"action": "amend"})
    assert response.status_code == 403
    assert not Report.objects.for_tenant(tenant).exists()
    [refused] = AuditEvent.objects.for_tenant(tenant).filter(action="report.refused")
    assert refused.detail["attempted"] == "amend" and refused.actor_label == desk.email
    page = client.get(reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": study.pk}))
    assert b"Sign as final" not in page.content and b"Not reported yet" in page.content


def test_a_draft_edited_while_it_is_signed_is_not_marked_signed(tenant, make_member, monkeypatch):
    """The SR is made from the draft as read when signing began: if someone saves the draft
    meanwhile, the stored SR would differ from the row marked final, so signing is refused."""
    doctor = make_member(tenant, roles.RADIOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    services.draft_save(study=study, user=doctor, findings="First text.", impression="", actor=actor(doctor))
    real_store = services._store

    def store_while_another_tab_saves(study_, data, actor_):
        services.draft_save(study=study, user=doctor, findings="Second text.", impression="", actor=actor(doctor))
        real_store(study_, data, actor_)

    monkeypatch.setattr(services, "_store", store_while_another_tab_saves)
    with pytest.raises(services.ReportRefused, match="changed while it was being signed"):
        services.draft_sign(study=study, user=doctor, actor=actor(doctor))
    [version] = ReportVersion.objects.for_tenant(tenant).all()
    assert (version.state, version.findings) == ("draft", "Second text.")
    assert "report.sign_refused" in events(tenant)


def test_text_and_pdf_reports_go_in_series_of_their_own(tenant, make_member):
    doctor = make_member(tenant, roles.RADIOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    services.draft_save(study=study, user=doctor, findings="Text.", impression="", actor=actor(doctor))
    text = services.draft_sign(study=study, user=doctor, actor=actor(doctor))
    pdf = services.pdf_attach(study=study, user=doctor, pdf=PDF, title="Addendum", actor=actor(doctor))
    sr, doc = stored(tenant, text.sop_instance_uid), stored(tenant, pdf.sop_instance_uid)
    assert (sr.Modality, doc.Modality) == ("SR", "DOC") and sr.SeriesInstanceUID != doc.SeriesInstanceUID


def test_storage_out_of_reach_is_a_message_and_leaves_no_half_made_report(tenant, make_member, login, monkeypatch):
    from archive.storage.durability import StorageUnavailable

    doctor = make_member(tenant, roles.RADIOLOGIST)
    study = ingest_series(tenant, study_date=past(0), n=1)
    client = login(doctor, the_client=Client())

    def unreachable(*args, **kwargs):
        raise StorageUnavailable("no storage region took the instance")

    monkeypatch.setattr(services, "_store", unreachable)
    url = reverse("archive:report_action", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})
    response = client.post(url, {"action": "sign", "findings": "Normal.", "impression": "Normal."}, follow=True)
    assert response.status_code == 200 and b"could not be stored now" in response.content
    assert list(ReportVersion.objects.for_tenant(tenant).values_list("state", flat=True)) == ["draft"]
    pdf_url = reverse("archive:report_pdf_attach", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})
    # The draft stays a draft; attaching a PDF is refused while it is open, storage or not.
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(pdf_url, {"pdf": SimpleUploadedFile("r.pdf", PDF, "application/pdf")}, follow=True)
    assert response.status_code == 200 and ReportVersion.objects.for_tenant(tenant).count() == 1
