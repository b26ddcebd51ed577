"""Automatic logoff (HIPAA 45 CFR 164.312(a)(2)(iii)): a member's session ends after
SESSION_IDLE_MINUTES without a request of theirs, audited as a logout for that reason.

Each request of a signed-in person notes its time in the session, written at most once a
minute (SESSION_TOUCH_SECONDS): a viewer loads a study in hundreds of requests, and each
used to rewrite the session row. So the recorded time may be up to a minute behind, and
the logoff comes between SESSION_IDLE_MINUTES and a minute more after the last request,
never before. The write also slides the session's expiry (SESSION_COOKIE_AGE, the longest a
session lives while in use). A page's own automatic reload (`auto_refresh=1`, static/js/
base.js) is not the person's activity. A request with an API token is not this session's."""

import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

ACTIVE_AT = "active_at"  # in the session: the time of its last noted request (epoch seconds)
SESSION_TOUCH_SECONDS = 60
IDLE_REASON = "idle"
AUTO_REFRESH = "auto_refresh"


def idle_seconds() -> int:
    return max(0, settings.SESSION_IDLE_MINUTES) * 60


@receiver(user_logged_in, dispatch_uid="idle_logoff_logged_in")
def _logged_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[ACTIVE_AT] = int(time.time())


class IdleLogoffMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from tenants.middleware import bearer_secret

        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:  # signed in by this session
            # A request that also carries an API token is judged by its token: its session
            # still ends when idle (quietly, the request goes on as the token's), but it is
            # not the person's activity. Any header counts, so a forged one cannot revive
            # an idle session either.
            with_token = bearer_secret(request) is not None
            if _idle_over(request.session):
                _end(request)
                if not with_token:
                    return _signed_out_answer(request)
            elif not with_token:
                _note_activity(request)
        return self.get_response(request)


def seconds_left(session) -> int | None:
    """Seconds until this session ends for inactivity (negative: over); None with no limit."""
    idle = idle_seconds()
    if not idle:
        return None
    last = session.get(ACTIVE_AT)
    if not isinstance(last, (int, float)):  # no request noted yet: this one starts the clock
        return idle + SESSION_TOUCH_SECONDS
    return int(last + idle + SESSION_TOUCH_SECONDS - time.time())


def _idle_over(session) -> bool:
    left = seconds_left(session)
    return left is not None and left < 0


def _end(request) -> None:
    if _first_to_end(request.session):
        request.logout_reason = IDLE_REASON  # the logout's audit event says why
        logout(request)
    else:  # a parallel request of this session (a viewer's frames) ended and audited it
        request.session.flush()
        request.user = AnonymousUser()


def _note_activity(request) -> None:
    session, now = request.session, time.time()
    last = session.get(ACTIVE_AT)
    automatic = request.GET.get(AUTO_REFRESH) == "1"
    if not isinstance(last, (int, float)) or (not automatic and now - last >= SESSION_TOUCH_SECONDS):
        session[ACTIVE_AT] = int(now)


def _first_to_end(session) -> bool:
    """Delete the session's stored row: True for the one request that did, False for the
    others of the same session that loaded it before it went (one logout event, not one
    per parallel request). Other session engines have no row to claim: True."""
    from django.contrib.sessions.backends.db import SessionStore

    if not isinstance(session, SessionStore) or session.session_key is None:
        return True
    deleted, _ = session.model.objects.filter(session_key=session.session_key).delete()
    return deleted > 0


def _signed_out_answer(request):
    from tenants.middleware import json_error, wants_json

    minutes = settings.SESSION_IDLE_MINUTES
    if wants_json(request):
        return json_error(401, f"Signed out after {minutes} minutes without activity; sign in again.",
                          WWW_Authenticate='Bearer realm="cloudpacs"', X_Signed_Out=IDLE_REASON)
    next_url = request.get_full_path() if request.method == "GET" else "/"
    return redirect(reverse("login") + "?" + urlencode({"next": next_url, "idle": minutes}))
