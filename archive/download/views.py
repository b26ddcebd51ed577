"""Download a study as a zip of DICOM files with a DICOMDIR: for a member or token with
archive.download, and for a share that allows downloads (archive/sharing/public.py). And
a clinic's whole archive, asked for and downloaded by its admins (bundle.py)."""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from archive.download.bundle import export_chunks, export_request
from archive.download.models import ClinicExport
from archive.download.zipped import study_zip
from archive.views.lookup import study_or_404
from cloudpacs.objectstore.objects import ObjectMissing
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read


def zip_response(request, study, *, via: str, deidentifier=None) -> StreamingHttpResponse:
    """Audited before the first byte; the file name says nothing about the patient."""
    stream = study_zip(study, deidentifier)
    phi_read(request, action="study.downloaded", obj_type="study", obj_id=study.pk,
             detail={"via": via, "format": "zip", "instances": study.num_instances,
                     "deidentified": deidentifier is not None,
                     "study_uid": study.study_instance_uid})
    response = StreamingHttpResponse(stream, content_type="application/zip")
    if deidentifier is None:  # de-identified files are made as they go: no length up front
        response["Content-Length"] = str(len(stream))
    response["Content-Disposition"] = f'attachment; filename="study-{study.pk}.zip"'
    response["Cache-Control"] = "private, no-store"
    return response


@require_safe
@require_perm("archive.download")
@audits_phi_read
def study_download(request, pk: int):
    study = study_or_404(request, pk)
    return zip_response(request, study, via="web")


@require_http_methods(["GET", "POST"])
@require_perm("tenant.manage_settings")
def clinic_exports(request):
    """Ask for an export of every study; see how it goes; download it when it is ready."""
    if request.method == "POST":
        export_request(tenant=request.tenant, user=request.user, actor=request.principal.actor(request))
        messages.success(request, "Export requested. It is built in the background; this page shows how it goes.")
        return redirect("archive:clinic_exports", tenant_slug=request.tenant.slug)
    exports = list(ClinicExport.objects.for_tenant(request.tenant)[:10])
    busy = any(e.state in (ClinicExport.QUEUED, ClinicExport.RUNNING) for e in exports)
    return render(request, "archive/clinic_exports.html", {"exports": exports, "busy": busy, "now": timezone.now(),
                                                          "keep_days": settings.EXPORT_KEEP_DAYS})


@require_safe
@require_perm("tenant.manage_settings")
@audits_phi_read
def clinic_export_download(request, export_id: int):
    export = ClinicExport.objects.for_tenant(request.tenant).filter(
        pk=export_id, state=ClinicExport.READY, expires_at__gt=timezone.now()).first()
    if export is None:
        raise Http404("No such export ready")
    try:
        chunks = export_chunks(export)
    except ObjectMissing:  # removed from the region (by hand, or a restore elsewhere)
        ClinicExport.objects.for_tenant(request.tenant).filter(pk=export.pk).update(
            state=ClinicExport.FAILED, error="its file is no longer in storage")
        messages.error(request, "This export's file is gone; ask for a new export.")
        return redirect("archive:clinic_exports", tenant_slug=request.tenant.slug)
    phi_read(request, action="clinic.export_downloaded", obj_type="export", obj_id=export.pk,
             detail={"studies": export.studies_done, "bytes": export.size_bytes})
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Length"] = str(export.size_bytes)
    response["Content-Disposition"] = f'attachment; filename="{request.tenant.slug}-export-{export.pk}.zip"'
    response["Cache-Control"] = "private, no-store"
    return response
