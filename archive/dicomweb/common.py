"""What every DICOMweb view shares: error answers, URLs, and the PHI-access audit."""

from django.http import JsonResponse
from django.urls import reverse

from tenants.audit import audit_record

DICOM_JSON = "application/dicom+json"


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def dicomweb_root(request) -> str:
    """Absolute URL of this clinic's DICOMweb service, without a trailing slash."""
    url = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": request.tenant.slug})
    return request.build_absolute_uri(url).rsplit("/studies", 1)[0]


def audit_read(request, *, action: str, obj_id, detail: dict, obj_type: str = "study") -> None:
    """One event per request (never per frame or instance): who read which study's PHI."""
    audit_record(tenant=request.tenant, actor=request.principal.actor(request), action=action,
                 obj_type=obj_type, obj_id=str(obj_id), detail=detail)
