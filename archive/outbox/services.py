"""Writing outbox rows and driving them: one entry point for every kind.

`outbox_add` is called inside the transaction of the change the work follows; once that
commits, the rows go to a worker (`outbox.process`) in one message, together with rows
committed just before or after (archive/outbox/publisher.py). `outbox_advance` runs
a row's handler; `outbox_sweep` re-drives rows that a lost message, a killed worker or an
outage left undone."""

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from archive.outbox.models import Outbox
from archive.outbox.publisher import publish_in_batches, publisher_for
from archive.outbox.registry import handler_for
from cloudpacs.compiled_query import CompiledInsert

log = logging.getLogger(__name__)

PROCESS_TASK = "outbox.process"


def outbox_add(*, tenant, kind: str, subjects: list[int], payload: dict | None = None) -> list[Outbox]:
    """One row of `kind` per subject id, published to the workers once the caller's
    transaction commits."""
    return outbox_add_many(tenant=tenant, work=[(kind, subjects)], payload=payload)


# Ingest writes rows with every instance: the INSERT is compiled once per row count.
_compiled = CompiledInsert(Outbox)
_insert = _compiled.insert


def outbox_statement(*, tenant, kind: str, subjects: list[int]) -> tuple[str, list]:
    """outbox_add's rows as one statement answering their ids, for a caller that sends it
    with others in its own transaction and passes the ids to `outbox_published`."""
    handler_for(kind)
    return _compiled.statement([Outbox(tenant=tenant, kind=kind, subject_id=subject, payload={})
                                for subject in subjects])


def outbox_add_many(*, tenant, work: list[tuple[str, list[int]]], payload: dict | None = None) -> list[Outbox]:
    """Rows of several kinds, (kind, subject ids) each, in one insert (ingest writes its
    archive rows and what other apps ask for the new studies at once)."""
    for kind, _ in work:
        handler_for(kind)  # an unknown kind is a programming error: fail before anything is written
    rows = _insert(
        [Outbox(tenant=tenant, kind=kind, subject_id=subject, payload=payload or {})
         for kind, subjects in work for subject in subjects])
    outbox_published([row.pk for row in rows])
    return rows


def outbox_insert_from(connection, *, tenant, kind: str, source: str) -> tuple[str, list]:
    """An INSERT ... SELECT of one `kind` row per row of `source` (a CTE of the caller's
    statement with an `id` column: the subjects), returning the new ids, and its parameters.
    For a caller that writes its change and the work in one statement; it passes the ids
    the statement returns to `outbox_published`."""
    handler_for(kind)
    row = Outbox(tenant=tenant, kind=kind, payload={})
    fields = [f for f in Outbox._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    values, params = [], []
    for f in fields:
        if f.attname == "subject_id":
            values.append(f"{quote(source)}.{quote('id')}")
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(f.pre_save(row, True), connection))
    sql = (f"INSERT INTO {quote(Outbox._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"SELECT {', '.join(values)} FROM {quote(source)} RETURNING {quote(Outbox._meta.pk.column)}")
    return sql, params


def outbox_published(ids: list[int]) -> None:
    """Rows just written (here, or by a caller's statement made with `outbox_insert_from`):
    published to the workers once the transaction they are in has committed."""
    if ids:
        transaction.on_commit(lambda: _publisher.add(ids))


def outbox_publish(ids: list[int]) -> None:
    """Hand rows to the workers. If the broker is down the sweeper re-drives them."""
    if not ids:
        return
    try:
        # Looked up by name: the task module imports this one, not the other way round.
        current_app.tasks[PROCESS_TASK].delay(ids)
    except Exception:  # noqa: BLE001 - the rows stay in the outbox; the sweeper retries
        log.warning("could not publish outbox rows %s; the sweeper will re-drive them", ids, exc_info=True)


# Committed rows gathered into fewer messages (archive/outbox/publisher.py).
_publisher = publisher_for(outbox_publish)


def outbox_publish_gathered() -> None:
    """Send the rows gathered for the current window now (the window's end does it)."""
    _publisher.flush()


def outbox_advance_many(outbox_ids: list[int]) -> dict[int, bool | Exception]:
    """Run the handlers of these rows, each kind's rows in one call; mark the rows done
    that their handler says are. Rows done already or gone are left alone (and absent from
    the answer). Answers per row: True (done), False (under way) or the exception that
    stopped it, which is recorded on the row."""
    rows = list(Outbox.unscoped.filter(pk__in=outbox_ids, done_at=None).order_by("pk"))
    by_kind: dict[str, list[Outbox]] = {}
    for row in rows:
        by_kind.setdefault(row.kind, []).append(row)
    results: dict[int, bool | Exception] = {}
    for kind, of_kind in by_kind.items():
        try:
            results.update(handler_for(kind)(of_kind))
        except Exception as exc:  # noqa: BLE001 - the whole call failed: every row of it did
            results.update({row.pk: exc for row in of_kind})
    now = timezone.now()
    done = [pk for pk, result in results.items() if result is True]
    under_way = [pk for pk, result in results.items() if result is False]
    failed = {pk: result for pk, result in results.items() if isinstance(result, Exception)}
    if done:
        Outbox.unscoped.filter(pk__in=done).update(done_at=now, last_error="", next_attempt_at=now)
    if under_way:
        Outbox.unscoped.filter(pk__in=under_way).update(next_attempt_at=now)
    for pk, exc in failed.items():  # not on a row another worker finished meanwhile
        Outbox.unscoped.filter(pk=pk, done_at=None).update(
            next_attempt_at=now, last_error=f"{type(exc).__name__}: {exc}"[:2000])
    return results


def outbox_advance(outbox_id: int) -> bool | None:
    """Run one row's handler; mark the row done when the handler says so. Idempotent: a
    row that is done or gone is left alone (None). A failure is recorded on the row and
    raised."""
    result = outbox_advance_many([outbox_id]).get(outbox_id)
    if isinstance(result, Exception):
        raise result
    return result


def outbox_sweep(*, limit: int = 1000) -> int:
    """Re-drive rows of every kind not done and idle longer than STORAGE_SWEEP_IDLE_SECONDS:
    claim them and publish them again, in messages of OUTBOX_PUBLISH_BATCH rows, so the work runs
    batched on the workers (not here, one row at a time, where a region that times out
    would hold the beat task). Returns how many rows were re-driven."""
    cutoff = timezone.now() - timedelta(seconds=settings.STORAGE_SWEEP_IDLE_SECONDS)
    candidates = list(Outbox.unscoped.filter(done_at=None, next_attempt_at__lte=cutoff)
                      .order_by("next_attempt_at").values_list("pk", "next_attempt_at")[:limit])
    claimed = [pk for pk, seen in candidates
               # The compare on next_attempt_at stops two sweepers doubling up.
               if Outbox.unscoped.filter(pk=pk, next_attempt_at=seen).update(
                   next_attempt_at=timezone.now(), attempts=F("attempts") + 1)]
    publish_in_batches(outbox_publish, claimed)
    if claimed:
        log.info("sweeper re-drove %d outbox rows", len(claimed))
    return len(claimed)
