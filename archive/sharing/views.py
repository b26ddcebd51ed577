"""The clinic's side of sharing: share a study from its page, see what was shared, revoke
or extend it. The link is shown once, with a printable handout (QR code) for the patient:
only its hash is kept, so it cannot be shown again."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from archive.models import Study
from archive.selectors.worklist import dicom_date_display, display_name
from archive.sharing import services
from archive.sharing.forms import ShareForm
from archive.sharing.models import Share
from archive.views.lookup import study_or_404
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read
from tenants.views.twofactor import qr_svg


def link_url(request, token: str) -> str:
    return request.build_absolute_uri(reverse("sharing:open", kwargs={"token": token}))


def _share_or_404(request, share_id: int) -> Share:
    share = Share.objects.for_tenant(request.tenant).filter(pk=share_id).first()
    if share is None:
        raise Http404("No such share")
    return share


@require_http_methods(["GET", "POST"])
@require_perm("archive.share")
@audits_phi_read
def share_new(request, pk: int):
    study = study_or_404(request, pk)
    form = ShareForm(request.POST or None, study=study)
    if request.method == "POST" and form.is_valid() and form.cleaned_data["nonce"] and Share.objects.for_tenant(
            request.tenant).filter(form_nonce=form.cleaned_data["nonce"]).exists():
        # The same form again (a reload of the created page): the link was shown once.
        phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
                 detail={"via": "share_form_again", "study_uid": study.study_instance_uid})
        messages.info(request, "That share was already made; its link was shown once. Revoke it from the "
                               "Shares page if it was lost, and make a new one.")
        return redirect(reverse("archive:shares", kwargs={"tenant_slug": request.tenant.slug}))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        actor = request.principal.actor(request)
        refused = services.may_create(request.principal, allow_download=data["allow_download"])
        try:
            if refused:
                raise ValidationError(refused)
            made = services.share_create(
                tenant=request.tenant, study=study, actor=actor,
                created_by=request.principal.user, whole_patient=data["scope"] == "patient",
                expires_in_days=data["expires_in_days"], access=data["access"],
                access_code=data.get("access_code") or "", allow_download=data["allow_download"],
                recipient_name=data["recipient_name"], recipient_email=data["recipient_email"],
                message=data["message"], deidentify=data["deidentify"], form_nonce=data["nonce"] or None)
        except ValidationError as exc:
            form.add_error(None, exc)
        except IntegrityError:  # the same form sent twice at once: the other one made it
            return redirect(reverse("archive:shares", kwargs={"tenant_slug": request.tenant.slug}))
        else:
            url = link_url(request, made.token)
            emailed = services.share_email(share=made.share, url=url)
            phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
                     detail={"via": "share_created", "study_uid": study.study_instance_uid})
            response = render(request, "sharing/created.html", {
                "share": made.share, "url": url, "qr": qr_svg(url), "emailed": emailed,
                "access_code": data.get("access_code") if data["access"] == Share.CODE else "",
                "study": study, "patient_display": display_name(study.patient_name),
                "studies": list(services.share_studies(made.share)),
            })
            response["Cache-Control"] = "no-store"  # the link is in this page only
            return response
    phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
             detail={"via": "share_form", "study_uid": study.study_instance_uid})
    return render(request, "sharing/new.html", {
        "form": form, "study": study, "patient_display": display_name(study.patient_name),
        "study_date": dicom_date_display(study.study_date),
    })


@require_GET
@require_perm("archive.share")
@audits_phi_read
def share_list(request):
    studies = Study.objects.for_tenant(request.tenant).only("pk", "study_date", "study_description", "patient_name")
    shares = list(Share.objects.for_tenant(request.tenant)
                  .prefetch_related(Prefetch("studies", queryset=studies, to_attr="study_list"))
                  .order_by("-created_at")[:200])
    for share in shares:
        share.patient_display = display_name(share.study_list[0].patient_name) if share.study_list else ""
    phi_read(request, action="shares.viewed", obj_type="share", obj_id="", detail={"shares": len(shares)})
    return render(request, "sharing/list.html", {"shares": shares})


@require_POST
@require_perm("archive.share")
def share_revoke(request, share_id: int):
    share = _share_or_404(request, share_id)
    services.share_revoke(share=share, actor=request.principal.actor(request))
    messages.success(request, "The share is revoked: its link no longer opens anything.")
    return redirect(request.POST.get("next") if _safe_next(request) else reverse(
        "archive:shares", kwargs={"tenant_slug": request.tenant.slug}))


@require_POST
@require_perm("archive.share")
def share_extend(request, share_id: int):
    share = _share_or_404(request, share_id)
    try:
        days = int(request.POST.get("days", ""))
        services.share_extend(share=share, days=days, actor=request.principal.actor(request))
        messages.success(request, f"The share now expires on {share.expires_at:%Y-%m-%d}.")
    except (ValueError, ValidationError) as exc:
        messages.error(request, exc.messages[0] if isinstance(exc, ValidationError) else "Give a number of days.")
    return redirect(reverse("archive:shares", kwargs={"tenant_slug": request.tenant.slug}))


def _safe_next(request) -> bool:
    nxt = request.POST.get("next", "")
    return nxt.startswith(f"/t/{request.tenant.slug}/") and "//" not in nxt
