#!/bin/sh
# `make run`: one daphne process (SQLite + in-memory layer); the banner is printed once it answers,
# and daphne's per-request access log goes to a file so the banner stays on screen.
set -eu
: "${HOST:=127.0.0.1}" "${PORT:=8000}" "${RUN_DIR:=run}" "${PY:=.venv/bin/python}"
mkdir -p "$RUN_DIR"
ACCESS_LOG="$RUN_DIR/access.log"
URL="http://$HOST:$PORT"

"$(dirname "$PY")/daphne" -b "$HOST" -p "$PORT" --websocket_timeout -1 \
	--websocket-max-message-size 65536 --access-log "$ACCESS_LOG" widgetapp.asgi:application &
DAPHNE=$!
trap 'kill "$DAPHNE" 2>/dev/null; wait "$DAPHNE" 2>/dev/null' EXIT
trap 'exit 0' INT TERM

sleep 0.5
until "$PY" -c "import urllib.request as u; u.urlopen('$URL/healthz', timeout=1)" 2>/dev/null; do
	kill -0 "$DAPHNE" 2>/dev/null || { wait "$DAPHNE"; exit 1; }
	sleep 0.3
done
PASSWORD=$(sed -n 's/^DEMO_PASSWORD = "\(.*\)"$/\1/p' widgetapp/widgets/management/commands/seed_demo.py)
cat <<BANNER

  WidgetApp Streaming is running at $URL/

    $URL/app/     the live page (sign in, allow streaming, watch widgets change)
    $URL/admin/   the admin: live sessions, workers, load dashboard, limits, audit log

  Demo accounts, password: $PASSWORD
    demo       approved: widgets and notifications
    admin      staff: also server load and the admin
    outsider   in no approved group: sees the refusal

  Requests are logged to $ACCESS_LOG; errors appear here. Ctrl-C stops the server.

BANNER
wait "$DAPHNE"
