"""The audit log is append-only: in the model, in PostgreSQL (trigger), and under concurrency."""

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from tenants.audit import (
    Actor,
    AppendOnlyError,
    AuditEvent,
    audit_record,
    audit_record_many,
    audit_verify,
)

TRIGGER = "tenants_auditevent_append_only"
postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'",
                                   reason="the trigger and row locking are PostgreSQL's")


def test_saving_an_existing_event_raises(tenant):
    event = AuditEvent.objects.for_tenant(tenant).order_by("seq").first()
    event.action = "tenant.deleted"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert AuditEvent.objects.for_tenant(tenant).get(pk=event.pk).action == "tenant.created"


def test_deleting_an_event_raises(tenant):
    event = AuditEvent.objects.for_tenant(tenant).order_by("seq").first()
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert AuditEvent.objects.for_tenant(tenant).filter(pk=event.pk).exists()


def test_chain_links_each_event_to_the_one_before(tenant):
    a = audit_record(tenant=tenant, actor=Actor.system(), action="x.one")
    b = audit_record(tenant=tenant, actor=Actor.system(), action="x.two")
    assert (b.seq, b.prev_hash) == (a.seq + 1, a.hash)
    assert audit_verify(tenant=tenant) == []


def test_a_batch_larger_than_one_statement_takes_is_written_whole_and_in_order(tenant):
    # SQLite takes at most 999 parameters in a statement: 150 events are three INSERTs there.
    events = [{"action": "study.created", "obj_type": "study", "obj_id": n, "detail": {"n": n, "modality": "CR"}}
              for n in range(150)]
    made = audit_record_many(tenant=tenant, actor=Actor(type="user", id="7", label="a@b.test", ip="10.0.0.1"),
                             events=events)
    stored = {e.pk: e for e in AuditEvent.objects.for_tenant(tenant).filter(action="study.created")}
    assert [stored[e.pk].seq for e in made] == [made[0].seq + n for n in range(150)]
    assert [stored[e.pk].detail for e in made] == [{"n": n, "modality": "CR"} for n in range(150)]
    assert {stored[e.pk].ip for e in made} == {"10.0.0.1"}
    assert audit_verify(tenant=tenant) == []


@postgres_only
@pytest.mark.parametrize("sql", [
    "UPDATE tenants_auditevent SET actor_label = 'someone else' WHERE tenant_id = %s",
    "DELETE FROM tenants_auditevent WHERE tenant_id = %s",
])
def test_postgres_refuses_update_and_delete_even_in_raw_sql(tenant, sql):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [tenant.pk])
    assert audit_verify(tenant=tenant) == []


@postgres_only
def test_postgres_refuses_queryset_update_and_delete(tenant):
    # QuerySet.update()/delete() skip the model's save()/delete(); the trigger does not.
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.for_tenant(tenant).update(action="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.for_tenant(tenant).delete()
    assert AuditEvent.objects.for_tenant(tenant).count() == 2


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_unbroken_chain(make_tenant):
    tenant = make_tenant("busy")
    per_thread, threads = 25, 4
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                audit_record(tenant=tenant, actor=Actor.system(f"writer {n}"), action="x.append",
                             detail={"writer": n, "i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    seqs = list(AuditEvent.objects.for_tenant(tenant).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 2 + threads * per_thread + 1))
    assert audit_verify(tenant=tenant) == []
