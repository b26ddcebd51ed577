"""One URL, several methods: QIDO (GET) and STOW (POST) share `/dicomweb/studies`.

Django resolves URLs by path only, so a shared path is registered once with a view that
dispatches on the HTTP method. Views may be given as dotted paths so that a module still
being written elsewhere does not break the import of urls.py.
"""

from collections.abc import Callable

from django.http import HttpResponseNotAllowed
from django.utils.module_loading import import_string


def by_method(**views: Callable | str) -> Callable:
    """`by_method(GET=search_studies, POST="archive.dicomweb.stow.store")`."""
    resolved: dict[str, Callable] = {}

    def view_for(method: str) -> Callable | None:
        if method not in resolved:
            target = views.get(method)
            if target is None:
                return None
            resolved[method] = import_string(target) if isinstance(target, str) else target
        return resolved[method]

    def dispatch(request, *args, **kwargs):
        method = "GET" if request.method == "HEAD" else request.method
        view = view_for(method)
        if view is None:
            return HttpResponseNotAllowed(sorted(views))
        return view(request, *args, **kwargs)

    # CSRF: Django's middleware checks this dispatcher; bearer-token requests are exempt
    # already (TenantMiddleware, for a valid token of the clinic), session POSTs need the token.
    dispatch.by_method = views  # type: ignore[attr-defined]
    return dispatch
