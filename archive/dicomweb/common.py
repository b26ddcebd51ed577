"""What every DICOMweb view shares: error answers and URLs. (The PHI-read audit is
tenants/phi_audit.py, shared with every other door.)"""

from django.http import JsonResponse
from django.urls import reverse

DICOM_JSON = "application/dicom+json"


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def dicomweb_root(request) -> str:
    """Absolute URL of this clinic's DICOMweb service, without a trailing slash."""
    url = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": request.tenant.slug})
    return request.build_absolute_uri(url).rsplit("/studies", 1)[0]
