#!/bin/sh
# Start one CloudPACS role: web | worker | beat | gateway | manage <command...>
set -eu
cd /app

role="${1:-web}"
[ $# -gt 0 ] && shift

case "$role" in
  web)
    # Only the web role migrates, and the other roles wait for it to be healthy (compose
    # depends_on), so a single process ever runs migrations at a time.
    python manage.py migrate --noinput
    if [ "${STORAGE_CREATE_BUCKETS:-0}" = "1" ]; then
      python docker/ensure_buckets.py
    fi
    # gunicorn.conf.py: uvicorn workers serving cloudpacs.asgi (see cloudpacs/serving/).
    exec gunicorn \
      --bind "0.0.0.0:${PORT:-8000}" \
      --workers "${WEB_WORKERS:-3}" \
      --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" "$@"
    ;;
  worker)
    # Storage steps mostly wait on S3: threads overlap them (bench/archive.py measures it).
    exec celery -A cloudpacs worker --loglevel "${LOG_LEVEL:-INFO}" --pool threads \
      --concurrency "${WORKER_CONCURRENCY:-8}" --hostname "worker@%h" "$@"
    ;;
  beat)
    # The schedule state is disposable: beat recomputes it from the code on start.
    exec celery -A cloudpacs beat --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule /tmp/celerybeat-schedule --pidfile= "$@"
    ;;
  gateway)
    exec python manage.py dicom_gateway --host "${DICOM_HOST:-0.0.0.0}" --port "${DICOM_PORT:-11112}" "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
