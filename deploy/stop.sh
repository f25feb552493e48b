#!/bin/sh
# Stop `make serve`: supervisord sends each worker SIGTERM (it drains), then exits; wait for that.
set -eu
cd "$(dirname "$0")/.."
: "${RUN_DIR:=$PWD/run}"
export RUN_DIR
pid=$(cat "$RUN_DIR/supervisord.pid" 2>/dev/null) || { echo "stop: not running" >&2; exit 0; }
.venv/bin/supervisorctl -c deploy/supervisord.conf shutdown
while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
done
echo "stop: stopped"
