"""Retention services: the clinic's policy, computing each study's retention date (at
ingest, and for every study when the policy changes), and the past-retention report.

Nothing here deletes anything: deletion is a separate two-person workflow
(archive/retention/deletion.py)."""

from collections.abc import Iterable, Iterator
from datetime import date

from django.db import transaction
from django.db.models import IntegerField, QuerySet
from django.utils import timezone

from archive.models import Instance, Study
from archive.retention.models import RetentionPolicy, StudyRetention
from archive.retention.policy import Periods, study_retention_compute
from cloudpacs.compiled_query import (
    CompiledInsert,
    CompiledQuery,
    Slot,
    fields_in_order,
    models_from_row,
)
from tenants.audit import Actor, audit_record

BATCH = 2000
POLICY_FIELDS = ("adult_years", "minor_years", "mammography_years")
# What the recompute reads of each study: no patient names, no instances.
_STUDY_VALUES = ("pk", "study_date", "patient_birth_date", "modalities", "created_at")


_POLICY_FIELDS = fields_in_order(RetentionPolicy)
_policy_locked = CompiledQuery(lambda: RetentionPolicy.unscoped.select_for_update().filter(
    tenant_id=Slot("tenant", IntegerField())).values_list(*_POLICY_FIELDS))


def policy_get(*, tenant, lock: bool = False) -> RetentionPolicy:
    """The clinic's policy, created with the defaults on first use. `lock` holds the row
    until the transaction ends, so a policy change and a computation never interleave."""
    if lock and (found := _policy_locked.rows(tenant=tenant.pk)):  # every new study asks
        return models_from_row(found[0], (RetentionPolicy, _POLICY_FIELDS))[0]
    qs = RetentionPolicy.objects.for_tenant(tenant)
    if lock:
        qs = qs.select_for_update()
    policy, _ = qs.get_or_create(tenant=tenant)
    return policy


def _row(tenant_id: int, values: dict, periods: Periods, now, extra_modality: str = "") -> StudyRetention:
    until, rule = study_retention_compute(
        study_date=values["study_date"], birth_date=values["patient_birth_date"],
        modalities=values["modalities"], ingested=timezone.localdate(values["created_at"]),
        periods=periods, extra_modality=extra_modality)
    mammography = "MG" in {m.upper() for m in values["modalities"].split("\\")} or extra_modality.upper() == "MG"
    return StudyRetention(tenant_id=tenant_id, study_id=values["pk"], retain_until=until, rule=rule,
                          mammography=mammography, computed_at=now)


# Written with every new study: compiled once (cloudpacs/compiled_query.py).
_retention = CompiledInsert(StudyRetention, update_conflicts=(
    ["study"], ["retain_until", "rule", "mammography", "computed_at"]))
_upsert = _retention.insert


def _batches(values: Iterable[dict]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for item in values:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def retention_recompute(*, tenant, studies: QuerySet | None = None, periods: Periods | None = None) -> int:
    """(Re)compute the retention date of `studies` (default: all of the clinic's) in
    batches: one read and one upsert per BATCH studies. Returns how many were computed."""
    periods = periods or policy_get(tenant=tenant).periods
    qs = Study.objects.for_tenant(tenant) if studies is None else studies
    now, count = timezone.now(), 0
    values = qs.order_by("pk").values(*_STUDY_VALUES).iterator(chunk_size=BATCH)
    for batch in _batches(values):
        _upsert([_row(tenant.pk, v, periods, now) for v in batch])
        count += len(batch)
    return count


def retention_fill_missing(*, tenant) -> int:
    """Compute the retention date of studies that have none (indexed before retention
    existed, or by a path that bypassed ingest)."""
    missing = Study.objects.for_tenant(tenant).filter(retention__isnull=True)
    if not missing.exists():
        return 0
    with transaction.atomic():
        return retention_recompute(tenant=tenant, studies=missing,
                                   periods=policy_get(tenant=tenant, lock=True).periods)


def retention_on_ingest_many(*, tenant, indexed: list[tuple[Instance, bool]]) -> None:
    """Called by the ingest service inside its transaction, with the instances it indexed,
    each with whether it made its study: one policy lock and one upsert for all of them.

    The rules read the study date and birth date (fixed by the study's first instance) and
    whether MG is among the modalities, so only a new study or a study's first MG series
    change anything; other instances cost no query."""
    studies = {instance.study_id: instance.study for instance, new_study in indexed if new_study}
    # The batch's MG instances count for the new studies too, whatever their rows say yet.
    with_mg = {instance.study_id for instance, _ in indexed if (instance.series.modality or "").upper() == "MG"}
    mammography = {instance.study_id: instance.study for instance, new_study in indexed
                   if not new_study and instance.study_id not in studies
                   and (instance.series.modality or "").upper() == "MG"}
    if mammography:
        known = set(StudyRetention.unscoped.filter(study_id__in=mammography, mammography=True)
                    .values_list("study_id", flat=True))
        mammography = {pk: study for pk, study in mammography.items() if pk not in known}
    if not studies and not mammography:
        return
    periods, now = policy_get(tenant=tenant, lock=True).periods, timezone.now()
    rows = [_row(tenant.pk, {name: getattr(study, name) for name in _STUDY_VALUES}, periods, now,
                 extra_modality="MG" if pk in with_mg else "") for pk, study in studies.items()]
    rows += [_row(tenant.pk, {name: getattr(study, name) for name in _STUDY_VALUES}, periods, now,
                  extra_modality="MG") for study in mammography.values()]
    _upsert(rows)


def policy_locked_statement(*, tenant) -> tuple[str, list]:
    """The clinic's policy read under its lock (retention_on_ingest_many's first step), as a
    statement for a caller that sends it with others in its own transaction; its rows go
    to `policy_from_rows`."""
    return _policy_locked.statement(tenant=tenant.pk)


def policy_from_rows(rows: list) -> RetentionPolicy | None:
    """The policy `policy_locked_statement` read, or None if the clinic has none yet."""
    found = _policy_locked.converted(rows)
    return models_from_row(found[0], (RetentionPolicy, _POLICY_FIELDS))[0] if found else None


def retention_new_study_statement(*, tenant, study: Study, policy: RetentionPolicy) -> tuple[str, list]:
    """retention_on_ingest_many's write for one new study (its row written, or written
    before this statement runs), as one statement, under `policy` read locked."""
    row = _row(tenant.pk, {name: getattr(study, name) for name in _STUDY_VALUES}, policy.periods, timezone.now())
    return _retention.statement([row])


def policy_update(*, tenant, actor: Actor, **periods: int) -> tuple[dict, int]:
    """Change the clinic's policy and recompute every study's retention date, atomically.
    Returns ({field: [old, new]} of what changed, number of studies recomputed)."""
    unknown = set(periods) - set(POLICY_FIELDS)
    if unknown:
        raise TypeError(f"unknown policy fields {sorted(unknown)}")
    with transaction.atomic():
        policy = policy_get(tenant=tenant, lock=True)
        changes = {f: [getattr(policy, f), v] for f, v in periods.items() if getattr(policy, f) != v}
        if not changes:
            return {}, 0
        for field, (_, value) in changes.items():
            setattr(policy, field, value)
        policy.updated_at = timezone.now()
        policy.full_clean()
        policy.save()
        recomputed = retention_recompute(tenant=tenant, periods=policy.periods)
        audit_record(tenant=tenant, actor=actor, action="retention.policy_changed",
                     obj_type="retention_policy", obj_id=policy.pk,
                     detail={"changes": changes, "studies_recomputed": recomputed})
    return changes, recomputed


def retention_past(*, tenant, today: date | None = None) -> QuerySet:
    """Studies whose retention date has passed, oldest first (a read: nothing is deleted)."""
    today = today or timezone.localdate()
    return (StudyRetention.objects.for_tenant(tenant).filter(retain_until__lt=today)
            .select_related("study").order_by("retain_until", "study_id"))


def study_retention(*, study: Study) -> StudyRetention:
    """The study's retention row, computed now if it has none yet."""
    row = StudyRetention.unscoped.filter(study=study).first()
    if row is None:
        retention_recompute(tenant=study.tenant, studies=Study.objects.for_tenant(study.tenant).filter(pk=study.pk))
        row = StudyRetention.unscoped.get(study=study)
    return row
