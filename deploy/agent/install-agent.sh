#!/bin/sh
# bbt agent: silent install / update on a Linux classroom PC (UOS, Kylin, Ubuntu), as root.
# Usage: sh install-agent.sh DIR   (DIR holds wheels/, agent.ini and optionally ca.crt)
set -eu
SRC="${1:-$(dirname "$0")}"
PREFIX=/opt/bbt-agent
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 2; }
[ -x "$PREFIX/bin/python" ] || python3 -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install -q --no-index --find-links "$SRC/wheels" --upgrade "bbt[agent]"
mkdir -p /etc/bbt
[ -f /etc/bbt/agent.ini ] || install -m 0640 "$SRC/agent.ini" /etc/bbt/agent.ini
[ ! -f "$SRC/ca.crt" ] || install -m 0644 "$SRC/ca.crt" /etc/bbt/ca.crt
"$PREFIX/bin/python" -m agent install --config /etc/bbt/agent.ini
systemctl restart bbt-agent.service
