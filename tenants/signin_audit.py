"""Sign-in events in the audit log of every clinic the person belongs to (HIPAA log-in
monitoring: 45 CFR 164.308(a)(5)(ii)(C)).

Logins, logouts and failed passwords come from Django's auth signals, so the admin site's
sign-in is covered too; lockouts, second-factor checks, enrolment and removal, backup codes
and password changes are recorded by the views that do them. No event carries a password,
a one-time code or a backup code.

A person belongs to any number of clinics, so one sign-in is one event in each clinic's
chain; whoever reads a clinic's log sees only its own copy.
"""

import logging

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.dispatch import receiver
from django_otp import user_has_device

from tenants.audit import Actor, AuditEvent, audit_record
from tenants.principal import client_ip

logger = logging.getLogger("cloudpacs.auth")

LOGIN = "auth.login"
LOGIN_FAILED = "auth.login_failed"  # detail.reason: "password" or "second_factor"
LOCKOUT = "auth.lockout"
LOGOUT = "auth.logout"
SECOND_FACTOR_VERIFIED = "auth.2fa_verified"
SECOND_FACTOR_ENROLLED = "auth.2fa_enrolled"
SECOND_FACTOR_REMOVED = "auth.2fa_removed"
BACKUP_CODES_RENEWED = "auth.2fa_backup_codes_renewed"
PASSWORD_CHANGED = "auth.password_changed"
PASSWORD_RESET_REQUESTED = "auth.password_reset_requested"  # detail.by: "self" or "admin"
PASSWORD_RESET = "auth.password_reset"  # the new password was set through the emailed link
PASSWORD_RESET_REFUSED = "auth.password_reset_refused"  # a used, expired or forged link

SIGNIN_ACTIONS = (LOGIN, LOGIN_FAILED, LOCKOUT, LOGOUT, SECOND_FACTOR_VERIFIED,
                  SECOND_FACTOR_ENROLLED, SECOND_FACTOR_REMOVED, BACKUP_CODES_RENEWED,
                  PASSWORD_CHANGED, PASSWORD_RESET_REQUESTED, PASSWORD_RESET, PASSWORD_RESET_REFUSED)


def signin_record(*, user, request, action: str, detail: dict | None = None) -> int:
    """Append `action` about `user` to each of their clinics' logs; returns how many.

    The actor is the account the attempt was for, even when the attempt failed: that is
    whom the clinic's auditor looks for. All clinics or none, in tenant id order so two
    sign-ins of people sharing clinics cannot deadlock on the chain locks."""
    meta = request.META if request is not None else {}
    actor = Actor(AuditEvent.USER, str(user.pk), user.email,
                  client_ip(request) if request is not None else None,
                  meta.get("HTTP_USER_AGENT", ""))
    tenants = [m.tenant for m in user.memberships(manager="unscoped")  # every clinic of theirs
               .select_related("tenant").order_by("tenant_id")]
    with transaction.atomic():
        for tenant in tenants:
            audit_record(tenant=tenant, actor=actor, action=action, obj_type="user",
                         obj_id=str(user.pk), detail=detail)
    return len(tenants)


@receiver(user_logged_in, dispatch_uid="signin_audit_logged_in")
def _logged_in(sender, request, user, **kwargs):
    # The password was right; with a device the session is not verified until the code is.
    detail = {"second_factor": "pending"} if user_has_device(user) else {}
    signin_record(user=user, request=request, action=LOGIN, detail=detail)


@receiver(user_login_failed, dispatch_uid="signin_audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    from tenants.models import User

    # `credentials` has the password masked; only the address is read.
    email = str(credentials.get("username") or "").strip()
    user = User.objects.filter(email__iexact=email).first() if email else None
    if user is None:
        # No account, so no clinic to record in; the auth logger keeps a digest of the
        # address. Recording it anywhere else would tell which addresses exist.
        return
    signin_record(user=user, request=request, action=LOGIN_FAILED, detail={"reason": "password"})


@receiver(user_logged_out, dispatch_uid="signin_audit_logged_out")
def _logged_out(sender, request, user, **kwargs):
    if user is None:
        return
    # An automatic logoff (tenants/idle_logoff.py) says so.
    reason = getattr(request, "logout_reason", None)
    try:
        signin_record(user=user, request=request, action=LOGOUT, detail={"reason": reason} if reason else None)
    except Exception:
        # The session still ends: someone who cannot sign out is worse off than a log
        # missing one logout. Anything else fails closed.
        logger.exception("logout not audited user_id=%s", user.pk)
