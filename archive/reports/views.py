"""The report on the study page: write, sign, amend, attach a signed PDF, assign; and the
signed PDF itself, read back from the study's DICOM object."""

import logging
from contextlib import contextmanager

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from archive.reports import services
from archive.storage.durability import StorageUnavailable
from archive.views.lookup import study_or_404
from tenants.decorators import require_perm, require_perm_audited
from tenants.models import User
from tenants.phi_audit import audits_phi_read, phi_read

log = logging.getLogger(__name__)
REPORT_PERM = "archive.report"


class ReportForm(forms.Form):
    findings = forms.CharField(required=False, max_length=20000, widget=forms.Textarea(attrs={"rows": 8}))
    impression = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class PdfForm(forms.Form):
    title = forms.CharField(required=False, max_length=64, label="Title")
    pdf = forms.FileField(label="Signed PDF")


def study_report_context(request, study) -> dict:
    """What the study page shows of the report (templates/reports/_study_report.html)."""
    state = services.report_state(study)
    may_report = request.principal.can(REPORT_PERM)
    draft = state.draft
    return {
        "report_state": state,
        "may_report": may_report,
        "report_form": ReportForm(initial={"findings": draft.findings, "impression": draft.impression})
        if may_report and draft else ReportForm() if may_report and not state.versions else None,
        "pdf_form": PdfForm() if may_report and draft is None else None,
        "readers": services.readers(request.tenant) if may_report else [],
    }


@contextmanager
def _told(request, study):
    """A refusal, or storage out of reach, becomes a message on the study page: the report
    stays as it was, nothing half-made."""
    try:
        yield
    except services.ReportRefused as exc:
        messages.error(request, str(exc))
    except (StorageUnavailable, OSError):
        log.warning("report of study %s not stored: storage unreachable", study.pk, exc_info=True)
        messages.error(request, "The report could not be stored now (storage unreachable); nothing changed: "
                                "try again in a few minutes.")


def _back(request, study):
    return redirect(reverse("archive:study", kwargs={"tenant_slug": request.tenant.slug, "pk": study.pk}) + "#report")


def _refuse_unless_reporter(request, study, action: str) -> None:
    require_perm_audited(request, REPORT_PERM, action="report.refused", obj_type="study", obj_id=study.pk,
                         detail={"attempted": action, "study_uid": study.study_instance_uid})


@require_POST
@require_perm("archive.view")
def report_action(request, pk: int):
    study = study_or_404(request, pk)
    action = request.POST.get("action", "")
    if action not in ("save", "sign", "amend"):
        return HttpResponse("Unknown report action.", status=400, content_type="text/plain")
    _refuse_unless_reporter(request, study, action)
    actor = request.principal.actor(request)
    with _told(request, study):
        if action == "amend":
            services.amendment_start(study=study, user=request.user, actor=actor)
            messages.success(request, "Amendment started from the signed report; the signed one is kept.")
        else:
            form = ReportForm(request.POST)
            if not form.is_valid():
                raise services.ReportRefused(" ".join(e for errors in form.errors.values() for e in errors))
            if action == "save" or form.has_changed():
                services.draft_save(study=study, user=request.user, findings=form.cleaned_data["findings"],
                                    impression=form.cleaned_data["impression"], actor=actor)
            if action == "sign":
                version = services.draft_sign(study=study, user=request.user, actor=actor)
                messages.success(request, f"Report signed (version {version.number}); it is stored in the study.")
            else:
                messages.success(request, "Draft saved.")
    return _back(request, study)


@require_POST
@require_perm("archive.view")
def report_pdf_attach(request, pk: int):
    study = study_or_404(request, pk)
    _refuse_unless_reporter(request, study, "attach_pdf")
    form = PdfForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose the signed PDF to attach.")
        return _back(request, study)
    upload = form.cleaned_data["pdf"]
    with _told(request, study):
        if upload.size > settings.REPORT_PDF_MAX_BYTES:
            raise services.ReportRefused("The PDF is too large.")
        services.pdf_attach(study=study, user=request.user, pdf=upload.read(), title=form.cleaned_data["title"],
                            actor=request.principal.actor(request))
        messages.success(request, "Signed PDF attached; it is stored in the study.")
    return _back(request, study)


@require_POST
@require_perm("archive.view")
def report_assign(request, pk: int):
    study = study_or_404(request, pk)
    _refuse_unless_reporter(request, study, "assign")
    raw = request.POST.get("assignee", "")
    assignee = None
    if raw:
        assignee = User.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
        if assignee is None:
            messages.error(request, "Choose a member from the list.")
            return _back(request, study)
    try:
        services.assign(study=study, assignee=assignee, actor=request.principal.actor(request))
        messages.success(request, f"Assigned to {assignee.email}." if assignee else "No longer assigned.")
    except services.ReportRefused as exc:
        messages.error(request, str(exc))
    return _back(request, study)


@require_GET
@require_perm("archive.view")
@audits_phi_read
def report_pdf(request, pk: int, number: int):
    """A signed PDF report, from its DICOM object in the study."""
    study = study_or_404(request, pk)
    pdf = services.signed_pdf(study=study, number=number)
    if pdf is None:
        raise Http404("No such report")
    phi_read(request, action="report.viewed", obj_type="study", obj_id=study.pk,
             detail={"study_uid": study.study_instance_uid, "version": number})
    return pdf_response(pdf, f"report-{study.pk}-v{number}.pdf")


def pdf_response(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    # A download, not a page of this origin: a PDF is a document of someone else's making.
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
