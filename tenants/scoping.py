"""Tenant scoping by construction.

Every tenant-owned model inherits `TenantOwned`. Its `objects` manager, the default one,
refuses any query that has not been scoped with `.for_tenant(tenant)`; code that truly
needs all tenants (operators' admin, system tasks) must say so by using `Model.unscoped`.
Reverse relations are built from the default manager, so `user.memberships.all()` refuses
too: say `user.memberships.for_tenant(t)` or `user.memberships(manager="unscoped")`.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.db import models


class UnscopedQueryError(RuntimeError):
    pass


_default_manager_open = ContextVar("default_manager_open", default=False)


@contextmanager
def default_manager_unscoped():
    """Let the scoped default manager hand out unscoped querysets within the block.

    Only for Django machinery that reads `Model._default_manager` itself (model validation,
    admin formsets, dumpdata); application code says `Model.unscoped`."""
    token = _default_manager_open.set(True)
    try:
        yield
    finally:
        _default_manager_open.reset(token)


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
        if not _default_manager_open.get():
            raise UnscopedQueryError(
                f"{self.model.__name__}.objects must be scoped: use "
                f".for_tenant(tenant), or {self.model.__name__}.unscoped for system code"
            )
        return super().get_queryset()

    def for_tenant(self, tenant) -> TenantQuerySet:
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise UnscopedQueryError("for_tenant() needs a saved tenant")
        # Through get_queryset(), so a reverse relation's manager (`user.memberships`)
        # keeps its own filter.
        with default_manager_unscoped():
            qs = self.get_queryset()
        qs = qs.filter(tenant=tenant)
        qs._tenant = tenant
        return qs


class TenantOwned(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")

    unscoped = models.Manager()
    objects = TenantScopedManager()  # the default: see Meta

    class Meta:
        abstract = True
        # The default manager is what get_object_or_404, DRF, ModelChoiceField, the admin
        # and reverse relations use: scoped. Forward relations and deletion cascades use
        # `_base_manager`, a plain Manager. A concrete model's Meta inherits this one.
        default_manager_name = "objects"

    # Unique fields and constraints hold across clinics, and Django checks them through
    # the default manager: let those checks see every clinic's rows.
    def validate_unique(self, exclude=None):
        with default_manager_unscoped():
            super().validate_unique(exclude=exclude)

    def validate_constraints(self, exclude=None):
        with default_manager_unscoped():
            super().validate_constraints(exclude=exclude)
