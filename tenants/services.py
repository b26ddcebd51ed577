"""Writes to clinics, members and credentials. Views, commands and tests call these."""

from django.db import transaction

from tenants import roles
from tenants.audit import Actor, audit_record
from tenants.models import ApiToken, Membership, Tenant, User, default_ae_title


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner_email: str, owner_password: str | None,
                  actor: Actor | None = None) -> tuple[Tenant, bool]:
    """Create a clinic with its owner. An existing slug is left as it is: returns (tenant, False)."""
    existing = Tenant.objects.filter(slug=slug).first()
    if existing is not None:
        return existing, False
    tenant = Tenant.objects.create(slug=slug, name=name, ae_title=default_ae_title(slug))
    user = User.objects.filter(email__iexact=owner_email).first()
    if user is None:
        user = User.objects.create_user(owner_email, owner_password)
    Membership.objects.for_tenant(tenant).create(user=user, role=roles.OWNER)
    actor = actor or Actor.system("create_tenant")
    audit_record(tenant=tenant, actor=actor, action="tenant.created", obj_type="tenant", obj_id=tenant.pk,
                 detail={"slug": slug})
    audit_record(tenant=tenant, actor=actor, action="member.added", obj_type="user", obj_id=user.pk,
                 detail={"email": user.email, "role": roles.OWNER})
    return tenant, True


@transaction.atomic
def api_token_create(*, tenant: Tenant, name: str, scopes: list[str], actor: Actor,
                     created_by: User | None = None) -> tuple[ApiToken, str]:
    token, raw = ApiToken.issue(tenant=tenant, name=name, scopes=scopes, created_by=created_by)
    audit_record(tenant=tenant, actor=actor, action="token.created", obj_type="api_token", obj_id=token.pk,
                 detail={"name": name, "scopes": token.scopes})
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: Actor) -> None:
    from django.utils import timezone

    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(tenant=token.tenant, actor=actor, action="token.revoked", obj_type="api_token",
                     obj_id=token.pk, detail={"name": token.name})
