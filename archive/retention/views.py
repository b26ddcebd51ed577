"""Retention pages: the clinic's policy, the past-retention report, and the two-person
deletion workflow (request on a study; approve or cancel in the list of requests).

Views check permissions, call one service and render; the rules live in services.py and
deletion.py."""


from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from archive.retention import deletion
from archive.retention.forms import DeletionRequestForm, RetentionPolicyForm
from archive.retention.models import DeletionRequest, StudyTombstone
from archive.retention.purge import purges_unfinished, tombstone_purge_finish
from archive.retention.services import (
    POLICY_FIELDS,
    policy_get,
    policy_update,
    retention_fill_missing,
    retention_past,
    study_retention,
)
from archive.views.lookup import study_or_404
from tenants.audit import audit_record
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read

PAGE_SIZE = 50


def display_name(dicom_name: str) -> str:
    """"DOE^JANE" -> "DOE, JANE" (the first component group only)."""
    family, _, rest = dicom_name.split("=")[0].partition("^")
    given = " ".join(p for p in rest.split("^") if p)
    return f"{family}, {given}" if family and given else (family or given)


def dicom_date_display(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def study_url(tenant, pk: int | None) -> str | None:
    """The study page's URL, if this deployment has one (it lives with the worklist)."""
    if pk is None:
        return None
    try:
        return reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": pk})
    except NoReverseMatch:
        return None


@require_perm("tenant.manage_settings")
def retention_settings(request: HttpRequest) -> HttpResponse:
    policy = policy_get(tenant=request.tenant)
    form = RetentionPolicyForm(request.POST or None,
                               initial={f: getattr(policy, f) for f in POLICY_FIELDS})
    if request.method == "POST" and form.is_valid():
        changes, recomputed = policy_update(tenant=request.tenant, actor=request.principal.actor(request),
                                            **form.cleaned_data)
        if changes:
            messages.success(request, f"Retention policy saved; the retention dates of {recomputed} "
                                      "studies were recomputed.")
        return redirect("archive:retention_settings", tenant_slug=request.tenant.slug)
    return render(request, "archive/retention_settings.html", {"form": form, "policy": policy},
                  status=400 if request.method == "POST" else 200)


@require_perm("tenant.manage_settings", "archive.delete_request")
@audits_phi_read
def retention_report(request: HttpRequest) -> HttpResponse:
    retention_fill_missing(tenant=request.tenant)
    today = timezone.localdate()
    page = Paginator(retention_past(tenant=request.tenant, today=today), PAGE_SIZE).get_page(
        request.GET.get("page"))
    rows = [{"retention": r, "study": r.study, "patient": display_name(r.study.patient_name),
             "study_date": dicom_date_display(r.study.study_date),
             "study_url": study_url(request.tenant, r.study_id)} for r in page.object_list]
    # The report names patients: reading it is PHI access.
    phi_read(request, action="retention.report_viewed", obj_type="retention_report",
             detail={"page": page.number, "studies": len(rows), "total": page.paginator.count})
    return render(request, "archive/retention_report.html", {
        "page": page, "rows": rows, "today": today,
        "can_request": request.principal.can("archive.delete_request")})


@require_perm("archive.delete_request")
@audits_phi_read
def study_delete_request(request: HttpRequest, pk: int) -> HttpResponse:
    study = study_or_404(request, pk)
    form = DeletionRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            made = deletion.deletion_request_create(
                tenant=request.tenant, study=study, user=request.user, reason=form.cleaned_data["reason"],
                override_retention=form.cleaned_data["override_retention"],
                actor=request.principal.actor(request))
        except deletion.DeletionRefused as exc:
            form.add_error(None, str(exc))
        else:
            if made.cooling_off:
                messages.success(request, f"Deletion requested. It runs on {made.runs_after:%Y-%m-%d %H:%M} UTC "
                                          "unless someone cancels it; everyone who may delete studies was emailed.")
            else:
                messages.success(request, "Deletion requested. A second admin must approve it.")
            return redirect("archive:deletion_requests", tenant_slug=request.tenant.slug)
    retention = study_retention(study=study)
    phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
             detail={"via": "deletion_request", "study_uid": study.study_instance_uid})
    return render(request, "archive/deletion_request.html", {
        "form": form, "study": study, "retention": retention, "study_url": study_url(request.tenant, study.pk),
        "within_retention": retention.retain_until >= timezone.localdate(),
        "patient": display_name(study.patient_name), "study_date": dicom_date_display(study.study_date),
        "pending": DeletionRequest.objects.for_tenant(request.tenant).filter(
            study=study, state=DeletionRequest.PENDING).first(),
        "cooling_off_days": (None if deletion.second_approver_exists(tenant=request.tenant, requester=request.user)
                             else settings.DELETION_COOLING_OFF_DAYS),
    }, status=400 if request.method == "POST" else 200)


@require_perm("archive.delete_request", "archive.delete_approve")
def deletion_requests(request: HttpRequest) -> HttpResponse:
    """Pending requests (with approve/cancel), recent decisions, unfinished purges. No
    patient names: each row links to its study page, which audits the view."""
    scoped = DeletionRequest.objects.for_tenant(request.tenant).select_related(
        "study", "requested_by", "decided_by")
    pending = list(scoped.filter(state=DeletionRequest.PENDING).order_by("requested_at"))
    can_approve = request.principal.can("archive.delete_approve")
    # Anyone who may delete may stop a cooling-off request.
    may_cancel_cooling_off = request.principal.can("archive.delete_request") or can_approve
    for item in pending:
        item.may_cancel = (can_approve or item.requested_by_id == request.user.pk
                           or (item.cooling_off and may_cancel_cooling_off))
        item.study_url = study_url(request.tenant, item.study_id)
        # Offer the button only to an admin whose approval would be accepted.
        item.approval_refusal = (deletion.approval_refusal(tenant=request.tenant, request=item, user=request.user)
                                 if can_approve else None)
    return render(request, "archive/deletion_requests.html", {
        "pending": pending,
        "decided": scoped.exclude(state=DeletionRequest.PENDING).order_by("-decided_at")[:50],
        "unfinished": purges_unfinished(tenant=request.tenant),
        "can_approve": can_approve,
    })


def _back(request: HttpRequest) -> HttpResponse:
    return redirect("archive:deletion_requests", tenant_slug=request.tenant.slug)


@require_POST
@require_perm("archive.delete_approve")
def deletion_approve(request: HttpRequest, request_id: int) -> HttpResponse:
    try:
        tombstone = deletion.deletion_request_approve(tenant=request.tenant, request_id=request_id,
                                                      user=request.user, actor=request.principal.actor(request))
    except DeletionRequest.DoesNotExist:
        raise Http404("No such deletion request") from None
    except deletion.DeletionRefused as exc:
        messages.error(request, str(exc))
        return _back(request)
    messages.success(request, f"Study {tombstone.study_instance_uid} deleted "
                              f"({tombstone.num_instances} instances).")
    return _back(request)


@require_POST
@require_perm("archive.delete_request", "archive.delete_approve")
def deletion_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    try:
        deletion.deletion_request_cancel(tenant=request.tenant, request_id=request_id, user=request.user,
                                         may_approve=request.principal.can("archive.delete_approve"),
                                         actor=request.principal.actor(request))
    except DeletionRequest.DoesNotExist:
        raise Http404("No such deletion request") from None
    except deletion.DeletionRefused as exc:
        messages.error(request, str(exc))
        return _back(request)
    messages.success(request, "Deletion request cancelled.")
    return _back(request)


@require_POST
@require_perm("archive.delete_approve")
def tombstone_purge(request: HttpRequest, tombstone_id: int) -> HttpResponse:
    """Retry deleting the objects of an approved deletion that a region refused."""
    tombstone = StudyTombstone.objects.for_tenant(request.tenant).filter(pk=tombstone_id).first()
    if tombstone is None:
        raise Http404("No such deletion")
    if tombstone.objects_purged_at is None:
        if tombstone_purge_finish(tombstone=tombstone):
            audit_record(tenant=request.tenant, actor=request.principal.actor(request),
                         action="study.objects_purged", obj_type="tombstone", obj_id=tombstone.pk,
                         detail={"study_uid": tombstone.study_instance_uid})
            messages.success(request, "All stored objects of the deleted study are gone.")
        else:
            messages.error(request, "Some objects could not be deleted yet; try again later.")
    return _back(request)
