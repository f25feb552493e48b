#!/bin/sh
# Stop `make site`: every host drains and stops (deploy/stop.sh), then nginx quits.
set -eu
cd "$(dirname "$0")/.."
: "${SITE_DIR:=$PWD/run/site}"
for run_dir in "$SITE_DIR"/host-*/; do
    [ -d "$run_dir" ] && RUN_DIR=${run_dir%/} ./deploy/stop.sh
done
if [ -f "$SITE_DIR/nginx/nginx.pid" ]; then
    pid=$(cat "$SITE_DIR/nginx/nginx.pid")
    nginx -q -s quit -p "$SITE_DIR/nginx" -c "$SITE_DIR/nginx/nginx.conf" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
fi
echo "site: stopped"
