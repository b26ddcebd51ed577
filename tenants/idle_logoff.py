"""Automatic logoff (HIPAA 45 CFR 164.312(a)(2)(iii)): a member's session ends after
SESSION_IDLE_MINUTES without a request, audited as a logout for that reason.

Each request of a signed-in person notes its time in the session, written at most once a
minute (SESSION_TOUCH_SECONDS): a viewer loads a study in hundreds of requests, and each
used to rewrite the session row. The write also slides the session's expiry
(SESSION_COOKIE_AGE, the longest a session lives while in use). API tokens have no session
and are not concerned."""

import time

from django.conf import settings
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

ACTIVE_AT = "active_at"  # in the session: the time of its last noted request (epoch seconds)
SESSION_TOUCH_SECONDS = 60
IDLE_REASON = "idle"


class IdleLogoffMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ended = self._idle_ended(request)
            if ended is not None:
                return ended
        return self.get_response(request)

    def _idle_ended(self, request):
        session, now = request.session, time.time()
        last = session.get(ACTIVE_AT)
        idle = settings.SESSION_IDLE_MINUTES * 60
        if idle and isinstance(last, (int, float)) and now - last > idle:
            request.logout_reason = IDLE_REASON  # the logout's audit event says why
            logout(request)
            return _signed_out_answer(request)
        if not isinstance(last, (int, float)) or int(now // SESSION_TOUCH_SECONDS) != int(last // SESSION_TOUCH_SECONDS):
            session[ACTIVE_AT] = int(now)
        return None


def _signed_out_answer(request):
    from tenants.middleware import json_error, wants_json

    minutes = settings.SESSION_IDLE_MINUTES
    if wants_json(request):
        return json_error(401, f"Signed out after {minutes} minutes without activity; sign in again.")
    next_url = request.get_full_path() if request.method == "GET" else "/"
    return redirect(reverse("login") + "?" + urlencode({"next": next_url, "idle": minutes}))
