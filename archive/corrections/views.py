"""Corrections on the study page: patient details, moving a series, merging, reverting."""

import logging

from django import forms
from django.contrib import messages
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from archive.corrections import services
from archive.corrections.models import REVERTING, RUNNING, Correction
from archive.models import Series, Study
from archive.selectors.worklist import dicom_date_display, display_name
from archive.storage.tiers import InstanceUnavailable
from archive.views.lookup import study_or_404
from tenants.decorators import require_perm, require_perm_audited

log = logging.getLogger(__name__)
PERM = "archive.correct"


class DemographicsForm(forms.Form):
    family_name = forms.CharField(max_length=64, label="Family name")
    given_name = forms.CharField(max_length=64, required=False, label="Given name(s)")
    patient_id = forms.CharField(max_length=64, label="Patient ID")
    birth_date = forms.DateField(required=False, label="Birth date", widget=forms.DateInput(attrs={"type": "date"}))
    accession_number = forms.CharField(max_length=16, required=False, label="Accession no.")
    reason = forms.CharField(max_length=500, required=False, label="Reason")


def _initial(study: Study) -> dict:
    family, _, given = study.patient_name.split("=")[0].partition("^")
    birth = dicom_date_display(study.patient_birth_date)
    return {"family_name": family, "given_name": " ".join(p for p in given.split("^") if p).strip(),
            "patient_id": study.patient_identifier, "birth_date": birth if len(birth) == 10 else None,
            "accession_number": study.accession_number}


def study_corrections_context(request, study: Study) -> dict:
    """What the study page shows of corrections (templates/corrections/_study_corrections.html)."""
    if not request.principal.can("archive.view"):
        return {}
    history = list(Correction.objects.for_tenant(request.tenant).filter(
        Q(study_instance_uid=study.study_instance_uid) | Q(source_study_uid=study.study_instance_uid))
        .select_related("created_by", "reverted_by").order_by("-created_at")[:50])
    may_correct = request.principal.can(PERM)
    same_patient = list(Study.objects.for_tenant(request.tenant).filter(
        patient_identifier=study.patient_identifier, patient_name=study.patient_name,
        patient_birth_date=study.patient_birth_date).exclude(pk=study.pk).order_by("-study_date")[:20]) \
        if may_correct else []
    for other in same_patient:
        other.date_display = dicom_date_display(other.study_date)
    return {"corrections": history, "may_correct": may_correct,
            "correction_running": any(c.state in (RUNNING, REVERTING) for c in history),
            "demographics_form": DemographicsForm(initial=_initial(study)) if may_correct else None,
            "merge_targets": same_patient}


def _attempt(request, action):
    """`action()`'s result; a refusal becomes the page's message, and the result None."""
    try:
        return action()
    except services.CorrectionRefused as exc:
        messages.error(request, str(exc))
    except (InstanceUnavailable, OSError):  # storage out of reach while checking or placing
        log.warning("correction not done: storage unreachable", exc_info=True)
        messages.error(request, "Storage cannot be reached now; nothing changed: try again in a few minutes.")
    return None


def _back(request, study_pk: int | None):
    if study_pk is None:
        return redirect(reverse("archive:worklist", kwargs={"tenant_slug": request.tenant.slug}))
    return redirect(reverse("archive:study", kwargs={"tenant_slug": request.tenant.slug, "pk": study_pk})
                    + "#corrections")


def _refuse_unless_corrector(request, study, what: str) -> None:
    require_perm_audited(request, PERM, action="study.correction_refused", obj_type="study", obj_id=study.pk or "",
                         detail={"attempted": what, "reason": "no permission"})


@require_POST
@require_perm("archive.view")
def correct(request, pk: int):
    study = study_or_404(request, pk)
    _refuse_unless_corrector(request, study, "demographics")
    form = DemographicsForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return _back(request, study.pk)
    data = form.cleaned_data
    correction = _attempt(request, lambda: services.correct_demographics(
        study=study, user=request.user, actor=request.principal.actor(request), reason=data["reason"],
        changes={"PatientName": services.person_name(data["family_name"], data["given_name"]),
                 "PatientID": data["patient_id"], "PatientBirthDate": data["birth_date"],
                 "AccessionNumber": data["accession_number"]}))
    if correction is None:
        return _back(request, study.pk)
    messages.success(request, f"Correcting {', '.join(correction.after)} on {correction.total} "
                              f"image{'s' if correction.total != 1 else ''}; the previous headers are kept, "
                              "and Revert undoes it.")
    return _back(request, study.pk)


@require_POST
@require_perm("archive.view")
def move_series(request, pk: int):
    study = study_or_404(request, pk)
    _refuse_unless_corrector(request, study, "move_series")
    raw = request.POST.get("series", "")
    series = Series.objects.for_tenant(request.tenant).filter(pk=int(raw), study=study).first() if raw.isdigit() else None
    if series is None:
        raise Http404("No such series")
    wanted = request.POST.get("target", "").strip()
    matches = list(Study.objects.for_tenant(request.tenant).filter(
        Q(study_instance_uid=wanted) | Q(accession_number=wanted)).exclude(pk=study.pk)[:2]) if wanted else []
    if len(matches) != 1:
        # Two studies with that accession number: guessing could put images under the wrong patient.
        messages.error(request, "No other study of this clinic has that Study UID or accession number."
                       if not matches else "Several studies have that accession number: give the Study UID.")
        return _back(request, study.pk)
    target = matches[0]
    if _attempt(request, lambda: services.move_series(series=series, target=target, user=request.user,
                                                      actor=request.principal.actor(request),
                                                      reason=request.POST.get("reason", ""))) is None:
        return _back(request, study.pk)
    messages.success(request, f"Moving the series to the study of {display_name(target.patient_name)}; "
                              "its progress shows here.")
    return _back(request, target.pk)


@require_POST
@require_perm("archive.view")
def merge(request, pk: int):
    study = study_or_404(request, pk)
    _refuse_unless_corrector(request, study, "merge")
    raw = request.POST.get("target", "")
    target = Study.objects.for_tenant(request.tenant).filter(pk=int(raw)).first() if raw.isdigit() else None
    if target is None:
        messages.error(request, "Choose the study to merge this one into.")
        return _back(request, study.pk)
    if _attempt(request, lambda: services.merge_studies(source=study, target=target, user=request.user,
                                                        actor=request.principal.actor(request),
                                                        reason=request.POST.get("reason", ""))) is None:
        return _back(request, study.pk)
    messages.success(request, "Merging the studies; its progress shows here, and Revert undoes it.")
    return _back(request, target.pk)


@require_POST
@require_perm("archive.view")
def revert(request, correction_id: int):
    correction = Correction.objects.for_tenant(request.tenant).filter(pk=correction_id).first()
    if correction is None:
        raise Http404("No such correction")
    _refuse_unless_corrector(request, correction.study or Study(pk=None), "revert")
    if _attempt(request, lambda: services.revert(correction=correction, user=request.user,
                                                 actor=request.principal.actor(request))) is not None:
        messages.success(request, "Reverting the correction: the images get their previous headers back; "
                                  "its progress shows here.")
    return _back(request, correction.study_id)
