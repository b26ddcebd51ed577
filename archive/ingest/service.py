"""The one ingest path. STOW-RS, C-STORE, browser upload and restore all call
`instance_ingest`, so every door checks, dedups, indexes and queues the same way."""

import enum
import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from archive.ingest import errors
from archive.ingest.errors import InvalidInstance
from archive.ingest.parse import ParsedInstance, parse_instance
from archive.ingest.spool import SpooledFile
from archive.models import Instance, Outbox, Patient, Series, Study
from archive.retention.services import retention_on_ingest
from archive.storage.tier1 import tier1_delete, tier1_put
from tenants.audit import Actor, audit_record

log = logging.getLogger(__name__)


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

    def forget(self) -> None:
        self.studies.clear()
        self.series.clear()


def instance_ingest(*, tenant, spooled: SpooledFile, actor: Actor, expected_study_uid: str | None = None,
                    context: IngestContext | None = None, storage_key: str | None = None) -> IngestResult:
    """Check, index and store one spooled instance; queue its archiving.

    On return the file is either in tier 1 and committed to the index with an outbox row,
    or gone; the spooled temp file is always consumed. `storage_key` is for restore only:
    the instance keeps the key its copies already have in the regions."""
    try:
        spooled.finish()
        try:
            parsed = parse_instance(spooled.path)
        except InvalidInstance as exc:
            return IngestResult(Outcome.FAILED, failure_code=exc.code, reason=exc.reason)
        if expected_study_uid and parsed.study_uid != expected_study_uid:
            return _failed(parsed, errors.STUDY_UID_MISMATCH,
                           "instance belongs to another study than the one in the request URL")
        return _store(tenant, spooled, parsed, actor, context or IngestContext(), storage_key)
    finally:
        spooled.close()


def _failed(parsed: ParsedInstance, code: int, reason: str) -> IngestResult:
    return IngestResult(Outcome.FAILED, parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid,
                        failure_code=code, reason=reason)


def _existing(tenant, sop_uid: str) -> Instance | None:
    return Instance.objects.for_tenant(tenant).filter(sop_instance_uid=sop_uid).first()


def _duplicate(existing: Instance, parsed: ParsedInstance, sha256: str) -> IngestResult:
    same = existing.sha256 == sha256
    return IngestResult(
        Outcome.ALREADY_PRESENT if same else Outcome.CONFLICT,
        parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid, instance=existing,
        reason="" if same else "an instance with this SOP Instance UID and different content "
                                "is stored already; the first copy was kept",
    )


def _store(tenant, spooled: SpooledFile, parsed: ParsedInstance, actor: Actor,
           context: IngestContext, storage_key: str | None = None) -> IngestResult:
    # No look-up before the insert: the unique constraint on the SOP Instance UID finds
    # the (rare) re-send, and the common case saves a query.
    key = storage_key or Instance.new_storage_key(tenant.pk)
    tier1_put(spooled.claim(), key)
    try:
        with transaction.atomic():
            instance, new_study = _index(tenant, parsed, key, spooled.size, spooled.sha256, context)
            retention_on_ingest(tenant=tenant, instance=instance, new_study=new_study)
            outbox = Outbox.objects.for_tenant(tenant).create(kind=Outbox.ARCHIVE, instance=instance)
            if new_study:
                audit_record(tenant=tenant, actor=actor, action="study.created", obj_type="study",
                             obj_id=instance.study_id, detail={"modality": parsed.series["modality"]})
            transaction.on_commit(lambda: _enqueue(outbox.pk))
    except IntegrityError:
        tier1_delete(key)
        # Rows this transaction made were rolled back: the context must not remember them.
        context.forget()
        existing = _existing(tenant, parsed.sop_uid)
        if existing is None:
            raise
        return _duplicate(existing, parsed, spooled.sha256)
    except BaseException:
        tier1_delete(key)
        context.forget()
        raise
    return IngestResult(Outcome.STORED, parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid,
                        instance=instance, new_study=new_study)


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


def _index(tenant, parsed: ParsedInstance, key: str, size: int, sha256: str,
           context: IngestContext) -> tuple[Instance, bool]:
    study, new_study = _study_row(tenant, parsed, context)
    series, new_series = _series_row(tenant, parsed, study, context)
    instance = Instance.objects.for_tenant(tenant).create(
        study=study, series=series, sop_instance_uid=parsed.sop_uid,
        sop_class_uid=parsed.sop_class_uid, transfer_syntax_uid=parsed.transfer_syntax_uid,
        size_bytes=size, sha256=sha256, storage_key=key, metadata=parsed.metadata, **parsed.instance,
    )
    Series.unscoped.filter(pk=series.pk).update(num_instances=F("num_instances") + 1)
    study_updates = {"num_instances": F("num_instances") + 1, "size_bytes": F("size_bytes") + size,
                     "updated_at": timezone.now()}
    if new_series:
        study_updates["num_series"] = F("num_series") + 1
        modality = parsed.series["modality"]
        if modality:
            # Re-read under lock: two new series of one study may arrive together.
            locked = Study.unscoped.select_for_update().get(pk=study.pk)
            if modality not in locked.modality_list:
                study_updates["modalities"] = "\\".join([*locked.modality_list, modality])
    Study.unscoped.filter(pk=study.pk).update(**study_updates)
    return instance, new_study


def _enqueue(outbox_id: int) -> None:
    """Hand the outbox row to a worker. If the broker is down the sweeper re-drives it."""
    try:
        from archive.tasks import process_outbox

        process_outbox.delay(outbox_id)
    except Exception:  # noqa: BLE001 - the row stays in the outbox; the sweeper retries
        log.warning("could not enqueue outbox %s; the sweeper will re-drive it", outbox_id, exc_info=True)
