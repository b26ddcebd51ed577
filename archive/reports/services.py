"""Writing, signing and amending a study's report, attaching a signed PDF, assigning the
study for reading. Each is audited; a signed version becomes a DICOM object in the study
through the same ingest as every other door, so QIDO/WADO, C-FIND/C-GET, exports and
shares serve it with the images."""

from dataclasses import dataclass

import pydicom
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydicom.uid import generate_uid

from archive.ingest.service import instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance, Study
from archive.reports import dicom
from archive.reports.models import DRAFT, FINAL, PDF, UNREAD, Report, ReportVersion
from archive.storage.reader import open_instance
from tenants.audit import Actor, audit_record
from tenants.models import Membership


class ReportRefused(Exception):
    """The change is not allowed or not possible; the message says why, for the user."""


@dataclass
class ReportState:
    report: Report | None
    versions: list[ReportVersion]

    @property
    def newest(self) -> ReportVersion | None:
        return self.versions[-1] if self.versions else None

    @property
    def draft(self) -> ReportVersion | None:
        return self.newest if self.newest is not None and self.newest.state == DRAFT else None

    @property
    def signed(self) -> list[ReportVersion]:
        """Signed versions, newest first: the current report, then what it amended."""
        return [v for v in reversed(self.versions) if v.state == FINAL]


def report_state(study: Study) -> ReportState:
    report = Report.objects.for_tenant(study.tenant).filter(study=study).select_related("assigned_to").first()
    versions = list(ReportVersion.objects.for_tenant(study.tenant).filter(report=report)
                    .select_related("author", "signed_by")) if report else []
    return ReportState(report, versions)


def _locked_report(study: Study) -> Report:
    """The study's report row, made if missing, locked for this transaction."""
    Report.objects.for_tenant(study.tenant).get_or_create(
        study=study, defaults={"series_instance_uid": generate_uid(), "pdf_series_instance_uid": generate_uid()})
    return Report.objects.for_tenant(study.tenant).select_for_update().get(study=study)


def _newest(report: Report) -> ReportVersion | None:
    return ReportVersion.objects.for_tenant(report.tenant).filter(report=report).order_by("-number").first()


def _audit(study: Study, actor: Actor, action: str, **detail) -> None:
    audit_record(tenant=study.tenant, actor=actor, action=action, obj_type="study", obj_id=study.pk,
                 detail={"study_uid": study.study_instance_uid, **detail})


def _audit_now(study: Study, actor: Actor, action: str, **detail) -> None:
    with transaction.atomic():
        _audit(study, actor, action, **detail)


def draft_save(*, study: Study, user, findings: str, impression: str, actor: Actor) -> ReportVersion:
    findings, impression = findings.strip(), impression.strip()
    if not findings and not impression:
        raise ReportRefused("Write the findings or the impression.")
    with transaction.atomic():
        report = _locked_report(study)
        newest = _newest(report)
        now = timezone.now()
        if newest is not None and newest.state == DRAFT:
            ReportVersion.objects.for_tenant(study.tenant).filter(pk=newest.pk, state=DRAFT).update(
                findings=findings, impression=impression, updated_at=now, author=user)
            newest.refresh_from_db()
            version = newest
        elif newest is None:
            version = ReportVersion.objects.for_tenant(study.tenant).create(
                report=report, number=1, findings=findings, impression=impression, author=user)
        else:
            raise ReportRefused("This report is signed: amend it to change it.")
        if report.state == UNREAD:
            report.state = DRAFT
        report.updated_at = now
        report.save(update_fields=["state", "updated_at"])
        _audit(study, actor, "report.draft_saved", version=version.number, amendment=version.is_amendment)
    return version


def amendment_start(*, study: Study, user, actor: Actor) -> ReportVersion:
    """A new draft that starts from the signed report's text; the signed one stays as it is."""
    with transaction.atomic():
        report = _locked_report(study)
        newest = _newest(report)
        if newest is None or newest.state != FINAL:
            raise ReportRefused("Only a signed report can be amended." if newest is None
                                else "An amendment is being written already: sign it or change it.")
        version = ReportVersion.objects.for_tenant(study.tenant).create(
            report=report, number=newest.number + 1, amends=newest, author=user,
            findings=newest.findings, impression=newest.impression)
        _audit(study, actor, "report.amendment_started", version=version.number, amends=newest.number)
    return version


def _signer_name(user) -> str:
    return (user.get_full_name() or user.email).strip()


def _store(study: Study, data: bytes, actor: Actor) -> None:
    with spool_chunks([data]) as spooled:
        result = instance_ingest(tenant=study.tenant, spooled=spooled, actor=actor,
                                 expected_study_uid=study.study_instance_uid)
    if not result.ok:
        raise ReportRefused(f"The report could not be stored: {result.reason}")


def draft_sign(*, study: Study, user, actor: Actor) -> ReportVersion:
    """Sign the draft: it becomes final, for good, and a Basic Text SR in the study."""
    with transaction.atomic():
        report = _locked_report(study)
        draft = _newest(report)
        if draft is None:
            raise ReportRefused("There is no report to sign: write it first.")
        if draft.state == FINAL:
            raise ReportRefused("This report is signed already.")
        amends = draft.amends
    signed_at = timezone.now()
    sop_uid, data = dicom.text_report(
        study=study, series_uid=report.series_instance_uid, number=draft.number, findings=draft.findings,
        impression=draft.impression, signer=_signer_name(user), signed_at=signed_at, clinic=study.tenant.name,
        amends=(_class_of(amends), amends.sop_instance_uid) if amends is not None else None)
    # Stored before it is marked signed: a version is final only once its object is in the
    # study. (Two people signing at the same moment: the second is refused below, and its
    # object stays in the study as a harmless duplicate, named in the audit log.)
    _store(study, data, actor)
    return _mark_signed(study=study, version=draft, user=user, signed_at=signed_at, sop_uid=sop_uid, actor=actor,
                        text=(draft.findings, draft.impression))


def _class_of(version: ReportVersion) -> str:
    return dicom.ENCAPSULATED_PDF if version.kind == PDF else dicom.BASIC_TEXT_SR


def _mark_signed(*, study, version, user, signed_at, sop_uid, actor, text: tuple[str, str] | None = None
                 ) -> ReportVersion:
    with transaction.atomic():
        report = _locked_report(study)
        unchanged = ReportVersion.objects.for_tenant(study.tenant).filter(pk=version.pk, state=DRAFT)
        if text is not None:
            # Signed is what was stored: a draft saved meanwhile (another tab) is not.
            unchanged = unchanged.filter(findings=text[0], impression=text[1])
        updated = unchanged.update(
            state=FINAL, signed_by=user, signed_by_name=_signer_name(user), signed_at=signed_at,
            sop_instance_uid=sop_uid, updated_at=signed_at)
        if updated:
            report.state, report.updated_at = FINAL, signed_at
            report.save(update_fields=["state", "updated_at"])
            _audit(study, actor, "report.signed", version=version.number, amendment=version.is_amendment,
                   kind=version.kind, sop_instance_uid=sop_uid)
    if not updated:  # recorded outside the refused transaction, so the log keeps it
        _audit_now(study, actor, "report.sign_refused", version=version.number, sop_instance_uid=sop_uid)
        raise ReportRefused("The report changed while it was being signed (signed or edited elsewhere "
                            "a moment ago): read it again and sign it then.")
    version.refresh_from_db()
    return version


def pdf_attach(*, study: Study, user, pdf: bytes, title: str, actor: Actor) -> ReportVersion:
    """A report signed elsewhere, as a PDF: final at once, an Encapsulated PDF in the study.
    Attached to a signed report, it amends it."""
    if not pdf.startswith(b"%PDF-"):
        raise ReportRefused("That file is not a PDF.")
    if len(pdf) > settings.REPORT_PDF_MAX_BYTES:
        raise ReportRefused(f"The PDF is larger than {settings.REPORT_PDF_MAX_BYTES // (1 << 20)} MB.")
    with transaction.atomic():
        report = _locked_report(study)
        newest = _newest(report)
        if newest is not None and newest.state == DRAFT:
            raise ReportRefused("A written draft is open for this study: sign it before attaching a PDF.")
        version = ReportVersion.objects.for_tenant(study.tenant).create(
            report=report, number=(newest.number + 1) if newest else 1, kind=PDF, amends=newest, author=user,
            pdf_size_bytes=len(pdf))
    signed_at = timezone.now()
    sop_uid, data = dicom.pdf_report(study=study, series_uid=report.pdf_series_instance_uid, number=version.number,
                                     pdf=pdf, title=(title or "Report").strip(), signed_at=signed_at,
                                     clinic=study.tenant.name)
    try:
        _store(study, data, actor)
    except BaseException:  # refused, or storage down: no empty PDF version is left behind
        ReportVersion.objects.for_tenant(study.tenant).filter(pk=version.pk, state=DRAFT).delete()
        raise
    return _mark_signed(study=study, version=version, user=user, signed_at=signed_at, sop_uid=sop_uid, actor=actor)


def readers(tenant) -> list:
    """Members who may report: whom a study can be assigned to."""
    return [m.user for m in Membership.objects.for_tenant(tenant).select_related("user").order_by("user__email")
            if m.user.is_active and m.can("archive.report")]


def assign(*, study: Study, assignee, actor: Actor) -> Report:
    if assignee is not None and all(u.pk != assignee.pk for u in readers(study.tenant)):
        raise ReportRefused("Assign the study to a member who may write reports.")
    with transaction.atomic():
        report = _locked_report(study)
        if report.assigned_to_id == (assignee.pk if assignee else None):
            return report
        report.assigned_to, report.updated_at = assignee, timezone.now()
        report.save(update_fields=["assigned_to", "updated_at"])
        _audit(study, actor, "report.assigned", to=assignee.email if assignee else None)
    return report


def signed_pdf(*, study: Study, number: int) -> bytes | None:
    """The PDF of signed version `number` of the study's report, read back from its DICOM
    object (the only place the PDF is kept, encrypted like every instance)."""
    version = ReportVersion.objects.for_tenant(study.tenant).filter(
        report__study=study, number=number, kind=PDF, state=FINAL).first()
    instance = version and Instance.objects.for_tenant(study.tenant).filter(
        study=study, sop_instance_uid=version.sop_instance_uid).first()
    if instance is None:
        return None
    with open_instance(instance) as f:
        ds = pydicom.dcmread(f)
    document = ds.EncapsulatedDocument
    return bytes(document[:ds.get("EncapsulatedDocumentLength") or len(document)])


def current_report(study: Study) -> ReportVersion | None:
    """The signed version a reader is shown first: the newest signed one."""
    return (ReportVersion.objects.for_tenant(study.tenant).filter(report__study=study, state=FINAL)
            .order_by("-number").first())
