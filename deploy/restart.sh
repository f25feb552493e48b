#!/bin/sh
# Rolling restart: replace the workers one at a time; each drains on SIGTERM while the others serve.
set -eu
cd "$(dirname "$0")/.."
: "${HOST:=127.0.0.1}" "${PORT:=8000}" "${RUN_DIR:=$PWD/run}"
export RUN_DIR
ctl() { .venv/bin/supervisorctl -c deploy/supervisord.conf "$@"; }
healthy() {
    for _ in $(seq 100); do
        if .venv/bin/python -c "import urllib.request as u; u.urlopen('http://$HOST:$PORT/healthz', timeout=1)" \
                2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "restart: http://$HOST:$PORT/healthz did not answer" >&2
    return 1
}
workers=$(ctl status 'widgetapp:*' | awk '{print $1}') || true
[ -n "$workers" ] || { echo "restart: no workers running (make serve first)" >&2; exit 1; }
for name in $workers; do
    echo "restart: $name draining"
    ctl stop "$name"    # SIGTERM: the worker drains, then exits; waits up to stopwaitsecs
    ctl start "$name"   # returns once the new worker has stayed up for startsecs
    healthy
done
echo "restart: done"
