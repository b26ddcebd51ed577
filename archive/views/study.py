"""The study page: who, what, which series, how big, and whether it is safely stored.

Opening it shows a patient's data, so every view is audited ("study.viewed"). The
DICOMweb download link appears for a principal who may download.
"""

from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from archive.corrections.views import study_corrections_context
from archive.reports.views import study_report_context
from archive.selectors.studies import study_series, study_storage_state
from archive.selectors.worklist import dicom_date_display, display_name
from archive.sharing.selectors import study_access_events, study_shares
from archive.views.lookup import study_or_404
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read


@require_GET
@require_perm("archive.view")
@audits_phi_read
def study_page(request, pk: int):
    study = study_or_404(request, pk)
    series = list(study_series(study=study))
    storage = study_storage_state(study=study)
    phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
             detail={"via": "web", "study_uid": study.study_instance_uid})
    can_download = request.principal.can("archive.download")
    can_share = request.principal.can("archive.share")
    sees_access = can_share or request.principal.can("tenant.view_audit")
    return render(request, "archive/study.html", {
        **study_report_context(request, study),
        **study_corrections_context(request, study),
        "study": study,
        "patient_display": display_name(study.patient_name),
        "study_date": dicom_date_display(study.study_date),
        "birth_date": dicom_date_display(study.patient_birth_date),
        "referring_display": display_name(study.referring_physician_name),
        "series": series,
        "storage": storage,
        "viewer_url": reverse("archive:viewer_open", kwargs={"tenant_slug": request.tenant.slug, "pk": study.pk}),
        "share_url": reverse("archive:share_new", kwargs={"tenant_slug": request.tenant.slug, "pk": study.pk})
        if can_share else None,
        "shares": study_shares(study=study) if can_share else [],
        "access_events": study_access_events(study=study) if sees_access else None,
        "thumbnails_url": reverse("archive:study_thumbnails", kwargs={"tenant_slug": request.tenant.slug,
                                                                       "pk": study.pk}),
        # The study as a zip of its DICOM files with a DICOMDIR (archive/download/).
        "download_url": reverse("archive:study_download", kwargs={
            "tenant_slug": request.tenant.slug, "pk": study.pk}) if can_download else None,
    })
