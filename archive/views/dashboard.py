"""The clinic's landing page: what its archive holds, whether the copies keep up, and how
modalities connect. Counts and connection details only, so opening it is not a PHI access."""

from django.shortcuts import render
from django.urls import reverse

from archive.selectors.dashboard import archive_summary, dicom_connection
from tenants.decorators import require_member


@require_member
def dashboard(request):
    summary = archive_summary(tenant=request.tenant) if request.principal.can("archive.view") else None
    dicomweb = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": request.tenant.slug})
    return render(request, "archive/dashboard.html", {
        "summary": summary,
        "dicom": dicom_connection(tenant=request.tenant),
        # The base of the DICOMweb service (QIDO/WADO/STOW paths go below it).
        "dicomweb_url": request.build_absolute_uri(dicomweb.rsplit("/", 1)[0]),
    })
