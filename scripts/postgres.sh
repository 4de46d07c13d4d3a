#!/usr/bin/env bash
# PostgreSQL for bbt's tests and benchmarks: install it with apt-get where missing, start the
# local cluster, wait until it answers. The tests then create (and drop) their own databases
# on it (tests/pg.py). Server URL: BBT_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres).
# Without PostgreSQL the PostgreSQL half of the storage tests is skipped, except with CI=true,
# where this script fails the run.
set -uo pipefail
url="${BBT_TEST_PG:-postgresql://postgres@127.0.0.1:5432/postgres}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

fail() {
  echo "postgres.sh: $*" >&2
  if [ "${CI:-}" = true ]; then exit 1; fi
  echo "postgres.sh: continuing without PostgreSQL (its tests will be skipped)" >&2
  exit 0
}

answers() { pg_isready -q -d "$url" 2>/dev/null || psql "$url" -Atqc 'select 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
  echo "postgres.sh: installing postgresql with apt-get" >&2
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null; } \
    || fail "could not install postgresql"
fi
if ! answers; then
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
  [ -n "$version" ] || fail "no PostgreSQL cluster in /etc/postgresql"
  # trust auth on the loopback for the tests' user (a development/CI machine only)
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ -w "$hba" ] || [ -n "$SUDO" ]; then
    grep -q "^host all all 127.0.0.1/32 trust" "$hba" 2>/dev/null || \
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba" 2>/dev/null || true
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || $SUDO pg_ctlcluster "$version" main start 2>/dev/null || true
  for _ in $(seq 1 50); do answers && break; sleep 0.2; done
fi
answers || fail "PostgreSQL does not answer at ${url%%@*}@${url#*@}"
echo "postgres.sh: PostgreSQL is up (${url#*@})" >&2
