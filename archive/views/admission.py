"""Upload doors ask before taking anything in: a clinic whose uploads are paused (billing's
grace period ended unpaid) is answered 402 with the reason, before a byte is stored."""

from functools import wraps

from django.http import JsonResponse

from archive.ingest.hooks import upload_refusal

PAYMENT_REQUIRED = 402


def uploads_admitted(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST":
            reason = upload_refusal(request.tenant)
            if reason:
                return JsonResponse({"error": reason}, status=PAYMENT_REQUIRED)
        return view(request, *args, **kwargs)

    return wrapper
