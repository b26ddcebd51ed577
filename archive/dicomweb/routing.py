"""One URL, several methods: QIDO (GET) and STOW (POST) share `/dicomweb/studies`.

Django resolves URLs by path only, so a shared path is registered once with a view that
dispatches on the HTTP method.
"""

from collections.abc import Callable

from django.http import HttpResponseNotAllowed


def by_method(**views: Callable) -> Callable:
    """`by_method(GET=search_studies, POST=store)`."""

    def dispatch(request, *args, **kwargs):
        view = views.get("GET" if request.method == "HEAD" else request.method)
        if view is None:
            return HttpResponseNotAllowed(sorted(views))
        return view(request, *args, **kwargs)

    # CSRF: Django's middleware checks this dispatcher; bearer-token requests are exempt
    # already (TenantMiddleware, for a valid token of the clinic), session POSTs need the token.
    dispatch.by_method = views  # type: ignore[attr-defined]
    return dispatch
