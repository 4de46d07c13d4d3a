#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine for bbt: system packages, the virtual environment, bbt itself.
# Usage: scripts/bootstrap.sh [demo|test]   (test also installs the test tools and the browser)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-demo}"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ "$mode" = test ]; then
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
  command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null \
    || need_apt+=(mosquitto-clients)  # tests/test_broker_closed.py: an outside client
  command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  fc-list 2>/dev/null | grep -qi "CJK\|WenQuanYi" || need_apt+=(fonts-noto-cjk)  # screenshots show Chinese
  command -v psql >/dev/null && command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)  # tests/test_deploy.py
  command -v dbus-daemon >/dev/null || need_apt+=(dbus)  # tests/test_agent_logind.py
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null; }; then
    echo "bootstrap: could not install ${need_apt[*]}" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

PY=${PYTHON:-python3}
if ! $PY -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: bbt's server needs Python 3.11 or newer ($($PY --version))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || $PY -m venv .venv
stamp=".venv/.installed-$mode"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  extras="server,agent"; [ "$mode" = test ] && extras="server,agent,test"
  echo "bootstrap: installing bbt[$extras] into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
