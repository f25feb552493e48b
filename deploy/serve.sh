#!/bin/sh
# Production serving: migrate, then supervisord runs WORKERS daphne workers on one socket (foreground).
set -eu
cd "$(dirname "$0")/.."
: "${WORKERS:=2}" "${HOST:=127.0.0.1}" "${PORT:=8000}" "${RUN_DIR:=$PWD/run}" "${STREAMING_DRAIN_SECONDS:=5}"
if [ "$WORKERS" -gt 1 ] && [ -z "${REDIS_URL:-}" ]; then
    echo "serve: WORKERS=$WORKERS needs REDIS_URL: the in-memory channel layer and stream history" \
         "live inside one process, so workers could not see each other's events (or use WORKERS=1)." >&2
    exit 2
fi
# Supervisord's grace before SIGKILL: the drain window plus time to finish closing and exit.
: "${STOP_WAIT_SECONDS:=$((${STREAMING_DRAIN_SECONDS%.*} + 15))}"
export WORKERS HOST PORT RUN_DIR STREAMING_DRAIN_SECONDS STOP_WAIT_SECONDS
mkdir -p "$RUN_DIR"
.venv/bin/python manage.py migrate --noinput
echo "serve: $WORKERS workers on http://$HOST:$PORT (logs in $RUN_DIR; make restart / make stop)"
exec .venv/bin/supervisord -c deploy/supervisord.conf
