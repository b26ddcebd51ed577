"""Writes to clinics, members and credentials. Views, commands and tests call these."""

import logging
import smtplib
from uuid import UUID

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from cloudpacs.mail import secret_links_mailable
from tenants import roles
from tenants.audit import Actor, AuditEvent, audit_record
from tenants.models import ApiToken, Invitation, Membership, Tenant, User, unique_ae_title

logger = logging.getLogger("cloudpacs.tenants")


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner_email: str, owner_password: str | None,
                  actor: Actor | None = None, uuid: UUID | None = None) -> tuple[Tenant, bool]:
    """Create a clinic with its owner. An existing slug is left as it is: returns (tenant, False).

    `uuid` re-creates a clinic with its durable identity (before a restore from a region)."""
    existing = Tenant.objects.filter(slug=slug).first()
    if existing is not None:
        return existing, False
    ident = {"uuid": uuid} if uuid else {}
    tenant = Tenant.objects.create(slug=slug, name=name, ae_title=unique_ae_title(slug), **ident)
    user = User.objects.filter(email__iexact=owner_email).first()
    if user is None:
        user = User.objects.create_user(owner_email, owner_password)
    Membership.objects.for_tenant(tenant).create(user=user, role=roles.OWNER)
    actor = actor or Actor.system("create_tenant")
    audit_record(tenant=tenant, actor=actor, action="tenant.created", obj_type="tenant", obj_id=tenant.pk,
                 detail={"slug": slug, "uuid": str(tenant.uuid)})
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
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(tenant=token.tenant, actor=actor, action="token.revoked", obj_type="api_token",
                     obj_id=token.pk, detail={"name": token.name})


# ---- invitations and members -------------------------------------------------------------
# Every change to who belongs to a clinic locks the clinic row first, so two admins acting at
# once cannot, say, both demote one of the last two owners.


class MemberChangeRefused(Exception):
    """A member or invitation change the rules forbid; the message is for the person."""


class InvitationUnusable(Exception):
    """An invitation link that cannot be used; `reason` picks the page to show."""

    MESSAGES = {
        "not_found": "This invitation link is not valid. Check that you copied all of it.",
        "expired": "This invitation has expired. Ask the clinic for a new one.",
        "revoked": "This invitation was withdrawn by the clinic.",
        "accepted": "This invitation has already been used.",
        "wrong_email": "This invitation was sent to another email address than the one you are "
                       "logged in with. Log out, then open the link again.",
        "already_member": "You are already a member of this clinic.",
        "account_exists": "An account with this email address exists: log in to accept.",
    }

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(self.MESSAGES[reason])


def _lock_tenant(tenant: Tenant) -> None:
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()


def _check_grantable(by_role: str | None, *roles_touched: str) -> None:
    grantable = roles.GRANTABLE_ROLES.get(by_role or "", [])
    for role in roles_touched:
        if role not in grantable:
            label = dict(roles.ROLE_CHOICES).get(role, role)
            raise MemberChangeRefused(f"Your role cannot grant or change the role {label}.")


def invitation_unusable_reason(invitation: Invitation | None) -> str | None:
    if invitation is None:
        return "not_found"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.expires_at <= timezone.now():
        return "expired"
    return None


def invitation_create(*, tenant: Tenant, email: str, role: str, by_role: str | None,
                      invited_by: User | None, actor: Actor) -> tuple[Invitation, str]:
    """Invite `email` to join with `role` and email them the link. Returns the raw token,
    which the inviter's page shows once beside the outcome of the email.

    An email that cannot be sent (no mail server configured, or it refused) leaves the
    invitation standing, with `emailed_at` unset and the failure in the audit log: the
    admin copies the link to the person another way."""
    email = email.strip().lower()
    with transaction.atomic():
        _check_grantable(by_role, role)
        _lock_tenant(tenant)
        if Membership.objects.for_tenant(tenant).filter(user__email__iexact=email).exists():
            raise MemberChangeRefused(f"{email} is already a member of this clinic.")
        # A new invitation replaces any pending one, so only the latest link works.
        for old in Invitation.objects.for_tenant(tenant).filter(email=email, accepted_at=None, revoked_at=None):
            _invitation_revoke(old, actor, reason="replaced")
        invitation, raw = Invitation.issue(tenant=tenant, email=email, role=role, invited_by=invited_by)
        audit_record(tenant=tenant, actor=actor, action="member.invited", obj_type="invitation",
                     obj_id=invitation.pk, detail={"email": email, "role": role})
    try:
        if not secret_links_mailable():
            raise ConnectionRefusedError("EMAIL_BACKEND is the console backend")
        _invitation_send(invitation=invitation, raw=raw, inviter=invited_by)
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("invitation id=%s not emailed: %s", invitation.pk, type(exc).__name__)
        audit_record(tenant=tenant, actor=actor, action="member.invitation_not_emailed", obj_type="invitation",
                     obj_id=invitation.pk, detail={"error": type(exc).__name__})
    else:
        invitation.emailed_at = timezone.now()
        Invitation.objects.for_tenant(tenant).filter(pk=invitation.pk).update(emailed_at=invitation.emailed_at)
    return invitation, raw


def invitation_url(raw: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("invitation_accept", args=[raw])


def _invitation_send(*, invitation: Invitation, raw: str, inviter: User | None) -> None:
    who = inviter.get_full_name() if inviter is not None else "A clinic administrator"
    role = dict(roles.ROLE_CHOICES)[invitation.role]
    body = (
        f"{who} invites you to join {invitation.tenant.name} on CloudPACS as {role}.\n\n"
        f"Open this link to accept:\n{invitation_url(raw)}\n\n"
        f"The link works once and expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
        "If you did not expect this email, ignore it.\n"
    )
    send_mail(f"Join {invitation.tenant.name} on CloudPACS", body, None, [invitation.email],
              fail_silently=False)


def _invitation_revoke(invitation: Invitation, actor: Actor, reason: str = "") -> None:
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    detail = {"email": invitation.email, "role": invitation.role}
    if reason:
        detail["reason"] = reason
    audit_record(tenant=invitation.tenant, actor=actor, action="member.invitation_revoked",
                 obj_type="invitation", obj_id=invitation.pk, detail=detail)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor) -> bool:
    """Withdraw a pending invitation. Returns False if it was no longer pending."""
    _lock_tenant(invitation.tenant)
    invitation = Invitation.objects.for_tenant(invitation.tenant).get(pk=invitation.pk)
    if invitation_unusable_reason(invitation) in ("revoked", "accepted"):
        return False
    _invitation_revoke(invitation, actor)
    return True


def _invitation_join(invitation: Invitation, user: User, actor: Actor) -> Membership:
    tenant = invitation.tenant
    _lock_tenant(tenant)
    # Re-read under the lock: two tabs accepting the same link must not both succeed.
    invitation = Invitation.objects.for_tenant(tenant).get(pk=invitation.pk)
    reason = invitation_unusable_reason(invitation)
    if reason is not None:
        raise InvitationUnusable(reason)
    if user.email.lower() != invitation.email.lower():
        raise InvitationUnusable("wrong_email")
    if Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise InvitationUnusable("already_member")
    membership = Membership.objects.for_tenant(tenant).create(user=user, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_record(tenant=tenant, actor=actor, action="member.joined", obj_type="user", obj_id=user.pk,
                 detail={"email": user.email, "role": invitation.role, "invitation": invitation.pk})
    return membership


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User, actor: Actor) -> Membership:
    """An existing, logged-in user whose email matches joins the clinic."""
    return _invitation_join(invitation, user, actor)


@transaction.atomic
def invitation_accept_new_user(*, invitation: Invitation, full_name: str, password: str,
                               actor: Actor) -> Membership:
    """A person without an account creates one (with the invited email) and joins."""
    reason = invitation_unusable_reason(invitation)
    if reason is not None:
        raise InvitationUnusable(reason)
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise InvitationUnusable("account_exists")
    user = User.objects.create_user(invitation.email, password, full_name=full_name)
    actor = Actor(AuditEvent.USER, str(user.pk), user.email, actor.ip, actor.user_agent)
    return _invitation_join(invitation, user, actor)


def _owner_count(tenant: Tenant) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=roles.OWNER).count()


@transaction.atomic
def member_role_change(*, membership: Membership, role: str, by_role: str | None,
                       actor: Actor) -> bool:
    """Give a member another role. Returns False if it was already their role."""
    tenant = membership.tenant
    if role not in dict(roles.ROLE_CHOICES):
        raise MemberChangeRefused("Unknown role.")
    _lock_tenant(tenant)
    membership = Membership.objects.for_tenant(tenant).select_related("user").get(pk=membership.pk)
    if membership.role == role:
        return False
    _check_grantable(by_role, membership.role, role)
    if membership.role == roles.OWNER and _owner_count(tenant) <= 1:
        raise MemberChangeRefused("A clinic needs at least one owner: make someone else owner first.")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(tenant=tenant, actor=actor, action="member.role_changed", obj_type="user",
                 obj_id=membership.user_id, detail={"email": membership.user.email, "from": old, "to": role})
    return True


@transaction.atomic
def member_remove(*, membership: Membership, by_role: str | None, actor: Actor) -> None:
    tenant = membership.tenant
    _lock_tenant(tenant)
    membership = Membership.objects.for_tenant(tenant).select_related("user").get(pk=membership.pk)
    _check_grantable(by_role, membership.role)
    if membership.role == roles.OWNER and _owner_count(tenant) <= 1:
        raise MemberChangeRefused("The last owner cannot be removed: make someone else owner first.")
    detail = {"email": membership.user.email, "role": membership.role}
    user_id = membership.user_id
    membership.delete()
    audit_record(tenant=tenant, actor=actor, action="member.removed", obj_type="user", obj_id=user_id,
                 detail=detail)


@transaction.atomic
def tenant_settings_update(*, tenant: Tenant, name: str, ae_title: str, actor: Actor) -> dict:
    """Change the clinic's name and AE title. Returns {field: [old, new]} of what changed."""
    _lock_tenant(tenant)
    current = Tenant.objects.get(pk=tenant.pk)
    changes = {field: [getattr(current, field), value]
               for field, value in (("name", name), ("ae_title", ae_title))
               if getattr(current, field) != value}
    if not changes:
        return {}
    for field, (_, value) in changes.items():
        setattr(current, field, value)
    current.full_clean()
    current.save(update_fields=list(changes))
    for field, (_, value) in changes.items():
        setattr(tenant, field, value)
    audit_record(tenant=tenant, actor=actor, action="tenant.settings_changed", obj_type="tenant",
                 obj_id=tenant.pk, detail={"changes": changes})
    return changes
