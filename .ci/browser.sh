#!/usr/bin/env bash
# Debian's Chromium for the browser tests (pytest -m browser, tests/test_html.py): installed with
# apt when /usr/bin/chromium is missing. No test tool downloads a browser of its own.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "browser.sh: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium
/usr/bin/chromium --version
