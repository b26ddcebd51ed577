"""/healthz: the process answers. /readyz: what it depends on answers too."""

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    from cloudpacs.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_storage() -> None:
    from archive.storage.regions import check_regions_reachable

    check_regions_reachable()


READINESS_CHECKS = {"database": _check_database, "broker": _check_broker, "storage": _check_storage}


@require_GET
def readyz(request):
    results, ready = {}, True
    for name, check in READINESS_CHECKS.items():
        started = time.monotonic()
        try:
            check()
            results[name] = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
            ready = False
            results[name] = {"ok": False, "error": type(exc).__name__ if not settings.DEBUG else str(exc)}
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": results},
                        status=200 if ready else 503)
