"""The one ingest path. STOW-RS, C-STORE, browser upload and restore all call
`instances_ingest` (or `instance_ingest` for one), so every door checks, dedups, indexes
and queues the same way."""

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from archive.ingest import errors, new_study, one_statement
from archive.ingest.errors import InvalidInstance
from archive.ingest.hooks import new_studies_work
from archive.ingest.parse import ParsedInstance, parse_outcome
from archive.ingest.rows import (
    existing_instances,
    instances_insert,
    patients_by_id,
    patients_insert_new,
    series_grown,
    series_insert,
    series_with_study,
    studies_by_uid,
    studies_insert,
    study_grown,
)
from archive.ingest.spool import SpooledFile
from archive.models import Instance, Patient, Series, Study
from archive.outbox.services import outbox_add_many
from archive.retention.services import retention_on_ingest_many
from archive.storage.durability import (
    PRIMARY_REGION,
    Placed,
    durability,
    placed_forget,
    sealed_place,
)
from archive.storage.keys import active_data_key
from archive.storage.models import InstanceCopy
from archive.storage.pipeline import ARCHIVE
from archive.storage.tier1 import tier1_delete, tier1_flush, tier1_seal
from tenants.audit import Actor, audit_record_many

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
        self.data_key: tuple[int, bytes] | None = None  # (key id, key) tier 1 is sealed with
        # Series UIDs of the current batch found in no row by its check (made by the batch,
        # unless a concurrent request makes one first: its insert then fails and the batch
        # falls back to one instance at a time).
        self.series_absent: set[str] = set()

    def data_key_for(self, tenant) -> tuple[int, bytes]:
        if self.data_key is None:
            self.data_key = active_data_key(tenant=tenant)
        return self.data_key

    def series_owners(self) -> dict[str, str]:
        """{series UID: its study's UID} for the series remembered with their study."""
        study_uid = {row.pk: uid for uid, row in self.studies.items()}
        return {uid: study_uid[row.study_id] for uid, row in self.series.items() if row.study_id in study_uid}

    def forget(self) -> None:
        self.studies.clear()
        self.series.clear()
        self.series_absent.clear()


@dataclass
class Closing:
    """Audit events a caller writes with the instances of its last batch: `events`, given
    every result of the `instances_ingest` call, returns audit_record's dicts, appended to
    the clinic's chain in the index transaction after ingest's own (one STOW-RS request is
    then one transaction, not two). Called only when the batch indexes new instances in
    one transaction; `written` says whether they went in. If not, the caller writes them."""

    events: Callable[[list[IngestResult]], list[dict]]
    written: bool = False


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
                     parsed_ahead: list[ParsedInstance | InvalidInstance] | None = None,
                     closing: "Closing | None" = None) -> list[IngestResult]:
    """Check, index and store spooled instances and queue their archiving; one result each.
    `parsed_ahead` holds each file's `parse_outcome` when the caller has parsed them already.

    On return every stored file is durable in tier 1 and committed to the index with an
    outbox row -- one disk flush and one transaction for the whole batch -- and every
    other file is gone. The spooled temp files are always consumed.

    `closing` adds the caller's audit events to the index transaction (see Closing)."""
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
        for accepted in _series_of_another_study(tenant, list(fresh.values()), context):
            del fresh[accepted.parsed.sop_uid]
            results[accepted.position] = _failed(
                accepted.parsed, errors.STUDY_UID_MISMATCH,
                "its Series Instance UID belongs to a series of another study")
        # Only a restore gives storage keys: its studies are not new to the clinic.
        restoring = bool(storage_keys and any(storage_keys))

        def repeats_resolve(found: list[IngestResult | None]) -> None:
            for repeat in repeats:
                first = found[fresh[repeat.parsed.sop_uid].position]
                found[repeat.position] = (_duplicate(first.instance, repeat.parsed, repeat.spooled.sha256)
                                          if first.instance is not None else first)

        def closing_events(indexed: list[tuple[_Accepted, IngestResult]]) -> list[dict]:
            complete = list(results)  # failures and duplicates are in already
            for accepted, result in indexed:
                complete[accepted.position] = result
            repeats_resolve(complete)
            return closing.events(complete)

        written = _store(tenant, list(fresh.values()), actor, context, restoring, results,
                         closing_events if closing else None)
        if closing:
            closing.written = written
        repeats_resolve(results)
        return results
    finally:
        for item in spooled:
            item.close()


def _series_of_another_study(tenant, batch: list[_Accepted], context: IngestContext) -> list[_Accepted]:
    """Instances whose series UID is already a series of another study (in the index or
    earlier in the batch): a series lives in one study, or the index would be inconsistent
    and the other study could no longer be deleted. Series the sender's context holds
    (with their study) need no query: the next slices of a C-STORE association or a STOW
    body are answered from it."""
    owner = context.series_owners()
    unknown = {a.parsed.series_uid for a in batch} - owner.keys()
    context.series_absent = set(unknown)
    if unknown:
        # Remembered with their study, so indexing does not look them up again.
        for row in series_with_study(tenant, unknown):
            context.series[row.series_instance_uid] = row
            context.studies.setdefault(row.study.study_instance_uid, row.study)
            context.series_absent.discard(row.series_instance_uid)
            owner[row.series_instance_uid] = row.study.study_instance_uid
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
    # The bytes as stored, or as received when the clinic's compression re-encoded them.
    same = sha256 in (existing.sha256, existing.original_sha256)
    return IngestResult(
        Outcome.ALREADY_PRESENT if same else Outcome.CONFLICT,
        parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid, instance=existing,
        reason="" if same else "an instance with this SOP Instance UID and different content "
                                "is stored already; the first copy was kept",
    )


def _store(tenant, batch: list[_Accepted], actor: Actor, context: IngestContext, restoring: bool,
           results: list[IngestResult | None], closing: Callable | None) -> bool:
    """Put each one's result at its position in `results`; new instances are committed
    together, with `closing`'s events. Whether those were written with them."""
    if not batch:
        return False
    alone = closing is None and not restoring and _fits_one_statement(batch, context)
    # No look-up first where none can find anything, or one is made anyway: one statement
    # finds a duplicate too; and an instance of a series the index does not hold (a new
    # study or series) is stored only if a sender reused its UID in another series. Its
    # INSERT then fails the unique constraint, and the racing path below answers it.
    unseen = not restoring and all(a.parsed.series_uid in context.series_absent for a in batch)
    existing = {} if alone or unseen else existing_instances(tenant, [a.parsed.sop_uid for a in batch])
    for accepted in batch:
        if accepted.parsed.sop_uid in existing:
            results[accepted.position] = _duplicate(existing[accepted.parsed.sop_uid], accepted.parsed,
                                                    accepted.spooled.sha256)
    new = [a for a in batch if a.parsed.sop_uid not in existing]
    if not new:
        return False
    fresh = not alone and not restoring and _fits_new_study(new, context)
    written = False
    pending: dict[str, Path] = {}
    placed: dict[str, Placed] = {}
    key_id, data_key = context.data_key_for(tenant)
    try:
        for accepted in new:
            accepted.key = accepted.key or Instance.new_storage_key(tenant.pk)
            pending[accepted.key] = tier1_seal(accepted.spooled.path, accepted.key, data_key=data_key,
                                               key_id=key_id, durable=False)
            # The plaintext goes now, before the flush, so its pages need never reach the disk.
            accepted.spooled.close()
        # Durable on disk before the index says so, and before anyone is told "stored";
        # in a region too, with INGEST_DURABILITY=primary (archive/storage/durability.py).
        tier1_flush(list(pending.values()))
        if durability() == PRIMARY_REGION and not restoring:
            placed = sealed_place(pending, key_id)

        def together(instances: list[_Accepted]) -> list[tuple[_Accepted, IngestResult]]:
            with transaction.atomic():
                return _index(tenant, instances, actor, context, restoring=restoring, closing=closing,
                              placed=placed)

        try:
            if alone:
                indexed = [_index_alone(tenant, new[0], context)]
            else:
                first = _index_new_study(tenant, new[0], actor, context, closing) if fresh else None
                indexed = [first] if first else together(new)
            written = closing is not None  # in the transaction just committed (or the caller's)
        except IntegrityError:
            context.forget()
            indexed = []
            if unseen:
                # Not looked up first: answer the UIDs a sender reused from one look-up now,
                # and index the rest together again, not each in a transaction of its own.
                reused = existing_instances(tenant, [a.parsed.sop_uid for a in new])
                for accepted in [a for a in new if a.parsed.sop_uid in reused]:
                    results[accepted.position] = _duplicate(reused[accepted.parsed.sop_uid], accepted.parsed,
                                                            accepted.spooled.sha256)
                    pending.pop(accepted.key, None)
                    _sealed_drop(accepted.key, placed)
                new = [a for a in new if a.parsed.sop_uid not in reused]
                if reused and new:
                    try:
                        indexed = together(new)
                        written = closing is not None
                        new = []
                    except IntegrityError:
                        context.forget()
            # Another request stored one of these a moment ago: commit them one by one.
            for accepted in new:
                indexed.append(_index_one_racing(tenant, accepted, actor, context, restoring, placed))
                # Committed (or its file removed as a duplicate): a later failure must not
                # take its tier-1 file or region copy away from an instance the index now holds.
                pending.pop(accepted.key, None)
                placed.pop(accepted.key, None)
        pending.clear()
    except DatabaseError:
        # The commit's outcome may be unknown (the connection dropped during COMMIT): the
        # rows may exist, so their files stay. The leftovers sweep removes tier-1 files no
        # row owns once TIER1_ORPHAN_GRACE_SECONDS have passed; a region copy no row points
        # to is ciphertext that costs space, never a loss.
        context.forget()
        log.warning("ingest failed in the database; %d sealed files kept for the leftovers sweep", len(pending))
        raise
    except BaseException:
        context.forget()  # rows made in the rolled-back transaction must not be remembered
        for key in pending:
            tier1_delete(key)
        placed_forget(placed[key] for key in pending if key in placed)
        raise
    for accepted, result in indexed:
        results[accepted.position] = result
    return written


def _fits_one_statement(batch: list[_Accepted], context: IngestContext) -> bool:
    """Whether the batch is one instance that `one_statement` can index: see there."""
    if len(batch) != 1 or not one_statement.supported() or durability() == PRIMARY_REGION:
        return False
    parsed = batch[0].parsed
    study, series = context.studies.get(parsed.study_uid), context.series.get(parsed.series_uid)
    # Retention reads the series row's modality, and this header's may differ from it.
    return (study is not None and series is not None and series.study_id == study.pk
            and "MG" not in ((parsed.series["modality"] or "").upper(), (series.modality or "").upper()))


def _fits_new_study(batch: list[_Accepted], context: IngestContext) -> bool:
    """Whether the batch is one instance of a study and series new to the sender's context
    (the series looked up, and not found), which `new_study` can write: see there."""
    if len(batch) != 1:
        return False
    parsed = batch[0].parsed
    return (parsed.series_uid in context.series_absent and parsed.study_uid not in context.studies
            and durability() != PRIMARY_REGION and new_study.supported())


def _index_new_study(tenant, accepted: _Accepted, actor: Actor, context: IngestContext,
                     closing: Callable | None) -> tuple[_Accepted, "IngestResult"] | None:
    """The rows, work and events `_index` would write for this instance, in three round
    trips (new_study.py); None, with nothing written, when `_index` must take it."""
    parsed = accepted.parsed
    result = IngestResult(Outcome.STORED, parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid, new_study=True)

    def rows(patient: Patient) -> tuple[Study, Series, Instance]:
        tally = _Tally(parsed, instances=1, size=accepted.spooled.size,
                       new_series_modalities=[parsed.series["modality"]])
        study = Study(**_study_fields(tenant, parsed, patient, tally))
        series = Series(tenant=tenant, series_instance_uid=parsed.series_uid, study=study, num_instances=1,
                        **parsed.series)
        return study, series, _instance_row(tenant, accepted, study, series)

    def events(study: Study, instance: Instance) -> list[dict]:
        result.instance = instance
        return [_study_created(study.pk, parsed), *(closing([(accepted, result)]) if closing else [])]

    written = new_study.study_written(
        tenant, patient=_patient_row(tenant, parsed), study_uid=parsed.study_uid, outbox_kind=ARCHIVE, actor=actor,
        rows=rows, events=events)
    if isinstance(written, new_study.NotWritten):
        if written.held is not None:  # not looked up again
            context.studies[parsed.study_uid] = written.held
        if written.raced:  # its series may exist now: looked up, not inserted blindly
            context.series_absent.discard(parsed.series_uid)
        return None
    context.studies[parsed.study_uid], context.series[parsed.series_uid] = written.study, written.series
    context.series_absent.discard(parsed.series_uid)
    result.instance = written.instance
    return accepted, result


def _index_alone(tenant, accepted: _Accepted, context: IngestContext) -> tuple[_Accepted, "IngestResult"]:
    parsed = accepted.parsed
    instance = _instance_row(tenant, accepted, context.studies[parsed.study_uid], context.series[parsed.series_uid])
    if not one_statement.instance_indexed(instance, outbox_kind=ARCHIVE):
        # Sent before (a modality sending a study again), or by another sender a moment ago.
        existing = existing_instances(tenant, [parsed.sop_uid]).get(parsed.sop_uid)
        if existing is None:  # deleted again since: the racing path starts over
            raise IntegrityError("the instance was stored and deleted again meanwhile")  # no UID: logs
        tier1_delete(accepted.key)
        return accepted, _duplicate(existing, parsed, accepted.spooled.sha256)
    return accepted, IngestResult(Outcome.STORED, parsed.sop_class_uid, parsed.sop_uid, parsed.study_uid,
                                  instance=instance)


def _instance_row(tenant, accepted: _Accepted, study: Study, series: Series) -> Instance:
    parsed = accepted.parsed
    return Instance(
        tenant=tenant, study=study, series=series,
        sop_instance_uid=parsed.sop_uid, sop_class_uid=parsed.sop_class_uid,
        transfer_syntax_uid=parsed.transfer_syntax_uid, size_bytes=accepted.spooled.size,
        sha256=accepted.spooled.sha256, storage_key=accepted.key, metadata=parsed.metadata, **parsed.instance)


def _index_one_racing(tenant, accepted: _Accepted, actor: Actor, context: IngestContext, restoring: bool,
                      placed: dict[str, Placed]):
    try:
        with transaction.atomic():
            return _index(tenant, [accepted], actor, context, racing=True, restoring=restoring, placed=placed)[0]
    except IntegrityError:
        context.forget()
        _sealed_drop(accepted.key, placed)
        raced = Instance.objects.for_tenant(tenant).filter(sop_instance_uid=accepted.parsed.sop_uid).first()
        if raced is None:
            raise
        return accepted, _duplicate(raced, accepted.parsed, accepted.spooled.sha256)


def _sealed_drop(key: str, placed: dict[str, Placed]) -> None:
    """A duplicate's sealed tier-1 file goes, and its region copy if one was made: the
    instance the index holds keeps its own."""
    tier1_delete(key)
    if (copy := placed.pop(key, None)) is not None:
        placed_forget([copy])


@dataclass
class _Tally:
    """What one batch adds to a study or a series: counted before its rows are made, so a
    row the batch creates is written once, complete."""

    parsed: ParsedInstance  # its first instance in the batch
    instances: int = 0
    size: int = 0
    new_series_modalities: list[str] = field(default_factory=list)


def _tallies(new: list[_Accepted]) -> tuple[dict[str, _Tally], dict[str, _Tally]]:
    studies: dict[str, _Tally] = {}
    series: dict[str, _Tally] = {}
    for accepted in new:
        parsed = accepted.parsed
        for tallies, uid in ((studies, parsed.study_uid), (series, parsed.series_uid)):
            tally = tallies.setdefault(uid, _Tally(parsed))
            tally.instances += 1
            tally.size += accepted.spooled.size
    return studies, series


def study_row_fields(parsed: ParsedInstance, patient: Patient) -> dict:
    """The fields of a Study row that come from an instance's header (no counts): ingest's,
    and a correction's when it re-indexes the images it changed (archive/corrections/)."""
    return {**parsed.study, "study_instance_uid": parsed.study_uid, "patient": patient,
            "patient_name": parsed.patient["patient_name"],
            "patient_name_search": parsed.patient["patient_name"].upper(),
            "patient_identifier": parsed.patient["patient_id"],
            "patient_birth_date": parsed.patient["birth_date"], "patient_sex": parsed.patient["sex"]}


def _study_fields(tenant, parsed: ParsedInstance, patient: Patient, tally: _Tally) -> dict:
    modalities = [m for m in dict.fromkeys(tally.new_series_modalities) if m]
    return {**study_row_fields(parsed, patient), "tenant": tenant,
            "num_instances": tally.instances, "size_bytes": tally.size,
            "num_series": len(tally.new_series_modalities), "modalities": "\\".join(modalities)}


def patient_key(parsed: ParsedInstance) -> tuple[str, str]:
    return parsed.patient["patient_id"], parsed.patient["issuer_of_patient_id"]


def patients_for(tenant, wanted: list[ParsedInstance]) -> dict[tuple[str, str], Patient]:
    """The patient row of each study about to be made, found or created (a row another
    request creates meanwhile is taken, so this is safe on the fallback path too)."""
    keys = {patient_key(parsed): parsed for parsed in wanted}
    if not keys:
        return {}
    found = {(p.patient_id, p.issuer_of_patient_id): p for p in patients_by_id(tenant, {key[0] for key in keys})}
    missing = [_patient_row(tenant, parsed) for key, parsed in keys.items() if key not in found]
    if missing:
        # A patient is shared by studies that may arrive at once from several senders: a row
        # another request made meanwhile is taken as it is, not a reason to fall back. So
        # ON CONFLICT DO NOTHING, then read them. Not DO UPDATE (one statement less): it
        # locks the other request's row FOR UPDATE, as its SET names a key column, and every
        # other transaction adding a study of that patient then waits at its commit (its
        # foreign-key check) while holding the retention policy's lock, which this one
        # wants next: a deadlock, seen with four modalities sending one patient's studies.
        # The rows this insert made come back from it; only those another request made are read.
        made = patients_insert_new(missing, by=("patient_id", "issuer_of_patient_id"))
        found.update({(p.patient_id, p.issuer_of_patient_id): p for p in made})
        if len(made) < len(missing):
            found.update({(p.patient_id, p.issuer_of_patient_id): p
                          for p in patients_by_id(tenant, {p.patient_id for p in missing if p.pk is None})})
    return found


def _patient_row(tenant, parsed: ParsedInstance) -> Patient:
    patient_id, issuer = patient_key(parsed)
    return Patient(tenant=tenant, patient_id=patient_id, issuer_of_patient_id=issuer,
                   **{k: parsed.patient[k] for k in ("patient_name", "birth_date", "sex")})


def _study_created(study_pk: int, parsed: ParsedInstance) -> dict:
    return {"action": "study.created", "obj_type": "study", "obj_id": study_pk,
            "detail": {"modality": parsed.series["modality"]}}


@dataclass
class _Rows:
    """The study and series rows of a batch, and what the batch still has to add to them."""

    studies: dict[str, _Tally]
    series: dict[str, _Tally]
    made_studies: set[str]  # study rows this batch created (the new-study events)
    complete: set[tuple[str, str]]  # ("study"|"series", uid): rows written with the batch's counts


def _rows(tenant, new: list[_Accepted], context: IngestContext, racing: bool) -> _Rows:
    """Find the batch's study and series rows (remembered by `context`, else in the index)
    and make the missing ones, in a few statements for the whole batch, each new row written
    once with the batch's counts. With `racing` (one instance, after a concurrent insert
    made the batch fail) rows go through get_or_create instead, and get counted after."""
    studies, series = _tallies(new)
    for cache, field_name, tallies, absent, lookup in (
            (context.series, "series_instance_uid", series, context.series_absent, series_with_study),
            (context.studies, "study_instance_uid", studies, set(), studies_by_uid)):
        wanted = [uid for uid in tallies if uid not in cache and uid not in absent]
        if wanted:
            cache.update({getattr(row, field_name): row for row in lookup(tenant, wanted)})
    new_series = [uid for uid in series if uid not in context.series]
    new_studies = [uid for uid in studies if uid not in context.studies]
    if racing:
        return _rows_racing(tenant, context, studies, series, new_studies, new_series)
    for uid in new_series:
        tally = series[uid]
        studies[tally.parsed.study_uid].new_series_modalities.append(tally.parsed.series["modality"])
    patients = patients_for(tenant, [studies[uid].parsed for uid in new_studies])
    made = studies_insert([
        Study(**_study_fields(tenant, studies[uid].parsed, patients[patient_key(studies[uid].parsed)],
                              studies[uid])) for uid in new_studies])
    context.studies.update({row.study_instance_uid: row for row in made})
    made = series_insert([
        Series(tenant=tenant, series_instance_uid=uid, study=context.studies[series[uid].parsed.study_uid],
               num_instances=series[uid].instances, **series[uid].parsed.series) for uid in new_series])
    context.series.update({row.series_instance_uid: row for row in made})
    return _Rows(studies, series, set(new_studies),
                 {("study", uid) for uid in new_studies} | {("series", uid) for uid in new_series})


def _rows_racing(tenant, context, studies, series, new_studies, new_series) -> _Rows:
    made = set()
    patients = patients_for(tenant, [studies[uid].parsed for uid in new_studies])
    for uid in new_studies:
        parsed = studies[uid].parsed
        fields = _study_fields(tenant, parsed, patients[patient_key(parsed)], _Tally(parsed))  # no counts yet
        del fields["tenant"], fields["study_instance_uid"]
        context.studies[uid], created = Study.objects.for_tenant(tenant).get_or_create(
            study_instance_uid=uid, defaults=fields)
        if created:
            made.add(uid)
    for uid in new_series:
        parsed = series[uid].parsed
        context.series[uid], created = Series.objects.for_tenant(tenant).get_or_create(
            series_instance_uid=uid, defaults={**parsed.series, "study": context.studies[parsed.study_uid]})
        if created:
            studies[parsed.study_uid].new_series_modalities.append(parsed.series["modality"])
    return _Rows(studies, series, made, set())


def _index(tenant, new: list[_Accepted], actor: Actor, context: IngestContext, *, racing: bool = False,
           restoring: bool = False, closing: Callable | None = None, placed: dict[str, Placed] | None = None):
    """Index a batch of sealed instances: a few statements for the whole batch, whatever
    the number of studies in it (a hundred one-image studies in one STOW body)."""
    rows = _rows(tenant, new, context, racing)
    instances, results, announced = [], [], set()
    for accepted in new:
        parsed = accepted.parsed
        instance = _instance_row(tenant, accepted, context.studies[parsed.study_uid],
                                 context.series[parsed.series_uid])
        instances.append(instance)
        new_study = parsed.study_uid in rows.made_studies and parsed.study_uid not in announced
        announced.add(parsed.study_uid)
        results.append((accepted, IngestResult(Outcome.STORED, parsed.sop_class_uid, parsed.sop_uid,
                                               parsed.study_uid, instance=instance, new_study=new_study)))
    instances_insert(instances)
    if placed:  # the copies confirmed in a region before this commit (INGEST_DURABILITY=primary)
        InstanceCopy.unscoped.bulk_create([placed[accepted.key].copy_row(instance)
                                           for accepted, instance in zip(new, instances, strict=True)])
    # The archive work for each instance commits with it (published once it has), and so
    # does what other apps do for a new study (billing records its one charge): a restore
    # brings back studies the clinic had, so they are not new to those apps.
    work = [(ARCHIVE, [i.pk for i in instances])]
    if rows.made_studies and not restoring:
        work += new_studies_work(tenant, [context.studies[uid] for uid in rows.made_studies])
    outbox_add_many(tenant=tenant, work=work)
    # Rows made by this batch carry its counts already; rows found get them added.
    for uid, tally in rows.series.items():
        if ("series", uid) not in rows.complete:
            series_grown.run(pk=context.series[uid].pk, instances=tally.instances)
    now = timezone.now()
    for uid, tally in rows.studies.items():
        if ("study", uid) in rows.complete:
            continue
        study_pk = context.studies[uid].pk
        if not tally.new_series_modalities:
            study_grown.run(pk=study_pk, instances=tally.instances, size=tally.size, now=now)
            continue
        # New series: re-read under lock, as new series of one study may arrive in two
        # requests at once.
        locked = Study.unscoped.select_for_update().get(pk=study_pk)
        merged = [*locked.modality_list]
        merged += [m for m in dict.fromkeys(tally.new_series_modalities) if m and m not in merged]
        Study.unscoped.filter(pk=study_pk).update(
            num_instances=F("num_instances") + tally.instances, size_bytes=F("size_bytes") + tally.size,
            updated_at=now, num_series=F("num_series") + len(tally.new_series_modalities),
            modalities="\\".join(merged))
    retention_on_ingest_many(tenant=tenant, indexed=[(r.instance, r.new_study) for _, r in results])
    audit_record_many(tenant=tenant, actor=actor, events=[
        _study_created(r.instance.study_id, accepted.parsed) for accepted, r in results if r.new_study]
        + (closing(results) if closing else []))
    return results
