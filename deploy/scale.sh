#!/bin/sh
# Run WORKERS workers without an outage: missing ones start (and answer /healthz) before extra ones
# are stopped; a stopped worker drains on SIGTERM, its clients reconnecting to the others.
set -eu
cd "$(dirname "$0")/.."
: "${WORKERS:?set WORKERS}" "${HOST:=127.0.0.1}" "${PORT:=8000}" "${RUN_DIR:=$PWD/run}"
export RUN_DIR
ctl() { .venv/bin/supervisorctl -c deploy/supervisord.conf "$@"; }
for _ in $(seq 100); do
    ctl pid >/dev/null 2>&1 && break
    sleep 0.1
done
states=$(ctl status 'widgetapp:*' || true)
[ -n "$states" ] || { echo "scale: supervisord is not running (make serve first)" >&2; exit 1; }
slots=$(echo "$states" | grep -c .)
[ "$WORKERS" -le "$slots" ] || { echo "scale: at most MAX_WORKERS=$slots workers" >&2; exit 2; }
running=$(echo "$states" | awk '$2 == "RUNNING" || $2 == "STARTING" {print $1}' | sort -V)
count=$(echo "$running" | grep -c . || true)
for name in $(echo "$states" | awk '$2 != "RUNNING" && $2 != "STARTING" {print $1}' | sort -V); do
    [ "$count" -lt "$WORKERS" ] || break
    ctl start "$name"   # returns once the new worker has stayed up for startsecs
    count=$((count + 1))
done
.venv/bin/python deploy/healthy.py "http://$HOST:$PORT/healthz"
for name in $(echo "$running" | sort -V -r); do
    [ "$count" -gt "$WORKERS" ] || break
    echo "scale: $name draining"
    ctl stop "$name"    # SIGTERM: the worker drains, then exits; waits up to stopwaitsecs
    count=$((count - 1))
done
echo "scale: $count workers"
