#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the end-to-end dashboard test
# (tests/test_e2e_browser.py drives it with Playwright; no Playwright browser download needed).
# Usage: bash .ci/install_browser.sh   (needs root or sudo when Chromium is missing)
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install_browser.sh: /usr/bin/chromium is missing and this is not root (no sudo);" \
      "the browser test will be skipped. Install it with: apt-get install chromium" >&2
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
