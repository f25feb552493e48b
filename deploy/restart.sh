#!/bin/sh
# Rolling restart: replace the running workers one at a time; each drains on SIGTERM while the others serve.
set -eu
cd "$(dirname "$0")/.."
: "${HOST:=127.0.0.1}" "${PORT:=8000}" "${RUN_DIR:=$PWD/run}"
export RUN_DIR
ctl() { .venv/bin/supervisorctl -c deploy/supervisord.conf "$@"; }
workers=$(ctl status 'widgetapp:*' | awk '$2 == "RUNNING" {print $1}') || true
[ -n "$workers" ] || { echo "restart: no workers running (make serve first)" >&2; exit 1; }
for name in $workers; do
    echo "restart: $name draining"
    ctl stop "$name"    # SIGTERM: the worker drains, then exits; waits up to stopwaitsecs
    ctl start "$name"   # returns once the new worker has stayed up for startsecs
    .venv/bin/python deploy/healthy.py "http://$HOST:$PORT/healthz"
done
echo "restart: done"
