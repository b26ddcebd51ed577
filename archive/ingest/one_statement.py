"""One more instance of a series the sender has been sending, indexed in one statement.

A C-STORE association sends a series an image at a time and waits for each answer, so
each round trip to the database is paid once per image, with PostgreSQL sharing the CPU.
The general path takes seven for such an image (the duplicate check, BEGIN, the instance,
its archive outbox row, the series and study counters, COMMIT). On PostgreSQL this path
takes one: a statement whose data-modifying CTEs insert the instance (unless the clinic
holds its SOP Instance UID already), its outbox row, and add it to its series' and
study's counts. A statement is atomic, and committed before it answers (outside a
transaction), so the promise is the general path's: indexed, with its work, or nothing.

Only for what needs nothing else: a study and series the sender's context holds (no row
to make, no new-study work or audit event, no modality to merge), no mammography (its
retention is decided by its first MG series), no region copy made before the commit
(INGEST_DURABILITY=primary), no restore and no caller's audit events."""

from django.db import connection
from django.utils import timezone

from archive.models import Instance, Series, Study
from archive.outbox.services import outbox_insert_from, outbox_published


def supported() -> bool:
    """PostgreSQL (SQLite has no data-modifying CTEs: the embedded default takes the general
    path), outside a transaction: the statement then commits, its deferred foreign keys
    checked, before it answers, and a failure leaves no caller's transaction broken."""
    return connection.vendor == "postgresql" and connection.get_autocommit() and not connection.in_atomic_block


def instance_indexed(instance: Instance, *, outbox_kind: str) -> bool:
    """Insert `instance` (its study and series rows exist: their ids are set on it), its
    `outbox_kind` row, and count it in its series and study; set its primary key. False,
    with nothing written, when the clinic has an instance of that SOP Instance UID
    already; IntegrityError when a constraint fails (its series was deleted meanwhile)."""
    quote = connection.ops.quote_name
    fields = [f for f in Instance._meta.concrete_fields if not f.primary_key]
    instance._prepare_related_fields_for_save(operation_name="save")
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    tenant_column, uid_column = (quote(Instance._meta.get_field(name).column) for name in ("tenant", "sop_instance_uid"))
    outbox_sql, outbox_params = outbox_insert_from(connection, tenant=instance.tenant, kind=outbox_kind,
                                                   source="new_instance")
    sql = (
        f"WITH new_instance AS (INSERT INTO {quote(Instance._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({tenant_column}, {uid_column}) DO NOTHING RETURNING {quote('id')}), "
        f"work AS ({outbox_sql}), "
        # Counted only when the instance went in (a CTE's writes all happen, referenced or
        # not). The study's update reads the series' so that it runs after it: PostgreSQL
        # runs unreferenced CTEs last first, and the general path locks the series row
        # before the study's; the other order deadlocks with it.
        f"in_series AS (UPDATE {quote(Series._meta.db_table)} SET num_instances = num_instances + 1 "
        f"WHERE id = %s AND EXISTS (SELECT FROM new_instance) RETURNING 1), "
        f"in_study AS (UPDATE {quote(Study._meta.db_table)} SET num_instances = num_instances + 1, "
        f"size_bytes = size_bytes + %s, updated_at = %s WHERE id = %s AND EXISTS (SELECT FROM in_series)) "
        f"SELECT new_instance.id, work.id FROM new_instance, work")
    params += outbox_params + [instance.series_id, instance.size_bytes, timezone.now(), instance.study_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk, outbox_id = row
    instance._state.adding, instance._state.db = False, connection.alias
    outbox_published([outbox_id])
    return True
