"""A read's audit event, written outside any transaction, costs PostgreSQL two round
trips: the chain's lock and end, then the INSERT sent with its COMMIT. It is still
committed, linked and verifiable when audit_record returns, and a failed insert still
leaves nothing behind. Inside a caller's transaction (an upload's events), the lock and
the chain's end cost one round trip, the INSERT another."""

import psycopg
import pytest
from django.db import DataError, OperationalError, connection, connections, transaction
from psycopg.pq import TransactionStatus

from tenants import audit
from tenants.audit import Actor, AuditEvent, AuditKeyError, audit_record, audit_verify
from tenants.models import Tenant
from tests.round_trips import counting_round_trips

pytestmark = [
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="pipelines are PostgreSQL's"),
    pytest.mark.django_db(transaction=True),  # autocommit, as a request runs
]

READER = Actor(type="user", id="7", label="reader@clinic.test", ip="10.0.0.9")


def test_a_read_event_costs_two_round_trips_and_is_committed_when_it_returns(tenant):
    audit_record(tenant=tenant, actor=READER, action="dicomweb.search")  # the key check is made once a process
    with counting_round_trips(connection) as trips:
        event = audit_record(tenant=tenant, actor=READER, action="dicomweb.search", obj_type="dicomweb",
                             detail={"level": "study", "results": 3})
    assert trips.count == 2, "\n".join(trips.messages)
    assert event.pk is not None and not event._state.adding
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    # Committed: another connection sees it, with what the chain needs.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT seq, hash, action FROM tenants_auditevent WHERE id = %s", [event.pk])
            assert cursor.fetchone() == (event.seq, event.hash, "dicomweb.search")
    finally:
        other.close()
    assert audit_verify(tenant=tenant) == []


def test_an_insert_that_fails_raises_and_leaves_no_event_and_a_usable_connection(tenant):
    before = AuditEvent.objects.for_tenant(tenant).count()
    with pytest.raises(DataError):
        audit_record(tenant=tenant, actor=READER, action="x" * 65)  # longer than the column
    assert AuditEvent.objects.for_tenant(tenant).count() == before
    assert not connection.in_atomic_block and connection.get_autocommit()
    after = audit_record(tenant=tenant, actor=READER, action="dicomweb.search")
    assert after.seq == before + 1
    assert audit_verify(tenant=tenant) == []


def test_inside_a_callers_transaction_the_lock_and_the_chain_end_cost_one_round_trip(tenant):
    """As an upload writes its events, inside the transaction that indexes it."""
    audit_record(tenant=tenant, actor=READER, action="dicomweb.stow")  # the key check is made once a process
    with transaction.atomic():
        assert Tenant.objects.filter(pk=tenant.pk).exists()  # the transaction has begun
        with counting_round_trips(connection) as trips:
            event = audit_record(tenant=tenant, actor=READER, action="dicomweb.stow", detail={"stored": 1})
    assert trips.count == 2, "\n".join(trips.messages)  # the lock and the end; the INSERT
    assert AuditEvent.objects.for_tenant(tenant).filter(pk=event.pk).exists()
    assert audit_verify(tenant=tenant) == []


def _another_connection_can_lock(tenant) -> bool:
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                cursor.execute("SELECT 1 FROM tenants_tenant WHERE id = %s FOR UPDATE NOWAIT", [tenant.pk])
                return True
            except OperationalError as error:
                if isinstance(error.__cause__, psycopg.errors.LockNotAvailable):
                    return False
                raise
            finally:
                cursor.execute("ROLLBACK")
    finally:
        other.close()


def test_the_clinics_chain_stays_locked_from_reading_its_end_to_the_commit(tenant, monkeypatch):
    """Between the two round trips (the events are made from the end just read) no other
    writer can take the chain: the lock is held in the transaction the first one began."""
    assert _another_connection_can_lock(tenant)
    seen = []
    chained = audit._chained

    def chained_while_checking(*args):
        seen.append(_another_connection_can_lock(tenant))
        return chained(*args)

    monkeypatch.setattr(audit, "_chained", chained_while_checking)
    audit_record(tenant=tenant, actor=READER, action="dicomweb.search")
    assert seen == [False]
    assert _another_connection_can_lock(tenant)  # let go at the COMMIT


def test_a_failure_between_the_round_trips_rolls_back_and_lets_the_chain_go(tenant, monkeypatch):
    before = AuditEvent.objects.for_tenant(tenant).count()

    def refuse(*args):
        raise AuditKeyError("the audit log's key is not the one the chain was written with")

    monkeypatch.setattr(audit, "_key_checked", refuse)
    with pytest.raises(AuditKeyError):
        audit_record(tenant=tenant, actor=READER, action="dicomweb.search")
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    assert _another_connection_can_lock(tenant)
    monkeypatch.undo()
    assert AuditEvent.objects.for_tenant(tenant).count() == before
    assert audit_record(tenant=tenant, actor=READER, action="dicomweb.search").seq == before + 1
    assert audit_verify(tenant=tenant) == []
