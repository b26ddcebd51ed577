"""Docker HEALTHCHECK for each CloudPACS role: `python docker/healthcheck.py <role>`.

Exits 0 when healthy, 1 (with the reason on stderr) when not. Every check is bounded by a
timeout, so a hung dependency makes the container unhealthy instead of hanging the probe.
"""

import os
import socket
import sys
import urllib.request

TIMEOUT = 5.0


def _django():
    import django

    django.setup()


def check_web() -> None:
    # Production settings only answer their ALLOWED_HOSTS and redirect plain HTTP to HTTPS
    # (the TLS proxy sets X-Forwarded-Proto), so ask the way the proxy would.
    hosts = [h.strip().lstrip(".") for h in os.environ.get("ALLOWED_HOSTS", "").split(",")]
    host = os.environ.get("HEALTHCHECK_HOST") or next((h for h in hosts if h and h != "*"), "localhost")
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz",
                                     headers={"Host": host, "X-Forwarded-Proto": "https"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")


def check_worker() -> None:
    _django()
    from cloudpacs.celery import app

    me = f"worker@{socket.gethostname()}"
    if not app.control.ping(destination=[me], timeout=TIMEOUT):
        raise RuntimeError(f"{me} did not answer a ping")


def check_beat() -> None:
    # Beat is useless without its broker; the same bounded check as /readyz.
    _django()
    from cloudpacs.health import _check_broker

    _check_broker()


def check_gateway() -> None:
    port = int(os.environ.get("DICOM_PORT", "11112"))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
        pass


CHECKS = {"web": check_web, "worker": check_worker, "beat": check_beat, "gateway": check_gateway}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in CHECKS:
        print(f"usage: healthcheck.py {{{'|'.join(CHECKS)}}}", file=sys.stderr)
        return 2
    try:
        CHECKS[argv[1]]()
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"; say why
        print(f"{argv[1]} unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
