"""cloudpacs.compiled_query: a values_list look-up compiled once per connection, run with
each call's values, its rows as the ORM would give them (on SQLite and PostgreSQL); inserts
and updates that write what the ORM would write."""

import datetime

import pytest
from django.db import connection
from django.db.models import CharField, DateTimeField, F, IntegerField
from django.db.models.functions import Concat
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cloudpacs.compiled_query import (
    CompiledInsert,
    CompiledQuery,
    CompiledUpdate,
    Slot,
    fields_in_order,
    models_from_row,
    related_fields,
)
from tenants.models import ApiToken, User

pytestmark = pytest.mark.django_db


def test_rows_match_the_orm_for_each_call_s_values(tenant, make_token):
    make_token(tenant, name="first"), make_token(tenant, name="second")
    first = ApiToken.unscoped.get(tenant=tenant, name="first")
    query = CompiledQuery(lambda: ApiToken.unscoped.filter(tenant_id=Slot("tenant", IntegerField()),
                                                           name=Slot("name", CharField()))
                          .values_list("pk", "scopes", "created_at", "revoked_at"))
    for name in ("first", "second", "nobody"):
        assert query.rows(tenant=tenant.pk, name=name) == list(
            ApiToken.unscoped.filter(tenant=tenant, name=name).values_list("pk", "scopes", "created_at", "revoked_at"))
    [(pk, scopes, created_at, revoked_at)] = query.rows(tenant=tenant.pk, name="first")
    # Converted as the ORM converts them: JSON decoded, an aware datetime, None kept.
    assert pk == first.pk and sorted(scopes) == ["read", "upload"] and revoked_at is None
    assert isinstance(created_at, datetime.datetime) and timezone.is_aware(created_at)


@pytest.mark.django_db(transaction=True)
def test_compiled_once_for_every_thread_s_connection(tenant):
    """Django makes a connection per thread, and the DICOM gateway a thread per association:
    a statement compiled per connection was compiled again for each association."""
    import threading

    from django.db import connections

    builds = []

    def build():
        builds.append(1)
        return User.objects.filter(pk=Slot("pk", IntegerField())).values_list("email")

    query = CompiledQuery(build)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert query.rows(pk=0) == []
    assert len(builds) == 1 and len(queries.captured_queries) == 3

    def in_a_thread():
        assert query.rows(pk=0) == []
        connections["default"].close()

    for _ in range(2):
        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
    assert len(builds) == 1


def test_values_are_prepared_by_the_slot_s_field(make_member, tenant):
    user = make_member(tenant)
    query = CompiledQuery(lambda: User.objects.filter(pk=Slot("pk", IntegerField()),
                                                      date_joined__lt=Slot("before", DateTimeField()))
                          .values_list(*fields_in_order(User, {"id", "email"})))
    later = timezone.now() + datetime.timedelta(seconds=5)
    assert query.rows(pk=str(user.pk), before=later) == [(user.pk, user.email)]  # "7" as the ORM takes it
    assert query.rows(pk=user.pk, before=user.date_joined) == []


def test_a_missing_value_is_an_error_not_a_null(tenant):
    query = CompiledQuery(lambda: User.objects.filter(email=Slot("email", CharField())).values_list("pk"))
    with pytest.raises(KeyError):
        query.rows()


def test_fields_in_order_follows_the_model():
    assert fields_in_order(User, {"email", "id", "password"}) == ["id", "password", "email"]
    assert fields_in_order(User)[0] == "id" and len(fields_in_order(User)) == len(User._meta.concrete_fields)


def test_models_from_row_with_a_related_model_and_extra_values(tenant, make_member):
    from tenants.models import Tenant

    user = make_member(tenant)
    user_fields = fields_in_order(User, {"id", "email"})
    query = CompiledQuery(lambda: User.objects.filter(pk=Slot("pk", IntegerField()))
                          .values_list(*user_fields, *related_fields("memberships__tenant", Tenant), "is_active"))
    got_user, got_tenant, active = models_from_row(query.rows(pk=user.pk)[0], (User, user_fields),
                                                   (Tenant, fields_in_order(Tenant)))
    assert (got_user.pk, got_user.email, active) == (user.pk, user.email, True)
    assert got_user.get_deferred_fields() >= {"password", "full_name"}
    assert got_tenant == tenant and got_tenant.slug == tenant.slug and not got_tenant.get_deferred_fields()
    assert not got_user._state.adding


def test_a_finished_thread_s_connection_is_let_go(tenant):
    """Django gives each thread its own connection; the web server starts threads beyond the
    ones it keeps when more requests run at once. What a query compiled for a thread's
    connection must not keep that connection (and its database session) alive after it."""
    import gc
    import threading
    import weakref

    from django.db import connections

    query = CompiledQuery(lambda: User.objects.filter(pk=Slot("pk", IntegerField())).values_list("email"))
    gone = []

    def run():
        query.rows(pk=0)
        gone.append(weakref.ref(connections["default"]))
        connections["default"].close()

    for _ in range(3):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    gc.collect()
    assert len(gone) == 3 and all(ref() is None for ref in gone)


def test_fields_in_order_refuses_a_name_that_is_no_field():
    with pytest.raises(ValueError, match="tenant"):
        fields_in_order(User, {"id", "tenant"})


def _outbox_rows(pks):
    from archive.outbox.models import Outbox

    fields = [f.attname for f in Outbox._meta.concrete_fields if not f.primary_key]
    return [tuple(row) for row in Outbox.unscoped.filter(pk__in=pks).order_by("pk").values_list(*fields)]


def test_insert_writes_what_bulk_create_writes(tenant):
    """JSON, an aware datetime, a null, a foreign key given as an object: each prepared by its
    field as bulk_create prepares it, the new keys set on the objects."""
    from archive.outbox.models import Outbox

    when = timezone.now() - datetime.timedelta(days=3)

    def made():
        return [Outbox(tenant=tenant, kind="archive", subject_id=n, payload={"n": n, "ü": [1, None]},
                       created_at=when, next_attempt_at=when) for n in range(3)]

    by_orm, compiled = Outbox.unscoped.bulk_create(made()), CompiledInsert(Outbox).insert(made())
    assert all(o.pk and not o._state.adding for o in compiled)
    assert len({o.pk for o in by_orm + compiled}) == 6
    assert _outbox_rows([o.pk for o in compiled]) == _outbox_rows([o.pk for o in by_orm])
    assert Outbox.unscoped.get(pk=compiled[1].pk).payload == {"n": 1, "ü": [1, None]}


def _tricky_outbox_rows(tenant, n, when):
    from archive.outbox.models import Outbox

    texts = ["50% off", "%s", "%(name)s", "it's", 'quote " and \\ back', "ü€😀", "", "a\nb", "%%"]
    return [Outbox(tenant=tenant, kind=texts[i % len(texts)], subject_id=i if i % 3 else None,
                   payload={"t": texts[i % len(texts)], "n": [i, None, 1.5]}, created_at=when, next_attempt_at=when)
            for i in range(n)]


def test_a_many_row_insert_is_not_split_again_by_psycopg(tenant, monkeypatch):
    """psycopg splits a statement's text at its placeholders on every run, unless it has at
    most 50 parameters; an insert of many rows (a body of one-image studies) had its text
    split on every body. Written by the compiled insert, it is not, and it writes what
    bulk_create writes: "%" and quotes inside values, nulls, JSON, unicode."""
    if connection.vendor != "postgresql":
        pytest.skip("psycopg's client-side binding: PostgreSQL")
    from psycopg import _queries

    from archive.outbox.models import Outbox

    splits = []
    real = _queries._split_query
    monkeypatch.setattr(_queries, "_split_query", lambda *a, **k: splits.append(1) or real(*a, **k))
    insert = CompiledInsert(Outbox)
    assert len(insert.fields) * 40 > 50
    when = timezone.now() - datetime.timedelta(days=3)
    compiled = insert.insert(_tricky_outbox_rows(tenant, 40, when))
    compiled += insert.insert(_tricky_outbox_rows(tenant, 40, when))
    assert splits == []
    _queries._query2pg_client_nocache(b"SELECT %s", "utf-8")
    assert splits == [1]  # the spy sees psycopg's splits
    by_orm = Outbox.unscoped.bulk_create(_tricky_outbox_rows(tenant, 40, when) + _tricky_outbox_rows(tenant, 40, when))
    assert all(o.pk and not o._state.adding for o in compiled)
    assert _outbox_rows([o.pk for o in compiled]) == _outbox_rows([o.pk for o in by_orm])
    assert Outbox.unscoped.get(pk=compiled[1].pk).payload == {"t": "%s", "n": [1, None, 1.5]}


def test_server_side_binding_inserts_through_psycopg(tenant, monkeypatch):
    """With server-side binding (a DATABASES option) psycopg sends the values apart from
    the text: nothing is written into it here, and the insert writes the same rows."""
    if connection.vendor != "postgresql":
        pytest.skip("psycopg's binding: PostgreSQL")
    import psycopg

    from archive.outbox.models import Outbox
    from cloudpacs.compiled_query import binds_on_client

    connection.ensure_connection()
    assert binds_on_client(connection)  # Django's default
    monkeypatch.setattr(connection.connection, "cursor_factory", psycopg.Cursor)
    assert not binds_on_client(connection)
    when = timezone.now() - datetime.timedelta(days=3)
    compiled = CompiledInsert(Outbox).insert(_tricky_outbox_rows(tenant, 40, when))
    by_orm = Outbox.unscoped.bulk_create(_tricky_outbox_rows(tenant, 40, when))
    assert _outbox_rows([o.pk for o in compiled]) == _outbox_rows([o.pk for o in by_orm])


def test_insert_splits_what_one_statement_cannot_take(tenant):
    """More rows than the backend takes parameters for in one statement go in several, and
    the statements kept per row count stay bounded."""
    from archive.outbox.models import Outbox

    insert = CompiledInsert(Outbox)
    size = insert.rows_per_statement(connection, [None] * 100_000)
    assert size * len(insert.fields) <= 65535  # PostgreSQL's limit of parameters per statement
    rows = [Outbox(tenant=tenant, kind="archive", subject_id=n) for n in range(size + 5)]
    with CaptureQueriesContext(connection) as queries:
        insert.insert(rows)
    assert len(queries.captured_queries) == 2
    assert sorted(Outbox.unscoped.filter(tenant=tenant).values_list("subject_id", flat=True)) == list(range(size + 5))
    for n in range(1, CompiledInsert.SIZES_KEPT + 10):
        insert.insert([Outbox(tenant=tenant, kind="archive", subject_id=n) for _ in range(n % 7 + 1)])
    assert len(insert._statements) <= CompiledInsert.SIZES_KEPT


def test_update_adds_each_call_s_values_compiled_once(tenant, make_token):
    make_token(tenant, name="first"), make_token(tenant, name="second")
    builds = []
    later = timezone.now() + datetime.timedelta(days=1)

    def build():
        builds.append(1)
        return (ApiToken.unscoped.filter(tenant_id=Slot("tenant", IntegerField()), name=Slot("name", CharField())),
                {"name": Concat(F("name"), Slot("suffix", CharField())), "revoked_at": Slot("at", DateTimeField())})

    update = CompiledUpdate(build)
    assert update.run(tenant=tenant.pk, name="first", suffix="-a", at=later) == 1
    assert update.run(tenant=tenant.pk, name="first-a", suffix="-b", at=later) == 1
    assert update.run(tenant=tenant.pk, name="nobody", suffix="-c", at=later) == 0
    assert len(builds) == 1
    assert ApiToken.unscoped.get(tenant=tenant, name="first-a-b").revoked_at == later
    assert ApiToken.unscoped.get(tenant=tenant, name="second").revoked_at is None


def test_update_counts_as_the_orm_does(tenant):
    from archive.outbox.models import Outbox

    row = Outbox.unscoped.create(tenant=tenant, kind="archive", attempts=2)
    grow = CompiledUpdate(lambda: (Outbox.unscoped.filter(pk=Slot("pk", IntegerField())),
                                   {"attempts": F("attempts") + Slot("more", IntegerField())}))
    grow.run(pk=row.pk, more=3)
    grow.run(pk=str(row.pk), more="4")  # prepared by the field, as the ORM takes them
    row.refresh_from_db()
    assert row.attempts == 9


def test_insert_new_gives_back_the_rows_it_made_with_their_keys(tenant):
    """Ingest's patients: the rows the insert made come back keyed from it (no read after);
    a row there already is left as it is and comes back without a key, for the caller to
    read. More rows than one statement takes (SQLite: 999 parameters) go in whole."""
    from archive.models import Patient

    there = Patient.unscoped.create(tenant=tenant, patient_id="P0001", patient_name="First^Name")
    wanted = [Patient(tenant=tenant, patient_id=f"P{n:04d}", patient_name=f"Name^{n}") for n in range(300)]
    with CaptureQueriesContext(connection) as queries:
        made = CompiledInsert(Patient, ignore_conflicts=True).insert_new(wanted, by=("patient_id", "issuer_of_patient_id"))
    assert not any("SELECT" in q["sql"].upper().split("RETURNING")[0] for q in queries)
    assert [p.patient_id for p in made] == [f"P{n:04d}" for n in range(300) if n != 1]
    stored = dict(Patient.unscoped.filter(tenant=tenant).values_list("patient_id", "pk"))
    assert {p.patient_id: p.pk for p in made} == {k: v for k, v in stored.items() if k != "P0001"}
    assert all(not p._state.adding for p in made)
    assert wanted[1].pk is None and Patient.unscoped.get(pk=there.pk).patient_name == "First^Name"


def test_insert_on_conflict_as_bulk_create(tenant):
    """ignore_conflicts keeps the row there (and sets no key); update_conflicts updates the
    named fields of the row there and hands back its key."""
    from archive.models import Patient, Study

    patient = Patient.unscoped.create(tenant=tenant, patient_id="P1", patient_name="First^Name")
    ignoring = CompiledInsert(Patient, ignore_conflicts=True)
    again = [Patient(tenant=tenant, patient_id="P1", patient_name="Other^Name"),
             Patient(tenant=tenant, patient_id="P2", patient_name="New^One")]
    ignoring.insert(again)
    assert [p.pk for p in again] == [None, None]
    assert dict(Patient.unscoped.filter(tenant=tenant).values_list("patient_id", "patient_name")) == {
        "P1": "First^Name", "P2": "New^One"}

    study = Study.unscoped.create(tenant=tenant, patient=patient, study_instance_uid="1.2.3", study_description="a")
    upsert = CompiledInsert(Study, update_conflicts=(["tenant", "study_instance_uid"], ["study_description"]))
    [row] = upsert.insert([Study(tenant=tenant, patient=patient, study_instance_uid="1.2.3", study_description="b",
                                 accession_number="changed")])
    assert row.pk == study.pk
    study.refresh_from_db()
    assert (study.study_description, study.accession_number) == ("b", "")


@pytest.mark.django_db(transaction=True)
def test_a_locking_query_refuses_to_run_outside_a_transaction_every_time(tenant):
    """Django checks select_for_update outside a transaction when it compiles, and a
    compiled query compiles once: the check is made on every run."""
    from django.db import transaction
    from django.db.transaction import TransactionManagementError

    query = CompiledQuery(lambda: User.objects.select_for_update().filter(pk=Slot("pk", IntegerField()))
                          .values_list("email"))
    with transaction.atomic():
        assert query.rows(pk=0) == []
    with pytest.raises(TransactionManagementError):
        query.rows(pk=0)


def test_a_failed_write_marks_the_transaction_for_rollback(tenant):
    """As bulk_create and update do: code that catches the error cannot commit half a change."""
    from django.db import IntegrityError, transaction

    from archive.models import Patient

    insert = CompiledInsert(Patient)
    insert.insert([Patient(tenant=tenant, patient_id="P1")])
    rename = CompiledUpdate(lambda: (Patient.unscoped.filter(tenant_id=Slot("tenant", IntegerField())),
                                     {"patient_id": Slot("to", CharField())}))
    Patient.unscoped.create(tenant=tenant, patient_id="P2")
    for write in (lambda: insert.insert([Patient(tenant=tenant, patient_id="P1")]),
                  lambda: rename.run(tenant=tenant.pk, to="P1")):
        with transaction.atomic():
            with pytest.raises(IntegrityError):
                write()
            assert transaction.get_connection().needs_rollback  # the block is rolled back as it ends


def test_an_insert_of_a_row_with_a_key_is_refused(tenant):
    from archive.models import Patient

    with pytest.raises(ValueError, match="keys"):
        CompiledInsert(Patient).insert([Patient(pk=10_000, tenant=tenant, patient_id="P9")])
