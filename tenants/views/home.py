from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse

from tenants.decorators import require_member


@login_required
def home(request):
    """Send a member to their last clinic, or let them choose one."""
    # Before a clinic is chosen: the person's memberships in all clinics, unscoped on purpose.
    memberships = list(request.user.memberships(manager="unscoped").select_related("tenant")
                       .filter(tenant__status="active"))
    last = request.session.get("last_tenant")
    for membership in memberships:
        if membership.tenant.slug == last:
            return redirect("clinic:dashboard", tenant_slug=last)
    if len(memberships) == 1:
        return redirect("clinic:dashboard", tenant_slug=memberships[0].tenant.slug)
    return render(request, "tenants/choose_clinic.html", {"memberships": memberships})


@require_member
def dashboard(request):
    # Imported here: the archive app builds on tenants, not the other way round.
    from archive.dashboard import archive_summary, dicom_connection

    summary = archive_summary(tenant=request.tenant) if request.principal.can("archive.view") else None
    dicomweb = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": request.tenant.slug})
    return render(request, "tenants/dashboard.html", {
        "summary": summary,
        "dicom": dicom_connection(tenant=request.tenant),
        # The base of the DICOMweb service (QIDO/WADO/STOW paths go below it).
        "dicomweb_url": request.build_absolute_uri(dicomweb.rsplit("/", 1)[0]),
    })
