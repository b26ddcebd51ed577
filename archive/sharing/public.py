"""What a referrer (or patient) reaches without an account: the link /s/<token>, its
access check, the share's page, its viewer and its DICOMweb root. Everything under
/s/v/<public id>/ needs the session that passed the check and reads only the share's
studies; any other study, or another clinic's, is a 404, decided here on the server."""

from functools import wraps

from csp.decorators import csp_update
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from archive.dicomweb.common import error
from archive.download.views import zip_response
from archive.reports import services as report_services
from archive.reports.views import pdf_response
from archive.selectors.worklist import dicom_date_display, display_name
from archive.sharing import access, services
from archive.sharing.deidentify import BULK_TAGS
from archive.sharing.models import Share
from archive.viewer import page as viewer_page
from archive.viewer.views import VIEWER_CSP, viewer_html, viewer_js
from tenants.audit import Actor, AuditEvent, audit_record
from tenants.phi_audit import audits_phi_read, phi_read
from tenants.principal import client_ip


def _visitor(request, share: Share) -> Actor:
    """Who is at the link before passing its check: the share, from this address."""
    return Actor(AuditEvent.SHARE, str(share.pk), share.audit_label, client_ip(request),
                 request.META.get("HTTP_USER_AGENT", ""))


def _unavailable(request, status: int, reason: str):
    return render(request, "sharing/unavailable.html", {"reason": reason}, status=status)


def _page_url(share: Share) -> str:
    return reverse("sharing:page", kwargs={"public_id": share.public_id})


@require_http_methods(["GET", "POST"])
def open_link(request, token: str):
    """The link itself: the access check, then the share's page (whose URL has no token)."""
    share = services.share_find(token)
    if share is None or not share.tenant.is_active:
        return _unavailable(request, 404, "unknown")
    if not share.is_active:
        audit_record(tenant=share.tenant, actor=_visitor(request, share), action="share.refused",
                     obj_type="share", obj_id=str(share.pk), detail={"status": share.status})
        return _unavailable(request, 410, share.status)
    if access.is_granted(request, share):
        return redirect(_page_url(share))
    error_text = ""
    if share.access == Share.NONE or request.method == "POST":
        try:
            if services.share_check_access(share=share, answer=request.POST.get("answer", ""),
                                           actor=_visitor(request, share)):
                access.grant(request, share)
                services.share_opened(share=share, actor=_visitor(request, share))
                return redirect(_page_url(share))
            error_text = ("That code is not right." if share.access == Share.CODE
                          else "That date of birth does not match.")
        except services.Locked as locked:
            return render(request, "sharing/locked.html", {"until": locked.until}, status=429)
    # The site's Referrer-Policy (same-origin) keeps the link's token from other origins;
    # "no-referrer" would make the form's POST carry Origin: null, which CSRF refuses.
    return render(request, "sharing/check.html", {"share": share, "error": error_text, "clinic": share.tenant.name},
                  status=403 if error_text else 200)


UID_KWARGS = ("study_uid", "series_uid", "sop_uid")
# What a de-identified share's study search may ask: matching on any other attribute would
# answer questions about the real values (does PatientName match Smith*?).
DEID_QUERY_KEYS = {"limit", "offset", "includefield", "fuzzymatching"}
DEID_UID_KEYS = {"StudyInstanceUID", "0020000D", "SeriesInstanceUID", "0020000E", "SOPInstanceUID", "00080018"}


def _to_real(request, kwargs: dict) -> bool:
    """In a de-identified share, URLs and searches name pseudonyms: put the real UIDs in
    their place. False when one names nothing of the share, or asks for bulk data other
    than pixels."""
    deid = request.deidentifier
    for key in UID_KWARGS:
        if key in kwargs:
            real = deid.real(kwargs[key])
            if real is None:
                return False
            kwargs[key] = real
    if "tag_path" in kwargs and kwargs["tag_path"].upper() not in BULK_TAGS:
        return False
    query = QueryDict(mutable=True)
    for key, values in request.GET.lists():
        if key in DEID_UID_KEYS:
            reals = [deid.real(v) for value in values for v in value.split(",")]
            query.setlist(key, [",".join(r or "0" for r in reals)])  # "0": a UID of nothing
        elif key in DEID_QUERY_KEYS:
            query.setlist(key, values)
    request.GET = query
    return True


def share_session(view):
    """The view runs as the share's principal, or the answer is 404."""

    @wraps(view)
    def wrapper(request, public_id, **kwargs):
        share = access.opened_share(request, public_id)
        if share is None or not access.usable(share):
            if "/dicomweb/" in request.path:
                return error(404, "No such study")
            if share is not None and not share.is_active:  # opened here: say why it no longer opens
                return _unavailable(request, 410, share.status)
            raise Http404("This share is not open in this browser")
        access.enter(request, share)
        if request.deidentifier is not None and not _to_real(request, kwargs):
            return error(404, "No such study")
        study_uid = kwargs.get("study_uid")
        if study_uid is not None and not request.principal.may_read_study(study_uid):
            return error(404, "No such study")
        request.share = share
        request.dicomweb_root_path = reverse("sharing:dicomweb_studies",
                                             kwargs={"public_id": public_id}).rsplit("/studies", 1)[0]
        response = view(request, **kwargs)
        if "max-age" in response.get("Cache-Control", ""):
            # Nothing a share shows may be used from the browser's cache once it is revoked.
            response["Cache-Control"] = "private, no-cache"
        return response

    wrapper.share_scoped = True
    return wrapper


@require_safe
@share_session
@audits_phi_read
def share_page(request):
    share = request.share
    studies = list(services.share_studies(share))
    phi_read(request, action="share.page_viewed", obj_type="share", obj_id=share.pk,
             detail={"studies": [s.pk for s in studies]})
    viewer = reverse("sharing:viewer", kwargs={"public_id": share.public_id})
    deid = request.deidentifier
    rows = [{
        "study": s,
        # The report first, images a click away; a de-identified share shows none (a
        # report's text names its patient more often than not).
        "report": None if deid else report_services.current_report(s),
        "report_pdf_url": None,
        "date": "" if deid else dicom_date_display(s.study_date),
        "viewer_url": f"{viewer}viewer?StudyInstanceUIDs={deid.uid(s.study_instance_uid) if deid else s.study_instance_uid}",
        "download_url": (reverse("sharing:download", kwargs={"public_id": share.public_id, "pk": s.pk})
                         if share.allow_download else None),
    } for s in studies]
    for row in rows:
        if row["report"] is not None and row["report"].kind == "pdf":
            row["report_pdf_url"] = reverse("sharing:report_pdf", kwargs={
                "public_id": share.public_id, "pk": row["study"].pk, "number": row["report"].number})
    first = studies[0] if studies else None
    return render(request, "sharing/page.html", {
        "share": share, "rows": rows, "clinic": share.tenant.name,
        "patient_display": "" if deid else display_name(first.patient_name) if first else "",
        "deidentified": deid is not None,
        "days_left": max(0, (share.expires_at - timezone.now()).days),
    })


@require_safe
@share_session
@audits_phi_read
def share_download(request, pk: int):
    """One of the share's studies as a zip, when the share allows downloads."""
    study = request.share.shared_studies().filter(pk=pk).first()
    if study is None or not request.share.allow_download:
        raise Http404("No such study in this share")
    return zip_response(request, study, via="share", deidentifier=request.deidentifier)


@require_safe
@share_session
@audits_phi_read
def share_report_pdf(request, pk: int, number: int):
    """A shared study's signed PDF report (not in a de-identified share)."""
    study = request.share.shared_studies().filter(pk=pk).first()
    pdf = report_services.signed_pdf(study=study, number=number) if study and not request.deidentifier else None
    if pdf is None:
        raise Http404("No such report in this share")
    phi_read(request, action="report.viewed", obj_type="study", obj_id=study.pk,
             detail={"study_uid": study.study_instance_uid, "version": number, "via": "share"})
    return pdf_response(pdf, f"report-v{number}.pdf")


@require_safe
@share_session
@csp_update(VIEWER_CSP)
def share_viewer(request, rest: str = ""):
    return viewer_html(request, reverse("sharing:viewer_config", kwargs={"public_id": request.share.public_id}))


@require_safe
@share_session
def share_viewer_config(request):
    share = request.share
    base = reverse("sharing:viewer", kwargs={"public_id": share.public_id}).rstrip("/")
    return viewer_js(viewer_page.ohif_config(
        router_basename=base, dicomweb_root=request.build_absolute_uri(request.dicomweb_root_path),
        name=share.tenant.name, show_study_list=False),
        back_url=reverse("sharing:page", kwargs={"public_id": share.public_id}), back_label="‹ Back")
