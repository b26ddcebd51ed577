"""The automatic logoff's clock as a page sees it (static/js/idle.js): how long until the
session ends, and "I am still here".

A page cannot see activity in other tabs, so it asks the server before it warns, and when
its countdown ends. Asking (`?auto_refresh=1`, like a page's own reloads) is not activity,
so the question asked after the limit is what ends the session (tenants/idle_logoff.py,
audited there, answered 401); "still here" (a POST) is activity."""

import time

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from tenants import idle_logoff


def _signed_in_json(request):
    # Only the page's own session: a request with an API token is not the person.
    if not request.user.is_authenticated or "HTTP_AUTHORIZATION" in request.META:
        return JsonResponse({"error": "not signed in"}, status=401)
    return None


@never_cache
@require_http_methods(["GET", "POST"])
def session_clock(request):
    """GET: seconds left. POST: the person is here (a key, a click): the clock starts again."""
    if refused := _signed_in_json(request):
        return refused
    if request.method == "POST":
        request.session[idle_logoff.ACTIVE_AT] = int(time.time())
    return JsonResponse({"seconds_left": idle_logoff.seconds_left(request.session)})
