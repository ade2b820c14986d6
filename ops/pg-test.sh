#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the test suite: its own data dir, listening on 127.0.0.1 only,
# trust auth, run as the unprivileged `postgres` user. Tests make a database of their own on it.
#
#   ops/pg-test.sh start    start (or join) the server; prints its URL
#   ops/pg-test.sh url      prints the URL of the running server (fails when it is not running)
#   ops/pg-test.sh stop     leave; the last one to leave stops it and removes the data dir
#   ops/pg-test.sh kill     stop it and remove the data dir whoever else is using it
#
#   ops/pg-test.sh start && TEST_DATABASE_URL=$(ops/pg-test.sh url) cargo test -p service
#
# PGTEST_PORT picks the port (default 32432: above the tests' port windows, 10000..32000, and
# below Linux's ephemeral range, 32768 and up, where any outgoing connection may hold it: CI once
# found 55432 taken that way); the data dir is ${TMPDIR:-/tmp}/vmw-pg-<port>.
# start/stop count users, so two test runs sharing a port do not stop the server under each other.
set -euo pipefail

port=${PGTEST_PORT:-32432}
[[ $port =~ ^[0-9]+$ ]] && (( port >= 1024 && port <= 65535 )) || { echo "pg-test: bad PGTEST_PORT '$port'" >&2; exit 2; }
base=${TMPDIR:-/tmp}/vmw-pg-$port
dir=$base/data
users=$base.users
url="postgres://postgres@127.0.0.1:$port/postgres"

find_bin() {
  local d
  for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then dirname "$(readlink -f "$(command -v initdb)")"; fi
}
bin=$(find_bin)

# PostgreSQL refuses to run as root: run its tools as `postgres` (argument vectors, no shell).
# The server must not inherit the start/stop lock (fd 9), or it would hold it for its lifetime.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@" 9>&-; else "$@" 9>&-; fi; }

running() { [ -n "$bin" ] && [ -f "$dir/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
count() { cat "$users" 2>/dev/null || echo 0; }

install_pg() {
  echo "pg-test: installing PostgreSQL 15" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >&2 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  bin=$(find_bin)
}

start() {
  if running; then
    # A server without a count was started by someone else: count them as one user.
    echo $(( $(cat "$users" 2>/dev/null || echo 1) + 1 )) >"$users"
    echo "$url"
    return
  fi
  if port_taken; then
    echo "pg-test: 127.0.0.1:$port is used by something else; pick another with PGTEST_PORT" >&2
    exit 1
  fi
  [ -n "$bin" ] || install_pg
  [ -n "$bin" ] || { echo "pg-test: no initdb/pg_ctl found" >&2; exit 1; }
  if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  fi
  rm -rf "$base"
  mkdir -p "$base"
  [ "$(id -u)" = 0 ] && chown postgres "$base"
  as_pg "$bin/initdb" -D "$dir" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1 \
    || { cat "$base/initdb.log" >&2; exit 1; }
  # Loopback only, no Unix socket outside the data dir; durability off (the data is thrown away).
  # A socket that holds the port for a moment (a connection closing) goes away: try three times.
  local try
  for try in 1 2 3; do
    rm -f "$base/log"
    as_pg "$bin/pg_ctl" -D "$dir" -l "$base/log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $base -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null && break
    if (( try < 3 )) && grep -q "Address already in use" "$base/log"; then
      echo "pg-test: 127.0.0.1:$port is busy; trying again in 2 s" >&2
      sleep 2
      continue
    fi
    tail -n 20 "$base/log" >&2
    # Who holds the port, for the next one to read this.
    ss -Htanp "( sport = :$port )" >&2 2>/dev/null || true
    exit 1
  done
  echo 1 >"$users"
  echo "$url"
}

stop() {
  local n
  n=$(( $(count) - 1 ))
  if (( n > 0 )) && running; then
    echo "$n" >"$users"
    echo "pg-test: still used by $n other run(s); left running" >&2
    return
  fi
  kill_it
}

kill_it() {
  if running; then as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$base" "$users"
}

cmd=${1:-}
case "$cmd" in
  start|stop|kill)
    # One start/stop at a time per port.
    exec 9>"$base.lock"
    flock 9
    case "$cmd" in start) start ;; stop) stop ;; kill) kill_it ;; esac
    ;;
  url)
    if running; then echo "$url"; else echo "pg-test: not running on port $port; run: ops/pg-test.sh start" >&2; exit 1; fi
    ;;
  *) echo "usage: $0 start|url|stop|kill   (PGTEST_PORT=$port)" >&2; exit 2 ;;
esac
