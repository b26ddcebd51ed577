import pytest

from tenants.models import ApiToken, Membership
from tenants.scoping import UnscopedQueryError


def test_unscoped_query_refused(tenant):
    with pytest.raises(UnscopedQueryError):
        list(Membership.objects.all())
    with pytest.raises(UnscopedQueryError):
        Membership.objects.filter(role="owner").first()


def test_for_tenant_sees_only_that_tenant(tenant, other_tenant):
    mine = Membership.objects.for_tenant(tenant)
    assert mine.count() == 1
    assert {m.tenant_id for m in mine} == {tenant.pk}
    assert Membership.unscoped.count() == 2


def test_scoped_create_sets_tenant(tenant, other_tenant):
    token, raw = ApiToken.issue(tenant=tenant, name="x", scopes=["read"])
    assert token.tenant == tenant
    assert not ApiToken.objects.for_tenant(other_tenant).filter(pk=token.pk).exists()
