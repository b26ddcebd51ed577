"""The worklist page: find the clinic's studies.

Searches are POSTed, not sent as GET parameters: a patient's name or ID in a URL would
end up in browser history, proxy and access logs. The view keeps the last few searches
in the session under a short random key and redirects to `?s=<key>` (post/redirect/get),
so back, reload and paging work while the URL carries only the key, the sort and the
keyset cursor (a study pk).
"""

import secrets
from datetime import date

from django import forms
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from archive.selectors.worklist import (
    DEFAULT_SORT,
    SORTS,
    WorklistError,
    WorklistFilters,
    dicom_date_display,
    display_name,
    worklist_search,
)
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read

SESSION_KEY = "worklist_searches"
KEEP_SEARCHES = 10
MODALITIES = ["CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "IO", "OT", "SR"]
SORT_LABELS = {"date": "Study date", "name": "Patient name", "created": "Received"}
# Filters behind "More filters" (name and patient ID are always shown).
MORE_FIELDS = ("date_from", "date_to", "modality", "accession", "referring", "read_status", "mine")


class WorklistForm(forms.Form):
    name = forms.CharField(label="Patient name", required=False, max_length=100,
                           help_text="Any part of the name, any order: “doe jan”")
    patient_id = forms.CharField(label="Patient ID", required=False, max_length=64, help_text="Exact")
    date_from = forms.DateField(label="Study date from", required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="to", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    modality = forms.ChoiceField(required=False, choices=[("", "Any")] + [(m, m) for m in MODALITIES])
    accession = forms.CharField(label="Accession no.", required=False, max_length=64, help_text="Exact")
    referring = forms.CharField(label="Referring physician", required=False, max_length=100)
    read_status = forms.ChoiceField(label="Read status", required=False, choices=[
        ("", "Any"), ("unread", "Unread"), ("draft", "Draft report"), ("final", "Final report")])
    mine = forms.BooleanField(label="Assigned to me", required=False)
    sort = forms.ChoiceField(choices=[(k, k) for k in SORTS], required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filters(self, user=None) -> WorklistFilters:
        names = WorklistFilters.__dataclass_fields__
        values = {k: v for k, v in self.cleaned_data.items() if k in names and v}
        if self.cleaned_data.get("mine") and user is not None:
            values["assigned_to"] = user.pk
        return WorklistFilters(**values)


def _to_session(filters: WorklistFilters) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in filters.__dict__.items() if v}


def _from_session(stored: dict) -> WorklistFilters:
    values = {k: date.fromisoformat(v) if k.startswith("date_") else v for k, v in stored.items()}
    return WorklistFilters(**values)


def _remember(request, filters: WorklistFilters) -> str:
    searches = dict(request.session.get(SESSION_KEY, {}))
    key = secrets.token_urlsafe(6)
    searches[key] = _to_session(filters)
    request.session[SESSION_KEY] = dict(list(searches.items())[-KEEP_SEARCHES:])
    return key


def _page_url(request, **params) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return reverse("archive:worklist", kwargs={"tenant_slug": request.tenant.slug}) + (f"?{query}" if query else "")


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


@require_http_methods(["GET", "HEAD", "POST"])
@require_perm("archive.view")
@audits_phi_read
def worklist(request):
    if request.method == "POST":
        form = WorklistForm(request.POST)
        if not form.is_valid():
            return render(request, "archive/worklist.html", {
                "form": form, "studies": [], "more_fields": MORE_FIELDS,
                "more_open": any(form[f].value() for f in MORE_FIELDS)}, status=400)
        filters = form.filters(request.user)
        sort = form.cleaned_data.get("sort") or DEFAULT_SORT
        key = _remember(request, filters) if filters.active() else None
        return HttpResponseRedirect(_page_url(request, s=key, sort=sort))

    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else DEFAULT_SORT
    after = _int_or_none(request.GET.get("after"))
    key = request.GET.get("s") or None
    filters, expired = WorklistFilters(), False
    if key:
        stored = request.session.get(SESSION_KEY, {}).get(key)
        expired = stored is None
        filters = _from_session(stored) if stored else filters
    form = WorklistForm(initial={**filters.__dict__, "mine": filters.assigned_to is not None, "sort": sort})
    try:
        page = worklist_search(tenant=request.tenant, filters=filters, sort=sort, after=after)
    except WorklistError as error:  # a stored search from an older version, say
        form.add_error(None, str(error))
        return render(request, "archive/worklist.html", {"form": form, "studies": [], "more_fields": MORE_FIELDS,
                                                         "more_open": True}, status=400)
    for study in page.studies:
        study.display_name = display_name(study.patient_name)
        study.date_display = dicom_date_display(study.study_date)
        study.birth_display = dicom_date_display(study.patient_birth_date)
        study.referring_display = display_name(study.referring_physician_name)
    # The list shows patients' names: reading it is a PHI access.
    phi_read(request, action="worklist.viewed", obj_type="worklist",
             detail={"via": "web", "filters": filters.active(), "sort": sort, "after": after,
                     "shown": len(page.studies)})
    return render(request, "archive/worklist.html", {
        "form": form,
        "more_fields": MORE_FIELDS,
        "more_open": any(getattr(filters, f, None) for f in MORE_FIELDS) or filters.assigned_to is not None,
        "studies": page.studies,
        "searching": bool(filters.active()),
        "expired": expired,
        "sort": sort,
        "sort_links": [(label, _page_url(request, s=key, sort=k), k == sort) for k, label in SORT_LABELS.items()],
        "first_url": _page_url(request, s=key, sort=sort) if after else None,
        "next_url": _page_url(request, s=key, sort=sort, after=page.next_after) if page.next_after else None,
        "clear_url": _page_url(request, sort=sort),
    })
