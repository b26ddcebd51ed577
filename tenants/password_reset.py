"""Password reset by email: Django's tokens (they die once the password changes, and after
PASSWORD_RESET_TIMEOUT), sent to a person who forgot theirs or by their clinic's admin.

Nobody learns whether an address has an account: the page answers the same either way, and
everything that differs between the two (looking the account up, its limit, the audit
events in its clinics, the email) happens in a background thread after the answer, so an
existing account's work does not show in the response time either. Requests are limited per client address (a page that sends
mail is a tool for flooding inboxes) and per address asked for (silently: the limit must not
tell which addresses exist)."""

import logging
from datetime import timedelta
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from cloudpacs.mail import secret_links_mailable
from cloudpacs.thread_pools import thread_pool
from tenants import signin_audit, throttle
from tenants.models import User

logger = logging.getLogger("cloudpacs.auth")

WINDOW = timedelta(hours=1)


def ip_allowed(ip: str | None) -> bool:
    """Count a reset request (or a refused link) from `ip`; False once over the hourly limit."""
    return throttle.window_count(f"pwreset-ip:{ip or 'unknown'}", WINDOW) <= settings.PASSWORD_RESET_IP_LIMIT


def address_allowed(email: str) -> bool:
    """Count a reset email to `email`; False once over the hourly limit (no more mail)."""
    key = f"pwreset-email:{throttle.email_digest(email)}"
    return throttle.window_count(key, WINDOW) <= settings.PASSWORD_RESET_EMAIL_LIMIT


def account_for_reset(email: str) -> User | None:
    """The active account with this address and a password to reset, if there is one."""
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    return user if user is not None and user.has_usable_password() else None


def reset_url(user: User) -> str:
    path = reverse("password_reset_confirm", kwargs={
        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user)})
    return settings.SITE_URL.rstrip("/") + path


def reset_email_send(user: User, *, sent_by: User | None = None) -> bool:
    """Email `user` a reset link, in the background (see the module's note). False when no
    email may carry it (cloudpacs/mail.py)."""
    if not secret_links_mailable():
        logger.warning("password reset for user_id=%s not emailed: EMAIL_BACKEND is the console backend", user.pk)
        return False
    thread_pool("reset-mail", 2).submit(_send, _message(user, sent_by=sent_by), user.pk)
    return True


def _message(user: User, *, sent_by: User | None) -> EmailMultiAlternatives:
    context = {"user": user, "url": reset_url(user), "sent_by": sent_by,
               "hours": settings.PASSWORD_RESET_TIMEOUT // 3600}
    return EmailMultiAlternatives(subject="Set your CloudPACS password",
                                  body=render_to_string("registration/password_reset_email.txt", context),
                                  to=[user.email])


def _send(message: EmailMultiAlternatives, user_id: int) -> None:
    try:
        message.send(fail_silently=False)
    except Exception:  # noqa: BLE001 - nobody waits on this thread; the log says what failed
        logger.exception("password reset email to user_id=%s was not sent", user_id)


# What a background job needs of the request: the client's address (after the trusted
# proxies) and user agent, for the audit events.
_META_KEYS = ("REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "HTTP_USER_AGENT")


def reset_request_queue(email: str, request) -> None:
    """A "forgot password" request, handled after the answer (see the module's note)."""
    meta = {key: request.META[key] for key in _META_KEYS if key in request.META}
    # One at a time in this process: the per-address count is then exact here (the cache's
    # increment is atomic on Redis, not on the embedded file cache).
    thread_pool("reset-request", 1).submit(_reset_request, email, meta)


def _reset_request(email: str, meta: dict) -> None:
    try:
        user = account_for_reset(email)
        if user is None or not address_allowed(email):
            logger.info("password reset not emailed email=%s", throttle.email_digest(email))
            return
        if not secret_links_mailable():
            logger.warning("password reset for user_id=%s not emailed: EMAIL_BACKEND is the console backend", user.pk)
            return
        with transaction.atomic():
            signin_audit.signin_record(user=user, request=SimpleNamespace(META=meta),
                                       action=signin_audit.PASSWORD_RESET_REQUESTED, detail={"by": "self"})
        _send(_message(user, sent_by=None), user.pk)
        logger.info("password reset emailed user_id=%s", user.pk)
    except Exception:  # noqa: BLE001 - nobody waits on this thread; the log says what failed
        logger.exception("password reset request not handled")
    finally:
        connection.close()  # this thread's own database connection
