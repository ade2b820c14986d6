#!/usr/bin/env bash
# A throwaway authoritative DNS server for tests: Debian's BIND 9 `named` on 127.0.0.1, its own
# named.conf, zones and TSIG key in DIR, dynamic updates (RFC 2136) allowed with that key.
#
#   ops/test-dns.sh start DIR [ZONE...]   prints eval-able lines:
#                                           DNS_SERVER=127.0.0.1:PORT
#                                           DNS_TSIG_KEY=DIR/tsig.key
#                                           DNS_TSIG_NAME=NAME
#                                           DNS_PID=PID
#   ops/test-dns.sh stop DIR              kills that named by its PID and waits until it is gone
#
# A ZONE is a zone file named `<zone>.zone` (`example.test.zone` serves `example.test`), or
# `<zone>=<file>`. Each is copied into DIR/zones (named writes its journal beside it), and takes
# updates signed with the key (`allow-update { key NAME; }`).
#
# How named runs: in the foreground (`-g`: logs to stderr, here DIR/named.log) but detached from
# this script, IPv4 only (`-4`), as the current user, named explicitly with `-u` (as root, named
# would otherwise keep root anyway; Debian's service drops to `bind`, which could not write DIR).
# No recursion, no root hints, no rndc channel (`controls { };`), every file it writes in DIR, so
# several servers run side by side. It listens on a free port (UDP and TCP) that this script picks
# and then checks: named keeps running when a port is taken, so the log is read for
# "address in use" and another port is tried (`reuseport no`, or it would share the port).
#
# AppArmor: Debian's profile for /usr/sbin/named lets it read /etc/bind and write only
# /var/cache/bind, /var/lib/bind and a few more. Where that profile is enforced, DIR must lie
# under /var/cache/bind (this script says so and fails otherwise); where AppArmor is off (the
# kernel has no /sys/kernel/security/apparmor), any DIR works.
#
# Settings: DNS_RECURSIVE=1 (also resolve, for loopback clients, names of its own zones through
# CNAMEs into its other zones; its root zone is a local empty one, so nothing leaves the host),
# DNS_TSIG_NAME (the key's name, default vmw-test-key), NAMED (default named),
# TSIG_KEYGEN (default tsig-keygen).
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin # named and tsig-keygen live in sbin, not always on a user's PATH

named_bin=${NAMED:-named}
keygen=${TSIG_KEYGEN:-tsig-keygen}
key_name=${DNS_TSIG_NAME:-vmw-test-key}

die() { echo "test-dns: $*" >&2; exit 1; }

usage() { die "usage: $0 start DIR [ZONE.zone | ZONE=FILE]... | stop DIR"; }

# True when the kernel enforces Debian's AppArmor profile for named.
apparmor_confines_named() {
  local profiles=/sys/kernel/security/apparmor/profiles
  [ -r "$profiles" ] && grep -Eq '^(named|/usr/sbin/named) \(enforce\)' "$profiles"
}

# A port free for both UDP and TCP on 127.0.0.1 (a DNS server needs both).
free_port() {
  python3 - <<'PY'
import socket
for _ in range(50):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        u.close()
        t.close()
    print(port)
    break
else:
    raise SystemExit("no free port")
PY
}

# Zone names are LDH labels (plus `_`), since they are written into named.conf.
valid_zone() { [[ "$1" =~ ^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$ ]]; }

write_conf() {
  local dir=$1 port=$2 conf=$1/named.conf
  {
    echo "include \"$dir/tsig.key\";"
    echo "options {"
    echo "  directory \"$dir\";"
    echo "  pid-file \"$dir/named.pid\";"
    echo "  session-keyfile \"$dir/session.key\";"
    echo "  managed-keys-directory \"$dir\";"
    echo "  dump-file \"$dir/named_dump.db\";"
    echo "  statistics-file \"$dir/named.stats\";"
    echo "  memstatistics-file \"$dir/named.memstats\";"
    echo "  listen-on port $port { 127.0.0.1; };"
    echo "  listen-on-v6 { none; };"
    if [ "${DNS_RECURSIVE:-}" = 1 ]; then
      # A resolver for its own zones only: it follows a CNAME from one of them into another
      # (an ACME server asks for www.example.test's address and needs the CNAME target's). The
      # root zone is a local empty one, so nothing is ever asked of the Internet's servers.
      echo "  recursion yes;"
      echo "  allow-recursion { 127.0.0.0/8; };"
    else
      echo "  recursion no;"
    fi
    echo "  allow-query { 127.0.0.0/8; };"
    echo "  allow-transfer { none; };"
    echo "  dnssec-validation no;"
    echo "  notify no;"
    echo "  automatic-interface-scan no;"
    # BIND 9.18 opens its sockets with SO_REUSEPORT: a second named on a taken port would share
    # it silently. Without it, the taken TCP port shows in the log as "address in use".
    echo "  reuseport no;"
    echo "};"
    echo "controls { };"
    if [ "${DNS_RECURSIVE:-}" = 1 ]; then
      printf '$TTL 60\n@ IN SOA root. root. 1 60 60 600 60\n@ IN NS root.\nroot. IN A 127.0.0.1\n' > "$dir/root.zone"
      echo "zone \".\" { type primary; file \"$dir/root.zone\"; };"
    fi
    local spec zone
    for spec in "${zones[@]}"; do
      zone=${spec%%=*}
      echo "zone \"$zone\" { type primary; file \"$dir/zones/$zone.zone\"; journal \"$dir/zones/$zone.zone.jnl\"; allow-update { key \"$key_name\"; }; };"
    done
  } > "$conf"
}

start() {
  local dir=$1; shift
  command -v "$named_bin" >/dev/null || die "named is not installed (Debian package bind9)"
  command -v "$keygen" >/dev/null || die "tsig-keygen is not installed (Debian package bind9)"
  valid_zone "$key_name" || die "DNS_TSIG_NAME must be LDH labels: $key_name"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  if apparmor_confines_named && [[ "$dir/" != /var/cache/bind/* ]]; then
    die "AppArmor enforces its profile on named, which then reads and writes only under /var/cache/bind: give a DIR there, not $dir"
  fi
  [ -e "$dir/named.run-pid" ] && kill -0 "$(cat "$dir/named.run-pid")" 2>/dev/null \
    && die "a named already runs for $dir (PID $(cat "$dir/named.run-pid")): stop it first"
  chmod 0700 "$dir"
  mkdir -p "$dir/zones"

  zones=()
  local arg zone file
  for arg in "$@"; do
    if [[ "$arg" == *=* ]]; then zone=${arg%%=*}; file=${arg#*=}
    else file=$arg; zone=$(basename "$arg"); zone=${zone%.zone}; fi
    zone=${zone%.}
    valid_zone "$zone" || die "not a zone name: $zone (from $arg)"
    [ -r "$file" ] || die "cannot read zone file $file"
    cp "$file" "$dir/zones/$zone.zone"
    rm -f "$dir/zones/$zone.zone.jnl"
    zones+=("$zone=$file")
  done

  ( umask 077; "$keygen" -a hmac-sha256 "$key_name" > "$dir/tsig.key" )

  local attempt port pid
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    write_conf "$dir" "$port"
    : > "$dir/named.log"
    # setsid: named keeps none of the caller's terminal or process group; its output goes to the
    # log, so a caller reading this script's stdout sees it end.
    setsid "$named_bin" -g -4 -u "$(id -un)" -c "$dir/named.conf" </dev/null >>"$dir/named.log" 2>&1 &
    pid=$!
    echo "$pid" > "$dir/named.run-pid"
    local i
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      grep -q 'running$' "$dir/named.log" && break
      sleep 0.1
    done
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$dir/named.run-pid"
      die "named did not start; its log ($dir/named.log):
$(tail -n 30 "$dir/named.log")"
    fi
    if grep -q 'not loaded due to errors' "$dir/named.log"; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      rm -f "$dir/named.run-pid"
      die "a zone did not load; named's log ($dir/named.log):
$(grep -E '^[^ ]+ [^ ]+ (zone |dns_)' "$dir/named.log" | tail -n 20)"
    fi
    if grep -q 'running$' "$dir/named.log" && ! grep -qi 'address in use' "$dir/named.log"; then
      echo "DNS_SERVER=127.0.0.1:$port"
      echo "DNS_TSIG_KEY=$dir/tsig.key"
      echo "DNS_TSIG_NAME=$key_name"
      echo "DNS_PID=$pid"
      return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$dir/named.run-pid"
  done
  die "named found no free port after 5 tries; last log ($dir/named.log):
$(tail -n 30 "$dir/named.log")"
}

stop() {
  local dir=$1 pidfile=$1/named.run-pid pid i
  [ -e "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || die "not a PID in $pidfile: $pid"
  if kill -TERM "$pid" 2>/dev/null; then
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}

[ $# -ge 2 ] || usage
cmd=$1; shift
case "$cmd" in
  start) start "$@" ;;
  stop) [ $# -eq 1 ] || usage; stop "$1" ;;
  *) usage ;;
esac
