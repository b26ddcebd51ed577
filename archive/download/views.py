"""Download a study as a zip of DICOM files with a DICOMDIR: for a member or token with
archive.download, and for a share that allows downloads (archive/sharing/public.py)."""

from django.http import StreamingHttpResponse
from django.views.decorators.http import require_safe

from archive.download.zipped import study_zip
from archive.views.lookup import study_or_404
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
