#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, starts what it needs, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
[ -x scripts/postgres.sh ] && scripts/postgres.sh
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
