"""The scoped manager is every tenant-owned model's default, so whatever Django builds from
the default manager (get_object_or_404, form fields, reverse relations) refuses to read
across clinics unless the code says so; the operators' admin and dumpdata say so."""

import json
from io import StringIO

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import models
from django.db.models import Prefetch
from django.forms import modelform_factory
from django.shortcuts import get_object_or_404
from django.urls import reverse

from archive.gateway.models import DicomPeer
from archive.models import Series
from archive.storage.models import FixityFinding, FixityRun
from tenants import roles
from tenants.models import ApiToken, Membership, User
from tenants.scoping import TenantOwned, TenantScopedManager, UnscopedQueryError
from tests.tenants.test_admin import operator, ops  # noqa: F401

TENANT_OWNED = [m for m in apps.get_models() if issubclass(m, TenantOwned)]


def test_every_tenant_owned_model_defaults_to_the_scoped_manager():
    assert len(TENANT_OWNED) >= 19
    for model in TENANT_OWNED:
        label = model._meta.label
        # Set on the model's own Meta (inherited from TenantOwned.Meta), not found by chance.
        assert model._meta.default_manager_name == "objects", label
        assert type(model._default_manager) is TenantScopedManager, label
        assert model._default_manager is model.objects, label
        # Forward relations and deletion cascades read through a plain manager.
        assert type(model._base_manager) is models.Manager, label
        assert type(model.unscoped) is models.Manager, label


def test_get_object_or_404_without_scoping_raises(tenant, owner):
    row = Membership.objects.for_tenant(tenant).get(user=owner)
    with pytest.raises(UnscopedQueryError):
        get_object_or_404(Membership, pk=row.pk)
    assert get_object_or_404(Membership.objects.for_tenant(tenant), pk=row.pk) == row
    with pytest.raises(UnscopedQueryError):  # a ModelChoiceField of the default manager
        modelform_factory(Series, fields=["study"])


def test_relations_under_the_scoped_default(tenant, other_tenant, make_member):
    person = make_member(tenant, roles.VIEWER)
    make_member(other_tenant, roles.VIEWER, email=person.email)
    with pytest.raises(UnscopedQueryError):
        list(person.memberships.all())
    with pytest.raises(UnscopedQueryError):
        list(User.objects.filter(pk=person.pk).prefetch_related("memberships"))
    # Scoped, the relation keeps its own filter: this person's row only, not the owner's.
    assert [m.role for m in person.memberships.for_tenant(tenant)] == [roles.VIEWER]
    assert {m.tenant_id for m in person.memberships(manager="unscoped").all()} == {tenant.pk, other_tenant.pk}
    prefetched = User.objects.prefetch_related(
        Prefetch("memberships", queryset=Membership.unscoped.all())).get(pk=person.pk)
    assert len(prefetched.memberships.all()) == 2
    # Forward relations and cascades do not go through the default manager.
    assert Membership.unscoped.filter(user=person).first().user == person
    person.delete()
    assert not Membership.unscoped.filter(user_id=person.pk).exists()


def test_model_validation_sees_every_clinic(tenant, other_tenant):
    token, _ = ApiToken.issue(tenant=tenant, name="a", scopes=["read"])
    twin = ApiToken(tenant=other_tenant, name="b", token_hash=token.token_hash, token_hint="x", scopes=["read"])
    with pytest.raises(ValidationError) as refused:
        twin.full_clean()
    assert "token_hash" in refused.value.message_dict
    DicomPeer.objects.for_tenant(tenant).create(ae_title="CT1")
    with pytest.raises(ValidationError):
        DicomPeer(tenant=tenant, ae_title="CT1").full_clean()
    DicomPeer(tenant=other_tenant, ae_title="CT1").full_clean()


def test_operator_admin_lists_every_clinic(ops, tenant, other_tenant, make_member):
    for clinic in (tenant, other_tenant):
        ApiToken.issue(tenant=clinic, name=f"token of {clinic.slug}", scopes=["read"])
    changelist = ops.get(reverse("admin:tenants_apitoken_changelist"))
    assert changelist.status_code == 200
    assert "token of acme" in changelist.content.decode() and "token of other" in changelist.content.decode()
    member = make_member(other_tenant, roles.RADIOLOGIST)
    memberships = ops.get(reverse("admin:tenants_membership_changelist"))
    assert memberships.status_code == 200 and member.email in memberships.content.decode()

    # A change form validates through the default manager too.
    token = ApiToken.unscoped.get(name="token of other")
    url = reverse("admin:tenants_apitoken_change", args=[token.pk])
    assert ops.get(url).status_code == 200
    saved = ops.post(url, {"name": "renamed", "tenant": other_tenant.pk, "scopes": '["read"]',
                           "created_by": "", "revoked_at_0": "", "revoked_at_1": ""})
    assert saved.status_code == 302, saved.context["errors"] if saved.context else saved
    assert ApiToken.objects.for_tenant(other_tenant).get(pk=token.pk).name == "renamed"

    # An inline of tenant-owned rows of both clinics.
    run = FixityRun.objects.create()
    for clinic in (tenant, other_tenant):
        FixityFinding.unscoped.create(run=run, tenant=clinic, storage_key=f"{clinic.pk}/k", region="primary",
                                      problem=FixityFinding.MISSING, action=FixityFinding.UNREPAIRED)
    page = ops.get(reverse("admin:storage_fixityrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert "Acme Clinic" in page.content.decode() and "Other Clinic" in page.content.decode()


def test_dumpdata_dumps_every_clinic(tenant, other_tenant):
    out = StringIO()
    call_command("dumpdata", "tenants.membership", stdout=out)
    assert {row["fields"]["tenant"] for row in json.loads(out.getvalue())} == {tenant.pk, other_tenant.pk}
