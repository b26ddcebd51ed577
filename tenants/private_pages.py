"""Pages shown to someone signed in, or to a share's visitor, are not kept by the browser
or a proxy: `Cache-Control: no-store` on every HTML answer that says nothing of its own.

A worklist or a study page holds patient data. A browser's disk cache on a clinic's
shared PC is data at rest outside our control, and after the automatic logoff the Back
button must not show the page again from the browser's memory."""

from django.utils.cache import add_never_cache_headers


class PrivatePagesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.has_header("Cache-Control") or not response.get("Content-Type", "").startswith("text/html"):
            return response
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated) or getattr(request, "share", None) is not None:
            add_never_cache_headers(response)
        return response
