"""Password reset by email: Django's tokens (they die once the password changes, and after
PASSWORD_RESET_TIMEOUT), sent to a person who forgot theirs or by their clinic's admin.

Nobody learns whether an address has an account: the page answers the same either way, and
the email goes out from a background thread, so an existing account's SMTP round trip does
not show in the response time. Requests are limited per client address (a page that sends
mail is a tool for flooding inboxes) and per address asked for (silently: the limit must not
tell which addresses exist)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from cloudpacs.mail import secret_links_mailable
from cloudpacs.thread_pools import thread_pool
from tenants import throttle
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
    context = {"user": user, "url": reset_url(user), "sent_by": sent_by,
               "hours": settings.PASSWORD_RESET_TIMEOUT // 3600}
    message = EmailMultiAlternatives(
        subject="Set your CloudPACS password",
        body=render_to_string("registration/password_reset_email.txt", context),
        to=[user.email])
    thread_pool("reset-mail", 2).submit(_send, message, user.pk)
    return True


def _send(message: EmailMultiAlternatives, user_id: int) -> None:
    try:
        message.send(fail_silently=False)
    except Exception:  # noqa: BLE001 - nobody waits on this thread; the log says what failed
        logger.exception("password reset email to user_id=%s was not sent", user_id)
