"""The clinic's landing page, for each role its own work: every member finds the newest
studies (one click to the images); whoever reports sees what waits for reading; whoever
shares, the recent shares; admins also how modalities connect, the members and billing
(billing's own context processor adds its summary). It names patients, so it is audited."""

from django.shortcuts import render
from django.urls import reverse

from archive.selectors.dashboard import (
    archive_summary,
    dicom_connection,
    members_summary,
    reading_queue,
    recent_studies,
)
from archive.selectors.worklist import dicom_date_display, display_name
from archive.sharing.selectors import recent_shares
from tenants.decorators import require_member
from tenants.phi_audit import audits_phi_read, phi_read


def _shown(studies):
    for study in studies:
        study.display_name = display_name(study.patient_name)
        study.date_display = dicom_date_display(study.study_date)
    return studies


@require_member
@audits_phi_read
def dashboard(request):
    principal, tenant = request.principal, request.tenant
    context = {"summary": archive_summary(tenant=tenant)}
    recent = _shown(recent_studies(tenant=tenant)) if principal.can("archive.view") else []
    context["recent"] = recent
    queue = reading_queue(tenant=tenant, user=request.user) if principal.can("archive.report") else None
    if queue is not None:
        _shown(queue.studies)
    context["queue"] = queue
    context["shares"] = recent_shares(tenant=tenant) if principal.can("archive.share") else None
    if principal.can("archive.connections"):
        dicomweb = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": tenant.slug})
        context["dicom"] = dicom_connection(tenant=tenant)
        # The base of the DICOMweb service (QIDO/WADO/STOW paths go below it).
        context["dicomweb_url"] = request.build_absolute_uri(dicomweb.rsplit("/", 1)[0])
    if principal.can("tenant.manage_members"):
        context["members"] = members_summary(tenant=tenant)
    phi_read(request, action="dashboard.viewed", obj_type="dashboard",
             detail={"recent": len(recent), "queue": len(queue.studies) if queue else 0,
                     "shares": len(context["shares"] or [])})
    return render(request, "archive/dashboard.html", context)
