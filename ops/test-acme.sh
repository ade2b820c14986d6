#!/usr/bin/env bash
# A throwaway ACME CA for tests: Debian's Pebble on free loopback ports, and (unless PEBBLE_DNS
# names a resolver) a pebble-challtestsrv DNS server that answers 127.0.0.1 for every name.
#
#   ops/test-acme.sh start DIR   start both, print the shell lines to eval (also in DIR/env)
#   ops/test-acme.sh env DIR     print those lines again
#   ops/test-acme.sh stop DIR    stop what start started (by the PIDs in DIR)
#
# Inputs (environment): PEBBLE_HTTP_PORT (required for start: where Pebble sends HTTP-01
# requests), PEBBLE_VALIDITY_SECS (certificate lifetime), PEBBLE_DNS (host:port of a resolver
# to use instead of challtestsrv, e.g. a test named), PEBBLE_OCSP_URL (the OCSP responder its
# certificates name).
# Output: PEBBLE_DIRECTORY, PEBBLE_CA (PEM signing Pebble's HTTPS), PEBBLE_MGMT (roots at
# $PEBBLE_MGMT/roots/0, intermediates at /intermediates/0), CHALLTESTSRV_MGMT (empty with
# PEBBLE_DNS), CHALLTESTSRV_DNS.
# Everything listens on 127.0.0.1 only.
set -euo pipefail

usage() { echo "usage: $0 start|stop|env DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until https URL $1 answers (trusting $2), or fails after ~10 s.
wait_https() {
    for _ in $(seq 100); do
        curl -fsS --max-time 1 --cacert "$2" -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$1 did not come up; logs in $dir" >&2
    return 1
}

wait_tcp() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "127.0.0.1:$1 did not come up; logs in $dir" >&2
    return 1
}

stop() {
    # Both get TERM at once (each takes a second or two to exit), then KILL after 5 s.
    local pids=()
    for pidfile in "$dir"/pebble.pid "$dir"/challtestsrv.pid; do
        [ -f "$pidfile" ] || continue
        pids+=("$(cat "$pidfile")")
        rm -f "$pidfile"
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 1 ] || break
        sleep 0.1
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
}

case $cmd in
env)
    cat "$dir/env"
    ;;
stop)
    stop
    ;;
start)
    : "${PEBBLE_HTTP_PORT:?set PEBBLE_HTTP_PORT to the port that serves HTTP-01 tokens}"
    command -v pebble >/dev/null || { echo "pebble is not installed (apt-get install pebble)" >&2; exit 3; }
    mkdir -p "$dir"
    chmod 700 "$dir"
    trap 'stop' ERR

    # Pebble's own HTTPS: a CA and a leaf for 127.0.0.1 and localhost.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=test-acme HTTPS CA" -keyout "$dir/https-ca.key" -out "$dir/https-ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$dir/https.key" -out "$dir/https.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/https.ext"
    openssl x509 -req -in "$dir/https.csr" -CA "$dir/https-ca.pem" -CAkey "$dir/https-ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/https.ext" -out "$dir/https.pem" 2>/dev/null

    acme_port=$(free_port)
    mgmt_port=$(free_port)
    tls_port=$(free_port)
    validity=""
    [ -n "${PEBBLE_VALIDITY_SECS:-}" ] && validity=", \"certificateValidityPeriod\": $PEBBLE_VALIDITY_SECS"
    cat > "$dir/pebble.json" <<JSON
{
  "pebble": {
    "listenAddress": "127.0.0.1:$acme_port",
    "managementListenAddress": "127.0.0.1:$mgmt_port",
    "certificate": "$dir/https.pem",
    "privateKey": "$dir/https.key",
    "httpPort": $PEBBLE_HTTP_PORT,
    "tlsPort": $tls_port,
    "ocspResponderURL": "${PEBBLE_OCSP_URL:-}",
    "externalAccountBindingRequired": false$validity
  }
}
JSON

    chall_mgmt=""
    chall_dns=""
    dns=${PEBBLE_DNS:-}
    if [ -z "$dns" ]; then
        dns_port=$(free_port)
        chall_port=$(free_port)
        pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
            -dns01 "127.0.0.1:$dns_port" -http01 "" -https01 "" -tlsalpn01 "" \
            -management "127.0.0.1:$chall_port" </dev/null >"$dir/challtestsrv.log" 2>&1 &
        echo $! > "$dir/challtestsrv.pid"
        dns="127.0.0.1:$dns_port"
        chall_mgmt="http://127.0.0.1:$chall_port"
        chall_dns=$dns
        wait_tcp "$chall_port"
    fi

    # NOSLEEP: validate at once; NONCEREJECT=0: no random badNonce; AUTHZREUSE=0: every order
    # validates afresh (a test of a failing challenge must not inherit an earlier success).
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
        pebble -config "$dir/pebble.json" -dnsserver "$dns" </dev/null >"$dir/pebble.log" 2>&1 &
    echo $! > "$dir/pebble.pid"
    wait_https "https://127.0.0.1:$acme_port/dir" "$dir/https-ca.pem"
    wait_https "https://127.0.0.1:$mgmt_port/roots/0" "$dir/https-ca.pem"

    cat > "$dir/env" <<ENV
PEBBLE_DIRECTORY=https://127.0.0.1:$acme_port/dir
PEBBLE_CA=$dir/https-ca.pem
PEBBLE_MGMT=https://127.0.0.1:$mgmt_port
CHALLTESTSRV_MGMT=$chall_mgmt
CHALLTESTSRV_DNS=$chall_dns
ENV
    cat "$dir/env"
    ;;
*)
    usage
    ;;
esac
