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


# Probes must answer quickly even when a dependency hangs (a broker that accepts the TCP
# connection but never replies would otherwise block the probe, and the worker, forever).
BROKER_TIMEOUT = 2.0


def _check_broker() -> None:
    from cloudpacs.celery import app

    socket_limits = {"socket_timeout": BROKER_TIMEOUT, "socket_connect_timeout": BROKER_TIMEOUT}
    with app.connection_for_write(connect_timeout=BROKER_TIMEOUT, transport_options=socket_limits) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT)


def _check_storage() -> None:
    from cloudpacs.objectstore.regions import check_regions_reachable

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
