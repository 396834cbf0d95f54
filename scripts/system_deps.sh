#!/usr/bin/env bash
# System packages the test suite needs: Chromium from Debian's packages (browser tests drive it
# through Playwright's executable_path; no browser is ever downloaded). Installs only when missing
# and when run as root with apt-get; otherwise it says what to install.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
else
  echo "note: install Chromium (Debian package 'chromium') to run the browser tests" >&2
fi
