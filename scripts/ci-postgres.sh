#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster (installed by `make deps`) and creates a
# role and database for the tests that run CX Lab against an external
# PostgreSQL. Prints the URL to export as CXLAB_TEST_POSTGRES_URL.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
  pg_createcluster "$ver" main >/dev/null 2>&1
fi
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='cxlab_ext'\" -p $port" | grep -q 1 ||
  su postgres -c "psql -q -p $port -c \"CREATE ROLE cxlab_ext LOGIN CREATEDB PASSWORD 'cxlab_ext'\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='cxlab_ext'\" -p $port" | grep -q 1 ||
  su postgres -c "createdb -p $port -O cxlab_ext cxlab_ext"
echo "postgres://cxlab_ext:cxlab_ext@127.0.0.1:$port/cxlab_ext?sslmode=disable"
