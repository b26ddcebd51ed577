"""The study page: who, what, which series, how big, and whether it is safely stored.

Opening it shows a patient's data, so every view is audited ("study.viewed"). Links to
the viewer and to the DICOMweb download appear only when those URLs exist in this
deployment (and, for the download, when the principal may download).
"""

from django.http import Http404
from django.shortcuts import render
from django.urls import NoReverseMatch, resolve, reverse
from django.views.decorators.http import require_GET

from archive.models import Study
from archive.study_detail import study_get, study_series, study_storage_state
from archive.worklist import dicom_date_display, display_name
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read

# URL names other parts of the archive may provide, tried in order; kwargs by study.
VIEWER_URLS = ("archive:viewer", "archive:study_viewer")
DOWNLOAD_URLS = ("archive:study_download", "archive:wado_study", "archive:dicomweb_study",
                 "archive:dicomweb_study_retrieve")


def optional_url(names: tuple[str, ...], tenant, study: Study) -> str | None:
    """The first of `names` that exists and answers GET, for this study; None if none does (yet)."""
    for name in names:
        for kwargs in ({"study_uid": study.study_instance_uid}, {"pk": study.pk}):
            try:
                url = reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})
            except NoReverseMatch:
                continue
            # A path shared by several methods may not answer GET yet (archive/dicomweb/routing.py).
            methods = getattr(resolve(url).func, "by_method", None)
            if methods is None or "GET" in methods:
                return url
    return None


@require_GET
@require_perm("archive.view")
@audits_phi_read
def study_page(request, pk: int):
    try:
        study = study_get(tenant=request.tenant, pk=pk)
    except Study.DoesNotExist:
        raise Http404("No such study") from None
    series = list(study_series(study=study))
    storage = study_storage_state(study=study)
    phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
             detail={"via": "web", "study_uid": study.study_instance_uid})
    can_download = request.principal.can("archive.download")
    return render(request, "archive/study.html", {
        "study": study,
        "patient_display": display_name(study.patient_name),
        "study_date": dicom_date_display(study.study_date),
        "birth_date": dicom_date_display(study.patient_birth_date),
        "referring_display": display_name(study.referring_physician_name),
        "series": series,
        "storage": storage,
        "viewer_url": optional_url(VIEWER_URLS, request.tenant, study),
        "download_url": optional_url(DOWNLOAD_URLS, request.tenant, study) if can_download else None,
    })
