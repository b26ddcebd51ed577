"""Login throttling: per-account lockout (in the database) and a per-IP limit (in the cache).

An account is locked for LOGIN_LOCKOUT_MINUTES after LOGIN_MAX_FAILURES wrong passwords in a
row; a correct password resets the count. Addresses that do not belong to any account get the
same treatment through the cache, so the lockout message does not tell an attacker which
addresses exist. The per-IP limit stops one client from trying many accounts (credential
stuffing) without ever locking the victims out for good.

The cache is Django's default cache: per process unless CACHES points at a shared server
(Redis) in production, which is what a multi-worker deployment should do.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tenants.models import User

logger = logging.getLogger("cloudpacs.auth")


def _ip_max_failures() -> int:
    return getattr(settings, "LOGIN_IP_MAX_FAILURES", 30)


def _ip_window() -> timedelta:
    return timedelta(minutes=getattr(settings, "LOGIN_IP_WINDOW_MINUTES", 15))


def _lockout() -> timedelta:
    return timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)


def _ip_key(ip: str | None) -> str:
    return f"login-fail-ip:{ip or 'unknown'}"


def _email_key(email: str) -> str:
    # Hashed, so cache dumps do not list the addresses people typed.
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"login-fail-email:{digest}"


def email_digest(email: str) -> str:
    """A short, stable stand-in for an address that matches no account, for the logs."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:12]


# ---- per IP ----------------------------------------------------------------------------

def ip_is_blocked(ip: str | None) -> bool:
    return (cache.get(_ip_key(ip)) or 0) >= _ip_max_failures()


def _ip_failure(ip: str | None) -> int:
    return window_count(_ip_key(ip), _ip_window())


def window_count(key: str, window: timedelta) -> int:
    """Count one more event under `key`; the count is of the window that began with the first."""
    timeout = int(window.total_seconds())
    # add() is a no-op when the key exists; the window starts at the first event.
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=timeout)
        return 1


# ---- per account -----------------------------------------------------------------------

@dataclass(frozen=True)
class Lock:
    until: datetime

    @property
    def minutes_left(self) -> int:
        seconds = (self.until - timezone.now()).total_seconds()
        return max(1, int((seconds + 59) // 60))


def account_lock(*, user: User | None, email: str) -> Lock | None:
    """The lock on this account (or on this unknown address), if one is in force."""
    if user is not None:
        return Lock(user.locked_until) if user.is_locked() else None
    until = cache.get(_email_key(email) + ":until")
    if until is not None and until > timezone.now():
        return Lock(until)
    return None


def login_failed(*, user: User | None, email: str, ip: str | None) -> Lock | None:
    """Count one wrong password; returns the lock if this failure started one."""
    ip_count = _ip_failure(ip)
    if ip_count == _ip_max_failures():
        logger.warning("login blocked for ip=%s after %d failures", ip, ip_count)
    if user is None:
        return _unknown_email_failed(email=email, ip=ip)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(failed_logins=F("failed_logins") + 1)
        row = User.objects.select_for_update().only("failed_logins", "locked_until").get(pk=user.pk)
        if row.failed_logins < settings.LOGIN_MAX_FAILURES:
            logger.info("login failed user_id=%s ip=%s failures=%d", user.pk, ip, row.failed_logins)
            return None
        until = timezone.now() + _lockout()
        # The count starts again after the lock, so an unlocked account has all its tries.
        User.objects.filter(pk=user.pk).update(failed_logins=0, locked_until=until)
    user.failed_logins, user.locked_until = 0, until
    logger.warning("account locked user_id=%s ip=%s until=%s", user.pk, ip, until.isoformat())
    return Lock(until)


def _unknown_email_failed(*, email: str, ip: str | None) -> Lock | None:
    key = _email_key(email)
    lock_seconds = int(_lockout().total_seconds())
    cache.add(key, 0, timeout=lock_seconds)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=lock_seconds)
        count = 1
    logger.info("login failed for unknown email=%s ip=%s", email_digest(email), ip)
    if count < settings.LOGIN_MAX_FAILURES:
        return None
    until = timezone.now() + _lockout()
    cache.set(key + ":until", until, timeout=lock_seconds)
    cache.delete(key)
    return Lock(until)


def login_succeeded(*, user: User) -> None:
    if user.failed_logins or user.locked_until:
        User.objects.filter(pk=user.pk).update(failed_logins=0, locked_until=None)
        user.failed_logins, user.locked_until = 0, None
