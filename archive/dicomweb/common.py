"""What every DICOMweb view shares: error answers and URLs. (The PHI-read audit is
tenants/phi_audit.py, shared with every other door.)"""

from django.http import JsonResponse
from django.urls import reverse

DICOM_JSON = "application/dicom+json"


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def dicomweb_root(request) -> str:
    """Absolute URL of the DICOMweb service this request came through, without a trailing
    slash: the clinic's, or a share's (which sets `request.dicomweb_root_path`)."""
    path = getattr(request, "dicomweb_root_path", None)
    if path is None:
        url = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": request.tenant.slug})
        path = url.rsplit("/studies", 1)[0]
    return request.build_absolute_uri(path)
