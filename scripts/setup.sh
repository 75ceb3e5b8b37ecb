#!/usr/bin/env bash
# Create .venv (if missing) and install the package with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The viewer's browser test drives Debian's Chromium through its ChromeDriver; installed here when missing (the test
# is skipped, saying why, only where apt cannot install them).
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="$(command -v sudo || true)"; fi
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 \
           && $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } \
      || echo "setup: could not install chromium and chromium-driver; the browser test will be skipped" >&2
  fi
fi
