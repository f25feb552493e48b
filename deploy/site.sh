#!/bin/sh
# `make site`: nginx terminating TLS (self-signed on first run) in front of one serving stack per
# backend port ("hosts": own supervisord and RUN_DIR, same PostgreSQL and Redis) on this machine.
set -eu
cd "$(dirname "$0")/.."
: "${SITE_DIR:=$PWD/run/site}" "${SERVER_NAME:=localhost}" "${HTTPS_PORT:=8443}" "${HTTP_PORT:=8080}"
: "${BACKEND_PORTS:=8001 8002}" "${WORKERS:=2}"
: "${PUBLIC_ORIGINS:=https://$SERVER_NAME:$HTTPS_PORT}" "${TRUSTED_PROXIES:=127.0.0.1}"
[ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}${REDIS_SENTINELS:-}" ] || {
    echo "site: set DATABASE_URL and REDIS_URL: every host shares one PostgreSQL and one Redis" >&2
    exit 2
}
command -v nginx >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
}
. deploy/limits.sh
TLS_CERT=$SITE_DIR/tls/cert.pem TLS_KEY=$SITE_DIR/tls/key.pem
STATIC_ROOT=$PWD/staticfiles WORKER_CONNECTIONS=$((NOFILE / 2))
export SITE_DIR SERVER_NAME HTTPS_PORT HTTP_PORT WORKERS PUBLIC_ORIGINS TRUSTED_PROXIES TLS_CERT TLS_KEY
export STATIC_ROOT WORKER_CONNECTIONS
mkdir -p "$SITE_DIR/tls" "$SITE_DIR/nginx/tmp"
[ -f "$TLS_CERT" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$SERVER_NAME" \
    -addext "subjectAltName=DNS:$SERVER_NAME,DNS:localhost,IP:127.0.0.1" \
    -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput -v 0
.venv/bin/python manage.py browser_client
UPSTREAM_SERVERS=""
for port in $BACKEND_PORTS; do
    RUN_DIR=$SITE_DIR/host-$port PORT=$port setsid ./deploy/serve.sh >"$SITE_DIR/host-$port.log" 2>&1 &
    .venv/bin/python deploy/healthy.py "http://127.0.0.1:$port/healthz" 90
    UPSTREAM_SERVERS="$UPSTREAM_SERVERS    server 127.0.0.1:$port;
"
done
export UPSTREAM_SERVERS
.venv/bin/python deploy/render.py deploy/nginx/widgetapp.conf >"$SITE_DIR/nginx/widgetapp.conf"
.venv/bin/python deploy/render.py deploy/nginx/site.conf >"$SITE_DIR/nginx/nginx.conf"
nginx -q -t -p "$SITE_DIR/nginx" -c "$SITE_DIR/nginx/nginx.conf"
nginx -p "$SITE_DIR/nginx" -c "$SITE_DIR/nginx/nginx.conf"
echo "site: https://$SERVER_NAME:$HTTPS_PORT/ over hosts on ports $BACKEND_PORTS (make site-stop)"
