#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite: own data dir, loopback only, trust auth.
#   ops/pg-test.sh start|stop|url   (PORT env, default 55432)
set -euo pipefail
port=${PGTEST_PORT:-55432}
dir=${TMPDIR:-/tmp}/vmw-pg-$port
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
url="postgres://postgres@127.0.0.1:$port/postgres"
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

case "${1:-}" in
  start)
    if [ -z "$bin" ]; then
      echo "pg-test: installing PostgreSQL" >&2
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
      bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    fi
    if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then useradd -r -m postgres; fi
    if [ -f "$dir/data/postmaster.pid" ] && run "$bin/pg_ctl -D $dir/data status" >/dev/null 2>&1; then
      echo "$url"; exit 0
    fi
    rm -rf "$dir"; mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    run "$bin/initdb -D $dir/data -U postgres -A trust --no-sync" >/dev/null
    run "$bin/pg_ctl -D $dir/data -l $dir/log -w -o '-k $dir -h 127.0.0.1 -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300' start" >/dev/null
    echo "$url"
    ;;
  stop)
    [ -n "$bin" ] && [ -d "$dir/data" ] && run "$bin/pg_ctl -D $dir/data -m fast stop" >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  url) echo "$url" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
