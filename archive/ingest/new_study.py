"""A new study of one image, written in three round trips to PostgreSQL instead of twelve.

X-ray and ultrasound practices send studies of one image, often each in a request or an
association of its own. The general path (service._index) writes such a study's rows one
statement after another, each waiting for the key the one before answers: on two cores
every round trip costs a context switch each way, and they were most of such a request's
time (bench/: one-image studies, one per request). Here the new rows' keys are taken from
their tables' sequences first, so that no row waits for another's:

1. outside a transaction: the clinic's rows of the patient, its row of the study if any,
   and four new keys;
2. BEGIN; the patient's row (if new), the study's, series' and instance's, the instance's
   archive work and the other apps' work for a new study (billing's charge, hooks.py);
   then the retention policy and the audit chain's end, read under their locks;
3. the study's retention row, the audit events, COMMIT.

The locks are taken in the general path's order (the rows, the policy, the chain), so the
two paths cannot deadlock each other. All or nothing: a row left out by a conflict
(another sender made the patient, study or series a moment ago; the clinic holds the SOP
Instance UID already) rolls the whole back, and the general path, which answers each of
those, takes the instance. The rows go in with ON CONFLICT DO NOTHING and answer their
keys, so such a race ends in a ROLLBACK, not an error: PostgreSQL logs a failed statement
whole, and these carry the patient's name and header. The promise is the general path's: on return the rows and their work
are committed, or nothing was written.

Only on PostgreSQL with client-side binding (several statements in one call), outside a
transaction, and when every new-study hook has a statement form; the caller checks the
rest (one instance of a study and series the clinic does not hold, not a restore, not
INGEST_DURABILITY=primary)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, connection

from archive.ingest.hooks import new_study_statements
from archive.ingest.rows import (
    instance_keyed,
    patient_keyed,
    patients_by_id_statement,
    patients_from_rows,
    series_keyed,
    studies_from_rows,
    study_by_uid_statement,
    study_keyed,
)
from archive.models import Instance, Patient, Series, Study
from archive.outbox.services import outbox_published, outbox_statement
from archive.retention.services import (
    policy_from_rows,
    policy_locked_statement,
    retention_new_study_statement,
)
from cloudpacs.compiled_query import binds_on_client, keys_statement, rolled_back, send_together
from tenants.audit import Actor, chain_end_statements, chained_keys, chained_statement

log = logging.getLogger(__name__)


def supported() -> bool:
    if connection.vendor != "postgresql" or not connection.get_autocommit() or connection.in_atomic_block:
        return False
    connection.ensure_connection()
    return binds_on_client(connection)


@dataclass
class Written:
    study: Study
    series: Series
    instance: Instance


@dataclass
class NotWritten:
    """Nothing written: the general path takes the instance. `held`: the clinic's row of
    the study, when that is why; `raced`: another sender made one of the rows meanwhile."""

    held: Study | None = None
    raced: bool = False


def study_written(tenant, *, patient: Patient, study_uid: str, outbox_kind: str, actor: Actor,
                  rows: Callable[[Patient], tuple[Study, Series, Instance]],
                  events: Callable[[Study, Instance], list[dict]]) -> Written | NotWritten:
    """Write a new study of one image: `rows(patient)` makes its study, series and instance
    rows (not saved) for its patient row (the clinic's, or `patient`, not saved, if it has
    none); `events(study, instance)` the audit events that commit with them."""
    found, study_found, keys = send_together(connection, [
        patients_by_id_statement(tenant, patient.patient_id), study_by_uid_statement(tenant, study_uid),
        keys_statement(Patient, Study, Series, Instance)])
    if study_found:  # the clinic's already: the general path adds a series to it
        return NotWritten(held=studies_from_rows(study_found)[0])
    patient_key, study_key, series_key, instance_key = keys[0]
    known = next((p for p in patients_from_rows(found) if p.issuer_of_patient_id == patient.issuer_of_patient_id), None)
    if known is None:
        patient.pk = patient_key
    study, series, instance = rows(known or patient)
    study.pk, series.pk, instance.pk = study_key, series_key, instance_key
    series.study, instance.study, instance.series = study, study, series
    hooks = new_study_statements(tenant, study)
    if hooks is None:
        return NotWritten()
    try:
        written = [patient_keyed.statement([patient])] if known is None else []
        written += [study_keyed.statement([study]), series_keyed.statement([series]),
                    instance_keyed.statement([instance]),
                    outbox_statement(tenant=tenant, kind=outbox_kind, subjects=[instance.pk]), *hooks]
        locks = [policy_locked_statement(tenant=tenant), *chain_end_statements(tenant=tenant)]
        # Read committed, whatever the server's default: the chain's end must be read as the
        # writer before this one committed it (tenants/audit.py).
        answers = send_together(connection, [("BEGIN ISOLATION LEVEL READ COMMITTED", []), *written, *locks])
        if not all(answers[1:len(written) - len(hooks)]):  # a row left out: made meanwhile
            rolled_back(connection)
            return NotWritten(raced=True)
        work = [row[0] for answer in answers[len(written) - len(hooks):len(written) + 1] for row in answer]
        policy_rows, _, chain_end = answers[len(written) + 1:]
        policy = policy_from_rows(policy_rows)
        if policy is None:  # the clinic's first study: the general path makes its policy
            rolled_back(connection)
            return NotWritten()
        retention = retention_new_study_statement(tenant=tenant, study=study, policy=policy)
        audit_sql, audit_params, audited = chained_statement(tenant=tenant, actor=actor, events=events(study, instance),
                                                             end=chain_end)
        answers = send_together(connection, [retention, (audit_sql, audit_params), ("COMMIT", [])])
    except IntegrityError:  # at the COMMIT: a row referred to was deleted meanwhile
        rolled_back(connection)
        return NotWritten(raced=True)
    except BaseException:
        rolled_back(connection)
        raise
    chained_keys(audited, answers[1])
    for row in (patient, study, series, instance):
        row._state.adding, row._state.db = False, connection.alias
    try:
        outbox_published(work)
    except Exception:  # noqa: BLE001 - committed: the rows are the index's, whatever fails now
        # Raised on, ingest would take the image's file away from its committed row.
        log.warning("could not hand outbox rows %s to the workers; the sweeper will re-drive them", work,
                    exc_info=True)
    return Written(study, series, instance)

