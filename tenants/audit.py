"""The append-only audit log, one hash chain per clinic.

Each event stores the hash of the one before it in the same clinic and a keyed hash
(HMAC-SHA256, key derived from the master key, see tenants/audit_keys.py) over its own
fields, so changing, deleting or reordering a row breaks the chain, and
`manage.py verify_audit` finds where, even if whoever changed it recomputed the hashes.
Deleting the newest events is caught by anchors outside the database
(tenants/audit_anchor.py).

Events written before hashes were keyed keep their plain SHA-256 (`hash_version` 1); how
many there are per clinic is fixed, under the key, in its `AuditKeyCheck` row.
"""

from dataclasses import dataclass

from django.db import connection, transaction

from cloudpacs.compiled_query import CompiledInsert, binds_on_client, rolled_back
from tenants.audit_keys import AuditKeyError, chain_key, key_check_mac, legacy_mac, same

# The log's rows live in tenants/models.py; they are named here too, where the log is used.
from tenants.models import (  # noqa: F401
    GENESIS_HASH,
    HMAC_SHA256,
    SHA256,
    AppendOnlyError,
    AuditEvent,
    AuditKeyCheck,
    Tenant,
)


@dataclass(frozen=True)
class Actor:
    """Who did something: a user, an API token, a share link, or the system."""

    type: str
    id: str = ""
    label: str = ""
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(type=AuditEvent.SYSTEM, label=label)


def audit_record(*, tenant, actor: Actor, action: str, obj_type: str = "", obj_id: str = "",
                 detail: dict | None = None) -> AuditEvent:
    """Append one event to the clinic's chain. Runs inside the caller's transaction if any."""
    return audit_record_many(tenant=tenant, actor=actor, events=[
        {"action": action, "obj_type": obj_type, "obj_id": obj_id, "detail": detail}])[0]


def audit_record_many(*, tenant, actor: Actor, events: list[dict]) -> list[AuditEvent]:
    """Append events (each a dict of audit_record's action, obj_type, obj_id, detail) to
    the clinic's chain in order, with one lock and one insert for all of them (an upload of
    a hundred studies writes a hundred events)."""
    if not events:
        return []
    if _commits_alone() and len(events) <= ALONE_MAX:
        return _append_alone(tenant, actor, events)
    # No savepoint inside a caller's transaction (ingest): if this fails, so does the caller.
    with transaction.atomic(savepoint=False):
        made = _chained(tenant, actor, events, _locked_chain_end(tenant.pk))
        return _insert(made)


ALONE_MAX = 100  # events in one INSERT sent with its COMMIT (a read writes one)


def _commits_alone() -> bool:
    """On PostgreSQL outside any transaction (a read's event)."""
    return (connection.get_autocommit() and not connection.in_atomic_block
            and binds_on_client(connection))  # PostgreSQL, several statements in one call


def _append_alone(tenant, actor: Actor, events: list[dict]) -> list[AuditEvent]:
    """Two round trips, where a transaction of its own through the ORM takes five: the
    BEGIN goes with the lock of the clinic's row and the read of its chain's end, the
    INSERT with the COMMIT. The events are committed, in the chain, when this returns."""
    with connection.cursor() as cursor:
        try:
            # Read committed, whatever the server's default: the read must see the event the
            # writer before ours committed while we waited for the lock.
            cursor.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; {_LOCK}; {_READ}", [tenant.pk, tenant.pk])
            cursor.nextset()  # past the BEGIN's answer
            cursor.nextset()  # and the lock's
            made = _chained(tenant, actor, events, cursor.fetchone())
            sql, params = _insert_statement(made)
            cursor.execute(f"{sql}; COMMIT", params)
            _insert_keys(made, cursor.fetchall())
        except BaseException:
            rolled_back(connection)  # a failed statement skips the COMMIT sent after it
            raise
    return made


def _chained(tenant, actor: Actor, events: list[dict], last: tuple[int, str] | None) -> list[AuditEvent]:
    """The events, linked from the chain's `last` (seq, hash), read under its lock."""
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    key = chain_key()
    if seq == 1:
        AuditKeyCheck.build(tenant_id=tenant.pk, legacy_events=0, key=key).save()
    else:
        _key_checked(tenant.pk, key)
    made = []
    for item in events:
        event = AuditEvent(
            tenant=tenant, seq=seq, actor_type=actor.type, actor_id=str(actor.id or "")[:64],
            actor_label=(actor.label or "")[:254], action=item["action"],
            object_type=item.get("obj_type") or "", object_id=str(item.get("obj_id") or "")[:128],
            ip=actor.ip or None, user_agent=(actor.user_agent or "")[:300],
            detail=item.get("detail") or {}, prev_hash=prev_hash,
        )
        event.hash = event.compute_hash(key)
        made.append(event)
        seq, prev_hash = seq + 1, event.hash
    return made


# Most requests write one event, and compiling bulk_create's statement cost more than the
# chain's lock and read: the INSERT is made once per batch size (cloudpacs/compiled_query.py).
_compiled_insert = CompiledInsert(AuditEvent)
_insert, _insert_statement, _insert_keys = _compiled_insert.insert, _compiled_insert.statement, _compiled_insert.set_keys

# Lock the clinic's row, so that two writers cannot take the same place in its chain, then
# read the chain's last (seq, hash). Two statements: the read must see what the writer
# before ours committed, and a statement sees what was committed when it began.
_LOCK = f"SELECT 1 FROM {Tenant._meta.db_table} WHERE id = %s FOR UPDATE"
_READ = f"SELECT seq, hash FROM {AuditEvent._meta.db_table} WHERE tenant_id = %s ORDER BY seq DESC LIMIT 1"


def chain_end_statements(*, tenant) -> list[tuple[str, list]]:
    """The lock of the clinic's chain and the read of its end, as two statements for a
    caller that sends them with others in its own transaction (READ COMMITTED); the
    read's rows go to `chained_statement`."""
    return [(_LOCK, [tenant.pk]), (_READ, [tenant.pk])]


def chained_statement(*, tenant, actor: Actor, events: list[dict], end: list) -> tuple[str, list, list[AuditEvent]]:
    """The INSERT of `events` linked from the chain's end (the rows of the read of
    `chain_end_statements`), its parameters, and the events; once it has run, give them
    their keys with `chained_keys(events, rows)`."""
    made = _chained(tenant, actor, events, end[0] if end else None)
    return *_insert_statement(made), made


def chained_keys(events: list[AuditEvent], rows: list) -> None:
    _insert_keys(events, rows)


def _locked_chain_end(tenant_id: int) -> tuple[int, str] | None:
    """The chain's end, read under the lock (_LOCK, _READ), inside the caller's transaction.
    On PostgreSQL both statements go in one round trip (the server still runs them one
    after the other)."""
    with connection.cursor() as cursor:
        if not binds_on_client(connection):  # one statement a call
            # SQLite's transactions here begin IMMEDIATE: one writer at a time, no row locks.
            if connection.vendor == "postgresql":
                cursor.execute(_LOCK, [tenant_id])
            cursor.execute(_READ, [tenant_id])
            return cursor.fetchone()
        cursor.execute(f"{_LOCK}; {_READ}", [tenant_id, tenant_id])
        cursor.nextset()  # past the lock's answer
        return cursor.fetchone()


_checked: set[tuple[int, bytes]] = set()


def _key_checked(tenant_id: int, key: bytes) -> None:
    """Refuse to extend a clinic's chain under another key than it was written with (a
    process started after a master key rotation without the pinned audit keys): the
    events would be lost to verification. Once per clinic and key per process."""
    if (tenant_id, key) in _checked:
        return
    check = AuditKeyCheck.unscoped.filter(tenant_id=tenant_id).values_list("key_check", flat=True).first()
    if check is not None and not same(check, key_check_mac(key, tenant_id)):
        raise AuditKeyError("the audit log's key is not the one the chain was written with: after a master "
                            "key rotation, give this process CLOUDPACS_AUDIT_KEYS")
    _checked.add((tenant_id, key))


def audit_keys_mismatched() -> list[int]:
    """The clinics whose chain was written under another key than the current one."""
    key = chain_key()
    return [tenant_id for tenant_id, check in AuditKeyCheck.unscoped.values_list("tenant_id", "key_check")
            if not same(check, key_check_mac(key, tenant_id))]


@dataclass
class ChainProblem:
    seq: int | None  # None: the whole chain, not one event
    problem: str


def audit_verify(*, tenant) -> list[ChainProblem]:
    """Walk a clinic's chain from the start; return every place it is broken.

    Raises AuditKeyError when the configured master key is not the one the chain was
    written with (or there is none): then nothing can be said about the rows."""
    problems: list[ChainProblem] = []
    key = chain_key()
    events = AuditEvent.objects.for_tenant(tenant)
    check = AuditKeyCheck.objects.for_tenant(tenant).first()
    legacy = 0
    if check is None:
        if events.exists():
            problems.append(ChainProblem(None, "the clinic's key check record is missing"))
    elif not same(check.key_check, key_check_mac(key, tenant.pk)):
        raise AuditKeyError("cannot verify: wrong or missing master key")
    elif not same(check.legacy_mac, legacy_mac(key, tenant.pk, check.legacy_events)):
        problems.append(ChainProblem(None, "the clinic's key check record was altered"))
    else:
        legacy = check.legacy_events
    expected_prev, expected_seq = GENESIS_HASH, 1
    for event in events.order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            problems.append(ChainProblem(expected_seq, f"events {expected_seq}..{event.seq - 1} are missing"))
        if event.prev_hash != expected_prev:
            problems.append(ChainProblem(event.seq, "link to the previous event is broken"))
        version = SHA256 if event.seq <= legacy else HMAC_SHA256
        if event.hash_version != version:
            # Unkeyed hashes are allowed only on the events older than keyed hashes.
            problems.append(ChainProblem(event.seq, "event carries an unkeyed hash where a keyed "
                                         "one is required" if event.hash_version == SHA256 else
                                         f"event's hash version {event.hash_version} is not "
                                         "the one its place in the chain requires"))
        elif not same(event.compute_hash(key), event.hash):
            problems.append(ChainProblem(event.seq, "event was altered after it was written"))
        expected_prev, expected_seq = event.hash, event.seq + 1
    return problems


