"""The one ingest path. STOW-RS, C-STORE, browser upload and restore all call
`instances_ingest` (or `instance_ingest` for one), so every door checks, dedups, indexes
and queues the same way."""

import enum
from collections import Counter
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from archive.ingest import errors
from archive.ingest.errors import InvalidInstance
from archive.ingest.parse import ParsedInstance, parse_outcome
from archive.ingest.spool import SpooledFile
from archive.models import Instance, Patient, Series, Study
from archive.outbox.services import outbox_add
from archive.retention.services import retention_on_ingest
from archive.storage.keys import active_data_key
from archive.storage.pipeline import ARCHIVE
from archive.storage.tier1 import tier1_delete, tier1_flush, tier1_seal
from tenants.audit import Actor, audit_record


class Outcome(enum.Enum):
    STORED = "stored"
    ALREADY_PRESENT = "already_present"  # same SOP instance, same bytes: success, stored once
    CONFLICT = "conflict"  # same SOP instance, different bytes: the first copy is kept
    FAILED = "failed"


@dataclass
class IngestResult:
    outcome: Outcome
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    instance: Instance | None = None
    failure_code: int | None = None
    reason: str = ""
    new_study: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.STORED, Outcome.ALREADY_PRESENT)


class IngestContext:
    """Remembers the study and series rows one sender's request (a STOW body, a C-STORE
    association, an upload batch) has already found or made, so the instances after the
    first skip those lookups. Rows are only ever added, never changed, through it."""

    def __init__(self) -> None:
        self.studies: dict[str, Study] = {}
        self.series: dict[str, Series] = {}
        self.data_key: tuple[int, bytes] | None = None  # (key id, key) tier 1 is sealed with

    def data_key_for(self, tenant) -> tuple[int, bytes]:
        if self.data_key is None:
            self.data_key = active_data_key(tenant=tenant)
        return self.data_key

    def forget(self) -> None:
        self.studies.clear()
        self.series.clear()


@dataclass
class _Accepted:
    """A parsed instance on its way into the index."""

    position: int
    spooled: SpooledFile
    parsed: ParsedInstance
    key: str = ""


def instance_ingest(*, tenant, spooled: SpooledFile, actor: Actor, expected_study_uid: str | None = None,
                    context: IngestContext | None = None, storage_key: str | None = None) -> IngestResult:
    """Check, index and store one spooled instance (see `instances_ingest`). `storage_key`
    is for restore only: the instance keeps the key its copies already have in the regions."""
    return instances_ingest(tenant=tenant, spooled=[spooled], actor=actor,
                            expected_study_uid=expected_study_uid, context=context,
                            storage_keys=[storage_key])[0]


def instances_ingest(*, tenant, spooled: list[SpooledFile], actor: Actor,
                     expected_study_uid: str | None = None,
                     context: IngestContext | None = None,
                     storage_keys: list[str | None] | None = None,
                     parsed_ahead: list[ParsedInstance | InvalidInstance] | None = None) -> list[IngestResult]:
    """Check, index and store spooled instances and queue their archiving; one result each.
    `parsed_ahead` holds each file's `parse_outcome` when the caller has parsed them already.

    On return every stored file is durable in tier 1 and committed to the index with an
    outbox row -- one disk flush and one transaction for the whole batch -- and every
    other file is gone. The spooled temp files are always consumed."""
    context = context or IngestContext()
    results: list[IngestResult | None] = [None] * len(spooled)
    try:
        fresh: dict[str, _Accepted] = {}
        repeats: list[_Accepted] = []
        for n, item in enumerate(spooled):
            item.finish()
            parsed = parsed_ahead[n] if parsed_ahead is not None else parse_outcome(item.path)
            if isinstance(parsed, InvalidInstance):
                results[n] = IngestResult(Outcome.FAILED, failure_code=parsed.code, reason=parsed.reason)
                continue
            if expected_study_uid and parsed.study_uid != expected_study_uid:
                results[n] = _failed(parsed, errors.STUDY_UID_MISMATCH,
                                     "instance belongs to another study than the one in the request URL")
            elif parsed.sop_uid in fresh:
                repeats.append(_Accepted(n, item, parsed))  # the same instance twice in one batch
            else:
                given_key = storage_keys[n] if storage_keys else None
                fresh[parsed.sop_uid] = _Accepted(n, item, parsed, given_key or "")
        for accepted in _series_of_another_study(tenant, list(fresh.values())):
            del fresh[accepted.parsed.sop_uid]
            results[accepted.position] = _failed(
                accepted.parsed, errors.STUDY_UID_MISMATCH,
                "its Series Instance UID belongs to a series of another study")
        for accepted, result in _store(tenant, list(fresh.values()), actor, context):
            results[accepted.position] = result
        for repeat in repeats:
            first = results[fresh[repeat.parsed.sop_uid].position]
            results[repeat.position] = (_duplicate(first.instance, repeat.parsed, repeat.spooled.sha256)
                                        if first.instance is not None else first)
        return results
    finally:
        for item in spooled:
            item.close()


def _series_of_another_study(tenant, batch: list[_Accepted]) -> list[_Accepted]:
    """Instances whose series UID is already a series of another study (in the index or
    earlier in the batch): a series lives in one study, or the index would be inconsistent
    and the other study could no longer be deleted."""
    owner = dict(Series.objects.for_tenant(tenant)
                 .filter(series_instance_uid__in={a.parsed.series_uid for a in batch})
                 .values_list("series_instance_uid", "study__study_instance_uid"))
    wrong = []
    for accepted in batch:
        study_uid = owner.setdefault(accepted.parsed.series_uid, accepted.parsed.study_uid)
        if study_uid != accepted.parsed.study_uid:
            wrong.append(accepted)
    return wrong


def _failed(parsed: ParsedInstance, code: int, reason: str) -> IngestResult:
    return IngestResult(Outcome.FAILED, parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid,
                        failure_code=code, reason=reason)


def _duplicate(existing: Instance, parsed: ParsedInstance, sha256: str) -> IngestResult:
    same = existing.sha256 == sha256
    return IngestResult(
        Outcome.ALREADY_PRESENT if same else Outcome.CONFLICT,
        parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid, instance=existing,
        reason="" if same else "an instance with this SOP Instance UID and different content "
                                "is stored already; the first copy was kept",
    )


def _store(tenant, batch: list[_Accepted], actor: Actor, context: IngestContext):
    """Yield (accepted, result) for each; new instances are committed together."""
    if not batch:
        return
    existing = {i.sop_instance_uid: i for i in Instance.objects.for_tenant(tenant).filter(
        sop_instance_uid__in=[a.parsed.sop_uid for a in batch])}
    for accepted in batch:
        if accepted.parsed.sop_uid in existing:
            yield accepted, _duplicate(existing[accepted.parsed.sop_uid], accepted.parsed,
                                       accepted.spooled.sha256)
    new = [a for a in batch if a.parsed.sop_uid not in existing]
    if not new:
        return
    pending = {}
    key_id, data_key = context.data_key_for(tenant)
    try:
        for accepted in new:
            accepted.key = accepted.key or Instance.new_storage_key(tenant.pk)
            pending[accepted.key] = tier1_seal(accepted.spooled.path, accepted.key, data_key=data_key,
                                               key_id=key_id, durable=False)
            # The plaintext goes now, before the flush, so its pages need never reach the disk.
            accepted.spooled.close()
        # Durable on disk before the index says so, and before anyone is told "stored".
        tier1_flush(list(pending.values()))
        try:
            with transaction.atomic():
                results = _index(tenant, new, actor, context)
        except IntegrityError:
            # Another request stored one of these a moment ago: commit them one by one.
            context.forget()
            results = []
            for accepted in new:
                results.append(_index_one_racing(tenant, accepted, actor, context))
        pending.clear()
    except BaseException:
        context.forget()  # rows made in the rolled-back transaction must not be remembered
        for key in pending:
            tier1_delete(key)
        raise
    yield from results


def _index_one_racing(tenant, accepted: _Accepted, actor: Actor, context: IngestContext):
    try:
        with transaction.atomic():
            return _index(tenant, [accepted], actor, context)[0]
    except IntegrityError:
        context.forget()
        tier1_delete(accepted.key)
        raced = Instance.objects.for_tenant(tenant).filter(sop_instance_uid=accepted.parsed.sop_uid).first()
        if raced is None:
            raise
        return accepted, _duplicate(raced, accepted.parsed, accepted.spooled.sha256)


def _study_row(tenant, parsed: ParsedInstance, context: IngestContext) -> tuple[Study, bool]:
    study = context.studies.get(parsed.study_uid)
    if study is not None:
        return study, False
    patient, _ = Patient.objects.for_tenant(tenant).get_or_create(
        patient_id=parsed.patient["patient_id"],
        issuer_of_patient_id=parsed.patient["issuer_of_patient_id"],
        defaults={k: parsed.patient[k] for k in ("patient_name", "birth_date", "sex")},
    )
    study, created = Study.objects.for_tenant(tenant).get_or_create(
        study_instance_uid=parsed.study_uid,
        defaults={
            **parsed.study,
            "patient": patient,
            "patient_name": parsed.patient["patient_name"],
            "patient_name_search": parsed.patient["patient_name"].upper(),
            "patient_identifier": parsed.patient["patient_id"],
            "patient_birth_date": parsed.patient["birth_date"],
            "patient_sex": parsed.patient["sex"],
        },
    )
    context.studies[parsed.study_uid] = study
    return study, created


def _series_row(tenant, parsed: ParsedInstance, study: Study, context: IngestContext) -> tuple[Series, bool]:
    series = context.series.get(parsed.series_uid)
    if series is not None:
        return series, False
    series, created = Series.objects.for_tenant(tenant).get_or_create(
        series_instance_uid=parsed.series_uid, defaults={**parsed.series, "study": study})
    context.series[parsed.series_uid] = series
    return series, created


def _index(tenant, new: list[_Accepted], actor: Actor, context: IngestContext):
    instances, results = [], []
    series_counts: Counter = Counter()
    study_counts: Counter = Counter()
    study_sizes: Counter = Counter()
    new_series_by_study: dict[int, list[str]] = {}
    for accepted in new:
        parsed = accepted.parsed
        study, new_study = _study_row(tenant, parsed, context)
        series, new_series = _series_row(tenant, parsed, study, context)
        if new_series:
            new_series_by_study.setdefault(study.pk, []).append(parsed.series["modality"])
        instance = Instance(
            tenant=tenant, study=study, series=series, sop_instance_uid=parsed.sop_uid,
            sop_class_uid=parsed.sop_class_uid, transfer_syntax_uid=parsed.transfer_syntax_uid,
            size_bytes=accepted.spooled.size, sha256=accepted.spooled.sha256, storage_key=accepted.key,
            metadata=parsed.metadata, **parsed.instance)
        instances.append(instance)
        series_counts[series.pk] += 1
        study_counts[study.pk] += 1
        study_sizes[study.pk] += accepted.spooled.size
        results.append((accepted, IngestResult(Outcome.STORED, parsed.sop_class_uid, parsed.sop_uid,
                                               parsed.study_uid, instance=instance, new_study=new_study)))
    Instance.unscoped.bulk_create(instances)
    # The archive work for each instance commits with it (published once it has).
    outbox_add(tenant=tenant, kind=ARCHIVE, subjects=[i.pk for i in instances])
    for series_pk, count in series_counts.items():
        Series.unscoped.filter(pk=series_pk).update(num_instances=F("num_instances") + count)
    now = timezone.now()
    for study_pk, count in study_counts.items():
        updates = {"num_instances": F("num_instances") + count, "size_bytes": F("size_bytes") + study_sizes[study_pk],
                   "updated_at": now}
        modalities = new_series_by_study.get(study_pk)
        if modalities:
            updates["num_series"] = F("num_series") + len(modalities)
            # Re-read under lock: new series of one study may arrive in two requests at once.
            locked = Study.unscoped.select_for_update().get(pk=study_pk)
            merged = [*locked.modality_list]
            merged += [m for m in dict.fromkeys(modalities) if m and m not in merged]
            updates["modalities"] = "\\".join(merged)
        Study.unscoped.filter(pk=study_pk).update(**updates)
    for accepted, result in results:
        retention_on_ingest(tenant=tenant, instance=result.instance, new_study=result.new_study)
        if result.new_study:
            audit_record(tenant=tenant, actor=actor, action="study.created", obj_type="study",
                         obj_id=result.instance.study_id, detail={"modality": accepted.parsed.series["modality"]})
    return results
