"""Tenant scoping by construction.

Every tenant-owned model inherits `TenantOwned`. Its `objects` manager refuses any
query that has not been scoped with `.for_tenant(tenant)`; code that truly needs all
tenants (operators' admin, system tasks) must say so by using `Model.unscoped`.
"""

from django.db import models


class UnscopedQueryError(RuntimeError):
    pass


class TenantQuerySet(models.QuerySet):
    _tenant = None

    def _clone(self):
        clone = super()._clone()
        clone._tenant = self._tenant
        return clone

    def create(self, **kwargs):
        if self._tenant is not None:
            kwargs.setdefault("tenant", self._tenant)
            if kwargs["tenant"] != self._tenant:
                raise UnscopedQueryError("create() for another tenant than the queryset's")
        return super().create(**kwargs)

    def get_or_create(self, defaults=None, **kwargs):
        if self._tenant is not None:
            kwargs.setdefault("tenant", self._tenant)
        return super().get_or_create(defaults=defaults, **kwargs)


class TenantScopedManager(models.Manager.from_queryset(TenantQuerySet)):
    """`Model.objects.for_tenant(t)` is the only way in; anything else raises."""

    def get_queryset(self):
        raise UnscopedQueryError(
            f"{self.model.__name__}.objects must be scoped: use "
            f".for_tenant(tenant), or {self.model.__name__}.unscoped for system code"
        )

    def for_tenant(self, tenant) -> TenantQuerySet:
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise UnscopedQueryError("for_tenant() needs a saved tenant")
        qs = TenantQuerySet(self.model, using=self._db).filter(tenant=tenant)
        qs._tenant = tenant
        return qs


class TenantOwned(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")

    # Declared first, so it is the default manager: admin, dumpdata and related-object
    # access use it. Application code uses `objects.for_tenant(...)`.
    unscoped = models.Manager()
    objects = TenantScopedManager()

    class Meta:
        abstract = True
