"""cloudpacs.compiled_query: a values_list look-up compiled once per connection, run with
each call's values, its rows as the ORM would give them (on SQLite and PostgreSQL)."""

import datetime

import pytest
from django.db import connection
from django.db.models import CharField, DateTimeField, IntegerField
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cloudpacs.compiled_query import (
    CompiledQuery,
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


def test_compiled_once_per_connection(tenant):
    builds = []

    def build():
        builds.append(1)
        return User.objects.filter(pk=Slot("pk", IntegerField())).values_list("email")

    query = CompiledQuery(build)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert query.rows(pk=0) == []
    assert len(builds) == 1 and len(queries.captured_queries) == 3


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
