"""The clinic's audit log: a filtered, paginated page and a streamed CSV export.

Events may name patients (in `detail`), so reading or exporting the log is itself a PHI
access and is audited (`audit.viewed`, `audit.exported`).

Pages go newest first by keyset on `seq` (`?before=<seq>`), not by offset: reading the
log appends an event to it, which would shift offset pages by one on every click, and a
keyset walks the (tenant, -seq) index however long the log grows.
"""

import json
from collections.abc import Iterator
from datetime import datetime, time, timedelta

from django import forms
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from cloudpacs.csv_export import csv_lines
from tenants.audit import AuditEvent
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read
from tenants.signin_audit import SIGNIN_ACTIONS

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
CSV_COLUMNS = ["seq", "created_at", "actor_type", "actor_id", "actor_label", "action",
               "object_type", "object_id", "ip", "user_agent", "detail", "prev_hash", "hash"]
# Kinds of event an auditor asks for together, whatever their action names.
CATEGORIES = {"signins": ("Sign-ins", SIGNIN_ACTIONS)}


class AuditFilterForm(forms.Form):
    category = forms.ChoiceField(required=False, choices=[("", "All events")] + [
        (key, label) for key, (label, _) in CATEGORIES.items()])
    action = forms.CharField(required=False, max_length=64,
                             help_text='Exact action, or a prefix ending in "." such as "member."')
    actor = forms.CharField(required=False, max_length=254, help_text="Email, token name or id")
    object_type = forms.CharField(required=False, max_length=64)
    object_id = forms.CharField(required=False, max_length=128)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def active_filters(self) -> dict:
        """The filters in effect, as plain strings (for the audit event and the links)."""
        names = ["category", "action", "actor", "object_type", "object_id", "date_from", "date_to"]
        return {n: str(self.cleaned_data[n]) for n in names if self.cleaned_data.get(n)}


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_event_list(*, tenant, filters: dict) -> QuerySet:
    """The clinic's events matching the filters, newest first."""
    events = AuditEvent.objects.for_tenant(tenant).order_by("-seq")
    if filters.get("category"):
        events = events.filter(action__in=CATEGORIES[filters["category"]][1])
    action = filters.get("action")
    if action:
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    actor = filters.get("actor")
    if actor:
        events = events.filter(Q(actor_label__icontains=actor) | Q(actor_id=actor))
    if filters.get("object_type"):
        events = events.filter(object_type=filters["object_type"])
    if filters.get("object_id"):
        events = events.filter(object_id=filters["object_id"])
    if filters.get("date_from"):
        events = events.filter(created_at__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):  # inclusive: the whole of that day
        events = events.filter(created_at__lt=_day_start(filters["date_to"] + timedelta(days=1)))
    return events


def _filter_form(request) -> AuditFilterForm:
    form = AuditFilterForm(request.GET or None)
    if form.is_bound:
        form.is_valid()
    return form


def _cleaned(form: AuditFilterForm) -> dict:
    return form.cleaned_data if form.is_bound and form.is_valid() else {}


@require_GET
@require_perm("tenant.view_audit")
@audits_phi_read
def audit_log(request):
    form = _filter_form(request)
    if form.is_bound and not form.is_valid():
        return render(request, "tenants/audit_log.html", {"form": form, "events": [], "filters": {}},
                      status=400)
    filters = _cleaned(form)
    events = audit_event_list(tenant=request.tenant, filters=filters)
    if filters.get("before"):
        events = events.filter(seq__lt=filters["before"])
    page = list(events[: PAGE_SIZE + 1])
    has_older = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    active = form.active_filters() if filters else {}
    phi_read(request, action="audit.viewed", obj_type="audit_log",
             detail={"filters": active, "before": filters.get("before")})
    return render(request, "tenants/audit_log.html", {
        "form": form,
        "events": page,
        "filters": active,
        "filter_query": urlencode(active),
        "older_before": page[-1].seq if has_older else None,
        "is_first_page": not filters.get("before"),
    })


def _csv_rows(events: QuerySet) -> Iterator[str]:
    def rows():
        for event in events.iterator(chunk_size=EXPORT_CHUNK):
            row = {c: getattr(event, c) for c in CSV_COLUMNS}
            row["created_at"] = event.created_at.isoformat()
            row["detail"] = json.dumps(event.detail, sort_keys=True, ensure_ascii=False)
            yield [row[c] for c in CSV_COLUMNS]
    return csv_lines(CSV_COLUMNS, rows())


@require_GET
@require_perm("tenant.view_audit")
@audits_phi_read
def audit_export(request):
    form = _filter_form(request)
    if form.is_bound and not form.is_valid():
        return render(request, "tenants/audit_log.html", {"form": form, "events": [], "filters": {}},
                      status=400)
    filters = _cleaned(form)
    active = form.active_filters() if filters else {}
    # Record first, then export up to and including this very event: a snapshot that
    # rows appended while a long export streams cannot tear.
    event = phi_read(request, action="audit.exported", obj_type="audit_log", detail={"filters": active})
    events = audit_event_list(tenant=request.tenant, filters=filters).filter(seq__lte=event.seq)
    response = StreamingHttpResponse(_csv_rows(events), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{request.tenant.slug}-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# Included from tenants/urls_clinic.py under "audit/", inside the `clinic` namespace.
urlpatterns = [
    path("", audit_log, name="audit"),
    path("export.csv", audit_export, name="audit_export"),
]
