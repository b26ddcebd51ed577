"""Corrections of what a study says about its patient, and of which study an image is in.

Every correction is checked when it is asked for (refusals come at once), then applied by a
worker (outbox kind "correct"; the study page shows its progress). It rewrites the headers
of the images it touches (pydicom changes the named
attributes; the pixel data's bytes are copied as they are), stores each as a new object in
tier 1 and both regions (archive/storage/replace.py), then in one transaction points the
images at their new objects, re-indexes the studies involved and records the old objects
(HeaderVersion): every door (QIDO/WADO, C-FIND/C-GET, exports, shares) serves the
corrected header at once, and a revert (a worker's too: it reads every earlier header back)
points the images back. A correction waits until the
study's images are verified in both regions, so the pipeline never copies an object that is
being replaced.

Refused, with nothing changed and the refusal audited: a Patient ID that belongs to another
patient (a study would have two), a merge of studies of different patients, moving a study's
last series when the study has a report or shares, and a revert after a later correction."""

import io
import logging
from dataclasses import dataclass
from datetime import date

import pydicom
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from archive.corrections import hooks
from archive.corrections.models import (
    APPLIED,
    DEMOGRAPHICS,
    FAILED,
    MERGE,
    MOVE_SERIES,
    REVERTING,
    RUNNING,
    Correction,
    HeaderVersion,
)
from archive.ingest.errors import InvalidInstance
from archive.ingest.parse import ParsedInstance
from archive.ingest.service import patient_key, patients_for, study_row_fields
from archive.models import Instance, Patient, Series, Study
from archive.outbox.services import outbox_add
from archive.reports.dicom import REPORT_CLASSES
from archive.reports.models import Report
from archive.retention.services import retention_recompute
from archive.sharing.models import Share
from archive.storage.compression import DROP, copies_point_at
from archive.storage.models import InstanceCopy
from archive.storage.reader import open_instance
from archive.storage.replace import Placed, object_place, object_remove, parse_bytes
from archive.study_header import COPIED, study_header
from tenants.audit import Actor, audit_record

log = logging.getLogger(__name__)
CORRECT = "correct"  # outbox kind: apply a correction (subject: the Correction)

# What a front desk may correct on a study, and the DICOM limits of each (PS3.5 6.2).
FIELDS = {"PatientName": "patient_name", "PatientID": "patient_identifier",
          "PatientBirthDate": "patient_birth_date", "AccessionNumber": "accession_number"}


class CorrectionRefused(Exception):
    """Not allowed or not possible now; the message says why, for the user."""


def _refuse(tenant, actor: Actor, study, what: str, why: str):
    audit_record(tenant=tenant, actor=actor, action="study.correction_refused", obj_type="study",
                 obj_id=getattr(study, "pk", "") or "", detail={"attempted": what, "reason": why})
    raise CorrectionRefused(why)


def _check_text(label: str, value: str, limit: int) -> None:
    if "\\" in value or any(ord(ch) < 32 for ch in value):
        raise CorrectionRefused(f"{label} may not contain a backslash or control characters.")
    if len(value) > limit:
        raise CorrectionRefused(f"{label} is at most {limit} characters in DICOM; it is never cut short.")


def person_name(family: str, given: str) -> str:
    family, given = family.strip(), given.strip()
    for label, part in (("The family name", family), ("The given name", given)):
        _check_text(label, part, 64)
        if "^" in part or "=" in part:
            raise CorrectionRefused(f"{label} may not contain ^ or =.")
    if not family:
        raise CorrectionRefused("The family name is needed.")
    name = f"{family}^{given}" if given else family
    _check_text("The name", name, 64)
    return name


def validated(changes: dict) -> dict:
    """The changes as DICOM values (PS3.5 VRs: PN, LO 64, DA, SH 16), or CorrectionRefused."""
    out = {}
    for keyword, value in changes.items():
        if keyword == "PatientName":
            out[keyword] = value  # built by person_name()
        elif keyword == "PatientID":
            value = value.strip()
            if not value:
                raise CorrectionRefused("The Patient ID cannot be empty.")
            _check_text("The Patient ID", value, 64)
            out[keyword] = value
        elif keyword == "PatientBirthDate":
            if value and (not isinstance(value, date) or value > timezone.localdate()):
                raise CorrectionRefused("The birth date must be a date, not in the future.")
            out[keyword] = value.strftime("%Y%m%d") if value else ""
        elif keyword == "AccessionNumber":
            value = value.strip()
            _check_text("The accession number", value, 16)
            out[keyword] = value
        else:
            raise CorrectionRefused(f"{keyword} cannot be corrected here.")
    return out


def _not_archived(study: Study) -> bool:
    """Images not yet verified in both regions: the pipeline is still copying them."""
    return InstanceCopy.objects.for_tenant(study.tenant).filter(instance__study=study).exclude(
        state=InstanceCopy.VERIFIED).exists() or not InstanceCopy.objects.for_tenant(study.tenant).filter(
        instance__study=study).exists()


# Attributes an image must carry, maybe empty (Type 2 in the Patient and General Study
# modules): set to "" when the target has no value, never removed.
TYPE2 = {"PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "AccessionNumber", "StudyID", "ReferringPhysicianName"}
# What else an image says about its patient or its order, which a moved image must not keep
# from the wrong patient: the whole patient group, and the request's attributes.
PATIENT_GROUP = 0x0010
REQUEST_KEYWORDS = ("RequestAttributesSequence", "IssuerOfAccessionNumberSequence", "RequestedProcedureDescription")


def _rewritten(instance: Instance, attributes: dict, *, new_patient: bool = False) -> bytes:
    """The instance's file with `attributes` (keyword -> value) set; every other element,
    the pixel data's bytes among them, as stored. With `new_patient` (a move or a merge) all
    the patient group and the request attributes go first, then the target's are written."""
    with open_instance(instance) as f:
        ds = pydicom.dcmread(f)
    # Text decoded with the set it was written in, so that a change of set below re-encodes
    # every value, in sequences too, instead of relabelling their bytes.
    ds.decode()
    if new_patient:
        for tag in [t for t in ds.keys() if t.group == PATIENT_GROUP]:
            del ds[tag]
        for keyword in REQUEST_KEYWORDS:
            if keyword in ds:
                del ds[keyword]
    for keyword, value in attributes.items():
        if value == "" and keyword not in TYPE2:
            if keyword in ds:
                del ds[keyword]
            continue
        setattr(ds, keyword, value)
    if any(isinstance(v, str) and not v.isascii() for v in attributes.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"  # the corrected text needs it
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _place_all(tenant, instances: list[Instance], attributes_of, progress: Correction | None = None,
               new_patient: bool = False) -> list[tuple[Instance, Placed]]:
    placed: list[tuple[Instance, Placed]] = []
    try:
        for n, instance in enumerate(instances, 1):
            data = _rewritten(instance, attributes_of(instance), new_patient=new_patient)
            placed.append((instance, object_place(tenant, data)))
            if progress is not None and (n % 5 == 0 or n == len(instances)):
                Correction.objects.for_tenant(tenant).filter(pk=progress.pk).update(done=n)
    except BaseException:
        for _, p in placed:
            object_remove(p.key, p.regions)
        raise
    return placed


def _copies_of(instance: Instance) -> dict:
    return {c.region: {"cipher_sha256": c.cipher_sha256, "cipher_size": c.cipher_size, "key_id": c.key_id,
                       "storage_class": c.storage_class}
            for c in InstanceCopy.objects.for_tenant(instance.tenant).filter(instance=instance)}


@dataclass
class _Swap:
    instance: Instance
    storage_key: str
    sha256: str
    size: int
    parsed: ParsedInstance


def _apply(tenant, swaps: list[_Swap], studies_before: set[int]) -> None:
    """In the caller's transaction: point each instance at its object and header, and make
    the index rows (patient, study, series) say what the headers now say."""
    patients = patients_for(tenant, [s.parsed for s in swaps])
    touched = set(studies_before)
    # The patients the studies had before: one left without studies goes.
    earlier_patients = set(Study.objects.for_tenant(tenant).filter(pk__in=touched).values_list("patient_id", flat=True))
    for swap in swaps:
        parsed = swap.parsed
        patient = patients[patient_key(parsed)]
        Patient.objects.for_tenant(tenant).filter(pk=patient.pk).update(
            patient_name=parsed.patient["patient_name"], birth_date=parsed.patient["birth_date"],
            sex=parsed.patient["sex"])
        fields = study_row_fields(parsed, patient)
        study, _ = Study.objects.for_tenant(tenant).get_or_create(
            study_instance_uid=parsed.study_uid, defaults={k: v for k, v in fields.items() if k != "study_instance_uid"})
        Study.objects.for_tenant(tenant).filter(pk=study.pk).update(
            **{k: v for k, v in fields.items() if k != "study_instance_uid"}, updated_at=timezone.now())
        touched.add(study.pk)
        Series.objects.for_tenant(tenant).filter(series_instance_uid=parsed.series_uid).update(study=study)
        Instance.objects.for_tenant(tenant).filter(pk=swap.instance.pk).update(
            study=study, storage_key=swap.storage_key, sha256=swap.sha256, size_bytes=swap.size,
            metadata=parsed.metadata)
    _recount(tenant, touched, earlier_patients)
    # A corrected birth date, a mammogram moved in, a merge: each study's retention date
    # follows what its images now say (a study left without images is gone from the query).
    retention_recompute(tenant=tenant, studies=Study.objects.for_tenant(tenant).filter(pk__in=touched))


def _recount(tenant, study_ids: set[int], patient_ids: set[int] = frozenset()) -> None:
    """Counts, size and modalities of each study from its images; a study left without
    images goes, and so does a patient of these (or of `patient_ids`) left without studies."""
    patient_ids = set(patient_ids) | set(Study.objects.for_tenant(tenant).filter(pk__in=study_ids)
                                         .values_list("patient_id", flat=True))
    for study in Study.objects.for_tenant(tenant).filter(pk__in=study_ids):
        Series.objects.for_tenant(tenant).filter(study=study).annotate(n=Count("instances")).filter(n=0).delete()
        totals = Instance.objects.for_tenant(tenant).filter(study=study).aggregate(n=Count("pk"), size=Sum("size_bytes"))
        if not totals["n"]:
            study.delete()
            continue
        series = Series.objects.for_tenant(tenant).filter(study=study).annotate(n=Count("instances"))
        modalities = [m for m in dict.fromkeys(s.modality for s in series.order_by("pk")) if m]
        for s in series:
            Series.objects.for_tenant(tenant).filter(pk=s.pk).update(num_instances=s.n)
        Study.objects.for_tenant(tenant).filter(pk=study.pk).update(
            num_instances=totals["n"], size_bytes=totals["size"] or 0, num_series=len(series),
            modalities="\\".join(modalities))
    # Patients of these studies whose last study moved away (only these: another patient
    # without studies may be one an ingest is filling right now).
    Patient.objects.for_tenant(tenant).filter(pk__in=patient_ids, studies__isnull=True).delete()


def _commit(correction: Correction, placed: list[tuple[Instance, Placed]], study_ids: set[int], actor: Actor) -> None:
    """Point the images at their new objects and re-index, in one transaction; on any
    failure the new objects go and the images keep what they had."""
    tenant, now = correction.tenant, timezone.now()
    try:
        with transaction.atomic():
            # One run commits: the outbox sweeper may hand a long correction to a second
            # worker; whichever comes second finds it applied and leaves the images alone.
            state = Correction.objects.for_tenant(tenant).select_for_update().filter(
                pk=correction.pk).values_list("state", flat=True).first()
            if state != RUNNING:
                raise _AlreadyDone
            if correction.source_study_uid:
                source = Study.objects.for_tenant(tenant).filter(study_instance_uid=correction.source_study_uid).first()
                emptied = source is not None and not Instance.objects.for_tenant(tenant).filter(study=source).exclude(
                    pk__in=[i.pk for i, _ in placed]).exists()
                if emptied:  # checked again here, under the locks: it may have changed since
                    _movable(tenant, None, source, correction.kind, True)
            ids = [instance.pk for instance, _ in placed]
            current = dict(Instance.objects.for_tenant(tenant).select_for_update().filter(pk__in=ids)
                           .values_list("pk", "storage_key"))
            if any(current.get(instance.pk) != instance.storage_key for instance, _ in placed):
                raise CorrectionRefused("These images changed meanwhile (another correction?): try again.")
            HeaderVersion.objects.for_tenant(tenant).bulk_create([HeaderVersion(
                tenant=tenant, correction=correction, instance=instance, old_storage_key=instance.storage_key,
                old_sha256=instance.sha256, old_size_bytes=instance.size_bytes, old_copies=_copies_of(instance),
                new_storage_key=p.key, new_sha256=p.sha256, new_size_bytes=p.size) for instance, p in placed])
            _apply(tenant, [_Swap(i, p.key, p.sha256, p.size, p.parsed) for i, p in placed], study_ids)
            for instance, p in placed:
                copies_point_at(instance.pk, p, now)
            target = Study.objects.for_tenant(tenant).filter(study_instance_uid=correction.study_instance_uid).first()
            Correction.objects.for_tenant(tenant).filter(pk=correction.pk).update(
                study=target, state=APPLIED, done=len(placed), total=len(placed))
            audit_record(tenant=tenant, actor=actor, action=f"study.corrected.{correction.kind}", obj_type="study",
                         obj_id=target.pk if target else "", detail={
                             "correction": correction.pk, "study_uid": correction.study_instance_uid,
                             "source_study_uid": correction.source_study_uid,
                             "series_uid": correction.series_instance_uid, "before": correction.before,
                             "after": correction.after, "instances": len(placed)})
            source = correction.source_study_uid
            if source and not Study.objects.for_tenant(tenant).filter(study_instance_uid=source).exists():
                # The source study is gone into the target: one study, counted (billed) once.
                hooks.studies_merged(tenant, merged_uid=source, into_uid=correction.study_instance_uid, actor=actor)
    except _AlreadyDone:
        for _, p in placed:
            object_remove(p.key, p.regions)
    except BaseException:
        for _, p in placed:
            object_remove(p.key, p.regions)
        raise


class _AlreadyDone(Exception):
    """Another run of the same correction committed first."""


def _lock_studies(tenant, uids) -> None:
    """Lock the studies of these UIDs, in pk order: a new correction and a revert on the same
    study wait for each other, and the second sees the first."""
    list(Study.objects.for_tenant(tenant).select_for_update().filter(study_instance_uid__in=uids).order_by("pk"))


def _refuse_while_one_runs(tenant, uids) -> None:
    """Refuse while a correction (or a revert) of these studies is under way."""
    if Correction.objects.for_tenant(tenant).filter(state__in=[RUNNING, REVERTING]).filter(
            Q(study_instance_uid__in=uids) | Q(source_study_uid__in=uids)).exists():
        raise CorrectionRefused("A correction of this study is being applied: wait for it to finish.")


def _start(*, kind: str, target: Study, user, actor: Actor, before: dict, after: dict, params: dict,
           total: int, reason: str, source: Study | None = None, series: Series | None = None) -> Correction:
    """Record the correction and hand it to a worker, unless one is running on these studies."""
    tenant = target.tenant
    uids = {target.study_instance_uid} | ({source.study_instance_uid} if source else set())
    with transaction.atomic():
        _lock_studies(tenant, uids)
        _refuse_while_one_runs(tenant, uids)
        correction = Correction.objects.for_tenant(tenant).create(
            kind=kind, study=target, study_instance_uid=target.study_instance_uid,
            source_study_uid=source.study_instance_uid if source else "",
            series_instance_uid=series.series_instance_uid if series else "", before=before, after=after,
            params={**params, "actor": [actor.type, actor.id, actor.label, actor.ip]}, total=total,
            reason=reason[:500], created_by=user)
        audit_record(tenant=tenant, actor=actor, action="study.correction_requested", obj_type="study",
                     obj_id=target.pk, detail={"correction": correction.pk, "kind": kind, "before": before,
                                               "after": after, "instances": total})
        outbox_add(tenant=tenant, kind=CORRECT, subjects=[correction.pk])
    return correction


def _ready(tenant, actor, study: Study, what: str) -> None:
    if _not_archived(study):
        _refuse(tenant, actor, study, what, "Some images of this study are still being copied to both storage "
                                            "regions; correct it in a few minutes.")


def correct_demographics(*, study: Study, changes: dict, user, actor: Actor, reason: str = "") -> Correction:
    """Set PatientName, PatientID, PatientBirthDate and/or AccessionNumber on every image
    of the study (validated DICOM values; only what differs is changed)."""
    tenant = study.tenant
    try:
        values = validated(changes)
    except CorrectionRefused as exc:
        _refuse(tenant, actor, study, DEMOGRAPHICS, str(exc))
    before = {k: getattr(study, FIELDS[k]) for k in values}
    values = {k: v for k, v in values.items() if v != before[k]}
    if not values:
        raise CorrectionRefused("Nothing to change: these are the study's values already.")
    before = {k: before[k] for k in values}
    new_id = values.get("PatientID", study.patient_identifier)
    name = values.get("PatientName", study.patient_name)
    birth = values.get("PatientBirthDate", study.patient_birth_date)
    other = (Patient.objects.for_tenant(tenant).filter(patient_id=new_id)
             .exclude(pk=study.patient_id).exclude(studies__isnull=True).first())
    if other is not None and (other.patient_name != name or other.birth_date != birth):
        _refuse(tenant, actor, study, DEMOGRAPHICS,
                f"Patient ID {new_id} belongs to another patient of this clinic, with another name or birth "
                "date: the study would have two patients. Correct name and birth date to theirs, or use "
                "another ID.")
    _ready(tenant, actor, study, DEMOGRAPHICS)
    return _start(kind=DEMOGRAPHICS, target=study, user=user, actor=actor, before=before, after=values,
                  params={"attributes": values}, total=study.num_instances, reason=reason)


def _target_attributes(target: Study) -> dict:
    """What an image moved into `target` must say: its patient and study attributes, ""
    where the target has none (Type 2 kept empty, the others removed)."""
    ds = study_header(target)
    return {keyword: str(ds.get(keyword, "") or "") for keyword in COPIED}


def _movable(tenant, actor, source: Study, what: str, emptied: bool) -> None:
    if not emptied:
        return
    if actor is None:  # at commit: the worker's failure is audited by correction_failed
        actor = Actor.system("corrections")
    if Report.objects.for_tenant(tenant).filter(study=source).exclude(state="unread").exists():
        _refuse(tenant, actor, source, what, "The study this would empty has a report: move the report's "
                                             "images with care, or correct the study's patient details instead.")
    if Share.objects.for_tenant(tenant).filter(studies=source).exists():
        _refuse(tenant, actor, source, what, "The study this would empty is shared: revoke its shares first.")


def move_series(*, series: Series, target: Study, user, actor: Actor, reason: str = "") -> Correction:
    """A series sent under the wrong patient goes into the right study: its images take the
    target study's patient and study attributes."""
    tenant, source = target.tenant, series.study
    if source.pk == target.pk:
        raise CorrectionRefused("The series is in that study already.")
    if Instance.objects.for_tenant(tenant).filter(series=series, sop_class_uid__in=REPORT_CLASSES).exists():
        _refuse(tenant, actor, source, MOVE_SERIES, "That series holds the study's report: it stays with its study.")
    emptied = not Series.objects.for_tenant(tenant).filter(study=source).exclude(pk=series.pk).exists()
    _movable(tenant, actor, source, MOVE_SERIES, emptied)
    _ready(tenant, actor, source, MOVE_SERIES)
    _ready(tenant, actor, target, MOVE_SERIES)
    before = {"study_uid": source.study_instance_uid, "patient_name": source.patient_name,
              "patient_id": source.patient_identifier}
    after = {"study_uid": target.study_instance_uid, "patient_name": target.patient_name,
             "patient_id": target.patient_identifier}
    return _start(kind=MOVE_SERIES, target=target, source=source, series=series, user=user, actor=actor,
                  before=before, after=after, params={"series": series.pk}, total=series.num_instances,
                  reason=reason)


def merge_studies(*, source: Study, target: Study, user, actor: Actor, reason: str = "") -> Correction:
    """Two studies of one patient become one: the source's images join the target."""
    tenant = target.tenant
    if source.pk == target.pk:
        raise CorrectionRefused("A study cannot be merged into itself.")
    if (source.patient_identifier, source.patient_name, source.patient_birth_date) != (
            target.patient_identifier, target.patient_name, target.patient_birth_date):
        _refuse(tenant, actor, source, MERGE, "These studies are of different patients (ID, name or birth date "
                                              "differ): correct the patient details first, or move a series.")
    _movable(tenant, actor, source, MERGE, True)
    _ready(tenant, actor, source, MERGE)
    _ready(tenant, actor, target, MERGE)
    before = {"study_uid": source.study_instance_uid, "accession_number": source.accession_number}
    after = {"study_uid": target.study_instance_uid, "accession_number": target.accession_number}
    return _start(kind=MERGE, target=target, source=source, user=user, actor=actor, before=before, after=after,
                  params={}, total=source.num_instances, reason=reason)


def correction_apply(correction: Correction) -> None:
    """The worker's part: rewrite the images' headers (progress on the correction row), then
    commit. A correction the studies no longer allow (changed meanwhile) fails, audited."""
    tenant = correction.tenant
    actor = Actor(*correction.params["actor"])  # who asked for it, from where
    target = Study.objects.for_tenant(tenant).filter(study_instance_uid=correction.study_instance_uid).first()
    source = Study.objects.for_tenant(tenant).filter(study_instance_uid=correction.source_study_uid).first() \
        if correction.source_study_uid else None
    if target is None or (correction.source_study_uid and source is None):
        return correction_failed(correction, actor, "A study of this correction was deleted meanwhile.")
    if correction.kind == DEMOGRAPHICS:
        instances = Instance.objects.for_tenant(tenant).filter(study=target)
        attributes = correction.params["attributes"]
    elif correction.kind == MOVE_SERIES:
        instances = Instance.objects.for_tenant(tenant).filter(series_id=correction.params["series"], study=source)
        attributes = _target_attributes(target)
    else:
        instances = Instance.objects.for_tenant(tenant).filter(study=source)
        attributes = _target_attributes(target)
    instances = list(instances.order_by("pk"))
    Correction.objects.for_tenant(tenant).filter(pk=correction.pk).update(done=0, total=len(instances))
    placed = _place_all(tenant, instances, lambda _: attributes, progress=correction,
                        new_patient=correction.kind != DEMOGRAPHICS)
    try:
        _commit(correction, placed, {target.pk} | ({source.pk} if source else set()), actor)
    except CorrectionRefused as exc:
        return correction_failed(correction, actor, str(exc))
    return None


def correction_failed(correction: Correction, actor: Actor, why: str) -> None:
    with transaction.atomic():
        if not Correction.objects.for_tenant(correction.tenant).filter(pk=correction.pk, state=RUNNING).update(
                state=FAILED, error=why[:500]):
            return
        audit_record(tenant=correction.tenant, actor=actor, action="study.correction_failed", obj_type="study",
                     obj_id=correction.study_id or "", detail={"correction": correction.pk, "reason": why})


def revert(*, correction: Correction, user, actor: Actor) -> Correction:
    """Check that the correction may be reverted, and hand the revert to a worker
    (`revert_apply`): it reads every earlier header back, from a region when tier 1 no
    longer holds it, which for a large study is longer than a request may take. Refusals
    come at once (those about the images audited); the study page shows the progress."""
    tenant = correction.tenant
    uids = [uid for uid in (correction.study_instance_uid, correction.source_study_uid) if uid]
    refused = None
    with transaction.atomic():
        _lock_studies(tenant, uids)  # first, as a new correction does (`_start`)
        locked = Correction.objects.for_tenant(tenant).select_for_update().get(pk=correction.pk)
        if locked.reverted_at is not None:
            raise CorrectionRefused("This correction was reverted already.")
        if locked.state == REVERTING:
            raise CorrectionRefused("This correction is being reverted.")
        if locked.state != APPLIED:
            raise CorrectionRefused("Only an applied correction can be reverted.")
        _refuse_while_one_runs(tenant, uids)
        try:
            versions = _revertable(locked)
        except CorrectionRefused as exc:
            refused = exc  # audited below, once this transaction is over (it would roll back with it)
        else:
            locked.state, locked.done, locked.total, locked.error, locked.reverted_by = (
                REVERTING, 0, len(versions), "", user)
            locked.params = {**locked.params, "revert_actor": [actor.type, actor.id, actor.label, actor.ip]}
            locked.save(update_fields=["state", "done", "total", "error", "reverted_by", "params"])
            audit_record(tenant=tenant, actor=actor, action="study.correction_revert_requested", obj_type="study",
                         obj_id=locked.study_id or "", detail={"correction": locked.pk, "kind": locked.kind,
                                                               "instances": len(versions)})
            outbox_add(tenant=tenant, kind=CORRECT, subjects=[locked.pk])
    if refused is not None:
        _refuse(tenant, actor, locked.study, "revert", str(refused))
    return locked


def _revertable(correction: Correction) -> list[HeaderVersion]:
    """The correction's header versions, or CorrectionRefused when its images no longer
    allow a revert."""
    versions = list(HeaderVersion.objects.for_tenant(correction.tenant).filter(correction=correction)
                    .select_related("instance").order_by("pk"))
    if any(v.instance is None for v in versions):
        raise CorrectionRefused("Some of these images were deleted since: the correction can no longer be reverted.")
    if any(v.instance.storage_key != v.new_storage_key for v in versions):
        raise CorrectionRefused("A later correction changed these images: revert that one first.")
    return versions


def revert_apply(correction: Correction) -> None:
    """The worker's part of a revert: read each earlier header back (tier 1 if it is still
    there, else a region, checked against its checksum on the way; progress on the
    correction row), then point the images back at their objects from before the
    correction (kept in both regions) in one transaction. The corrected objects go after
    the drop grace period. One the images no longer allow ends as not done, audited."""
    tenant = correction.tenant
    actor = Actor(*correction.params["revert_actor"])
    try:
        versions = _revertable(correction)
        swaps = []
        for n, v in enumerate(versions, 1):
            earlier = Instance(pk=v.instance_id, tenant_id=tenant.pk, storage_key=v.old_storage_key,
                               sha256=v.old_sha256, size_bytes=v.old_size_bytes)
            with open_instance(earlier) as f:
                data = f.read()
            parsed = parse_bytes(data)
            if isinstance(parsed, InvalidInstance):
                raise CorrectionRefused(f"A stored image does not parse any more: {parsed.reason}")
            swaps.append(_Swap(v.instance, v.old_storage_key, v.old_sha256, v.old_size_bytes, parsed))
            if n % 5 == 0 or n == len(versions):
                Correction.objects.for_tenant(tenant).filter(pk=correction.pk).update(done=n)
        _revert_commit(correction, versions, swaps, actor)
    except CorrectionRefused as exc:
        revert_failed(correction, actor, str(exc))


def _revert_commit(correction: Correction, versions: list[HeaderVersion], swaps: list[_Swap], actor: Actor) -> None:
    tenant, now = correction.tenant, timezone.now()
    with transaction.atomic():
        locked = Correction.objects.for_tenant(tenant).select_for_update().get(pk=correction.pk)
        if locked.state != REVERTING:  # another run of the same revert committed first
            return
        current = dict(Instance.objects.for_tenant(tenant).select_for_update().filter(
            pk__in=[v.instance_id for v in versions]).values_list("pk", "storage_key"))
        if any(current.get(v.instance_id) != v.new_storage_key for v in versions):
            raise CorrectionRefused("These images changed meanwhile: try again.")
        study_ids = set(Instance.objects.for_tenant(tenant).filter(pk__in=current).values_list("study_id", flat=True))
        _apply(tenant, swaps, study_ids)
        for v in versions:
            for region, copy in v.old_copies.items():
                InstanceCopy.objects.for_tenant(tenant).filter(instance_id=v.instance_id, region=region).update(
                    state=InstanceCopy.VERIFIED, updated_at=now, last_error="", **copy)
        for v in versions:
            outbox_add(tenant=tenant, kind=DROP, subjects=[v.instance_id], payload={"key": v.new_storage_key})
        locked.state, locked.reverted_at, locked.done = APPLIED, now, len(versions)
        locked.save(update_fields=["state", "reverted_at", "done"])
        if correction.source_study_uid and Study.objects.for_tenant(tenant).filter(
                study_instance_uid=correction.source_study_uid).exists():
            hooks.studies_unmerged(tenant, study_uid=correction.source_study_uid, actor=actor)
        restored = correction.source_study_uid or correction.study_instance_uid
        audit_record(tenant=tenant, actor=actor, action="study.correction_reverted", obj_type="study",
                     obj_id=correction.study_id or "", detail={
                         "correction": correction.pk, "kind": correction.kind, "study_uid": restored,
                         "before": correction.after, "after": correction.before, "instances": len(versions)})


def revert_failed(correction: Correction, actor: Actor, why: str) -> None:
    """The revert could not be done: the correction stays applied, saying why, audited."""
    with transaction.atomic():
        if not Correction.objects.for_tenant(correction.tenant).filter(pk=correction.pk, state=REVERTING).update(
                state=APPLIED, error=f"Revert not done: {why}"[:500], reverted_by=None, done=0):
            return
        audit_record(tenant=correction.tenant, actor=actor, action="study.correction_revert_failed",
                     obj_type="study", obj_id=correction.study_id or "",
                     detail={"correction": correction.pk, "reason": why})
