#!/bin/sh
# Production serving: migrate, then supervisord runs WORKERS daphne workers on one socket (foreground).
set -eu
cd "$(dirname "$0")/.."
: "${WORKERS:=2}" "${MAX_WORKERS:=16}" "${HOST:=127.0.0.1}" "${PORT:=8000}" "${RUN_DIR:=$PWD/run}"
: "${STREAMING_DRAIN_SECONDS:=5}"
if [ "$WORKERS" -gt 1 ] && [ -z "${REDIS_URL:-}${REDIS_SENTINELS:-}" ]; then
    echo "serve: WORKERS=$WORKERS needs REDIS_URL: the in-memory channel layer and stream history" \
         "live inside one process, so workers could not see each other's events (or use WORKERS=1)." >&2
    exit 2
fi
if [ "$WORKERS" -gt "$MAX_WORKERS" ]; then
    echo "serve: WORKERS=$WORKERS is more than MAX_WORKERS=$MAX_WORKERS" >&2
    exit 2
fi
. deploy/limits.sh
# Supervisord's grace before SIGKILL: the drain window plus time to finish closing and exit.
: "${STOP_WAIT_SECONDS:=$((${STREAMING_DRAIN_SECONDS%.*} + 15))}"
export WORKERS MAX_WORKERS HOST PORT RUN_DIR STREAMING_DRAIN_SECONDS STOP_WAIT_SECONDS
mkdir -p "$RUN_DIR"
.venv/bin/python manage.py migrate --noinput
.venv/bin/supervisord -c deploy/supervisord.conf &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
if ! ./deploy/scale.sh; then
    kill -TERM "$pid"
    wait "$pid" || true
    exit 1
fi
echo "serve: $WORKERS workers on http://$HOST:$PORT, open files $NOFILE (logs in $RUN_DIR;" \
     "make scale / make restart / make stop)"
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid" || true
done
