#!/usr/bin/env bash
# Runs CloudPACS on its embedded defaults: SQLite and local storage folders under var/,
# a Celery worker and beat on a broker that needs no server, the web app on :8000 and
# the DICOM gateway on :11112. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=cloudpacs.settings
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# Links the app prints or mails (the demo banner, invitations, share links) name this server.
export SITE_URL=${SITE_URL:-http://$HOST:$PORT}

$BIN/python manage.py migrate --noinput -v 0
$BIN/python manage.py bootstrap_demo

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "Stopping CloudPACS..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

$BIN/celery -A cloudpacs worker --loglevel=INFO --pool threads --concurrency=4 --beat \
  --schedule=var/celerybeat-schedule &
pids+=($!)
if $BIN/python manage.py help dicom_gateway >/dev/null 2>&1; then
  $BIN/python manage.py dicom_gateway --port "${DICOM_PORT:-11112}" &
  pids+=($!)
fi
# gunicorn.conf.py: uvicorn workers serving cloudpacs.asgi (see cloudpacs/serving/).
$BIN/gunicorn --bind "$HOST:$PORT" --workers "${WEB_WORKERS:-2}" &
pids+=($!)
echo "CloudPACS is running at http://$HOST:$PORT (Ctrl-C to stop)"
wait -n "${pids[@]}"
