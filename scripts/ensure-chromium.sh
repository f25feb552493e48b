#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests when it is missing (never `playwright install`).
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
echo "Chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
