"""The clinic's viewer: OHIF on the clinic's own DICOMweb root, opened from the worklist
and the study page (audited there, study by study), and a light page of series thumbnails
for phones and slow connections."""

from csp.constants import SELF
from csp.decorators import csp_update
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET

from archive.selectors.studies import study_series
from archive.selectors.worklist import dicom_date_display, display_name
from archive.viewer import install, page
from archive.views.lookup import study_or_404
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read

# What OHIF needs beyond the site's policy, on its page only: WebAssembly image codecs,
# decoders in workers started from blob: URLs, the inline styles React and its component
# library write, and images and fonts from data:/blob: URLs. Still nothing from another origin.
VIEWER_CSP = {
    "script-src": ["'wasm-unsafe-eval'"],
    "worker-src": [SELF, "blob:"],
    "style-src": ["'unsafe-inline'"],
    "img-src": ["data:", "blob:"],
    "font-src": ["data:"],
    "connect-src": ["data:", "blob:"],
}


def not_installed(request) -> HttpResponse:
    return render(request, "archive/viewer_missing.html", status=503)


def viewer_html(request, config_url: str) -> HttpResponse:
    if not install.installed():
        return not_installed(request)
    # A member's viewer counts down to the automatic logoff like every page (a share's
    # visitor has no member session: the snippet is empty for them).
    response = HttpResponse(page.index_html(config_url, render_to_string("_idle_script.html", request=request)))
    response["Cache-Control"] = "no-store"
    return response


def viewer_js(config: dict, *, back_url: str, back_label: str) -> HttpResponse:
    response = HttpResponse(page.config_script(config, back_url=back_url, back_label=back_label),
                            content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def clinic_viewer_base(request) -> str:
    return reverse("archive:viewer", kwargs={"tenant_slug": request.tenant.slug}).rstrip("/")


@require_GET
@require_perm("archive.view")
@csp_update(VIEWER_CSP)
def viewer(request, rest: str = ""):
    """OHIF's page, for every path under the viewer (it routes in the browser)."""
    return viewer_html(request, reverse("archive:viewer_config", kwargs={"tenant_slug": request.tenant.slug}))


@require_GET
@require_perm("archive.view")
def viewer_config(request):
    root = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": request.tenant.slug}).rsplit("/studies", 1)[0]
    return viewer_js(page.ohif_config(router_basename=clinic_viewer_base(request),
                                      dicomweb_root=request.build_absolute_uri(root),
                                      name=request.tenant.name, show_study_list=False),
                     back_url=reverse("archive:worklist", kwargs={"tenant_slug": request.tenant.slug}),
                     back_label="‹ Studies")


@require_GET
@require_perm("archive.view")
@audits_phi_read
def open_study(request, pk: int):
    """The worklist's and study page's "View" link: audited here, then OHIF on the study."""
    study = study_or_404(request, pk)
    phi_read(request, action="study.viewer_opened", obj_type="study", obj_id=study.pk,
             detail={"via": "viewer", "study_uid": study.study_instance_uid})
    return redirect(f"{clinic_viewer_base(request)}/viewer?StudyInstanceUIDs={study.study_instance_uid}")


@require_GET
@require_perm("archive.view")
@audits_phi_read
def thumbnails(request, pk: int):
    """Each series as one small rendered image (WADO-RS thumbnail), for a phone."""
    study = study_or_404(request, pk)
    series = list(study_series(study=study))
    phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
             detail={"via": "thumbnails", "study_uid": study.study_instance_uid})
    slug = request.tenant.slug
    return render(request, "archive/thumbnails.html", {
        "study": study,
        "patient_display": display_name(study.patient_name),
        "study_date": dicom_date_display(study.study_date),
        "series": [(s, reverse("archive:dicomweb_series_thumbnail", kwargs={
            "tenant_slug": slug, "study_uid": study.study_instance_uid,
            "series_uid": s.series_instance_uid})) for s in series],
        "viewer_url": reverse("archive:viewer_open", kwargs={"tenant_slug": slug, "pk": study.pk}),
    })
