#!/usr/bin/env bash
# The REST API against its own OpenAPI document: schemathesis (PyPI, pinned, in the venv
# ops/setup-toolchain.sh makes) generates requests from /api/v1/openapi.json (its examples,
# coverage, fuzzing and stateful phases: chains such as create -> get -> act -> delete) and
# checks every answer: no 5xx, the status documented, the content type documented, the body of
# the documented schema. 0 failures, or this fails.
#
# The server is the real binary (VMW_BIN) with hosting on libvirt's in-memory test driver
# (test:///default: domains that run nothing), a real nginx on a loopback port, a fresh SQLite
# database and a placeholder guest image; room for many sites per user and on the node, so the
# stateful phase gets past the quota to what it creates. Everything listens on and talks to 127.0.0.1 only:
# the one operation that would make the server reach another host (POST /admin/nodes, a new
# node's libvirt URI) is left out. The event stream is read for its first events
# (ops/schemathesis.toml, with the 507 a create answers once the node is drained).
#
# Settings: VMW_ST_EXAMPLES (cases per operation and phase, default 100: ~1-1.5 min on 2 cores), VMW_ST_SEED (default
# fixed, so CI is repeatable; `random` for a new one), VMW_ST (the schemathesis binary).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${VMW_BIN:-$root/target/debug/vm-webhoster}
st=${VMW_ST:-/opt/vmw-venv/bin/st}
examples=${VMW_ST_EXAMPLES:-100}
seed=${VMW_ST_SEED:-20261207}
[ -x "$st" ] || { echo "api-contract: schemathesis is not installed at $st (run ops/setup-toolchain.sh)" >&2; exit 1; }
[ -x "$bin" ] || { echo "api-contract: no server binary at $bin (make server)" >&2; exit 1; }

data=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
nginx_port=$(free_port)
# The VM forwards' and the SSH waker's port windows (5000 ports each, below the ephemeral range;
# nothing runs behind them under the test driver).
window=$((21000 + (RANDOM % 6) * 10))
mkdir -p "$data/images/current"
qemu-img create -q -f qcow2 "$data/images/current/base.qcow2" 64M
echo kernel > "$data/images/current/vmlinuz"
echo initrd > "$data/images/current/initrd.img"

"$bin" serve --data-dir "$data" --site-root "$data" --listen "127.0.0.1:$port" \
  --libvirt-uri test:///default --domain-type qemu --nginx-listen "127.0.0.1:$nginx_port" \
  --public-host 127.0.0.1 --domain-prefix "vmwst$$-" --pool-size 0 --no-golden --first-user-admin \
  --http-port-base "$window" --ssh-port-base "$((window + 5000))" --log-level "${VMW_LOG:-error}" \
  --max-hostings-per-user 100 --node-memory-mib 1048576 --node-disk-gib 65536 --tls off &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -f "$data/nginx/nginx.conf" ] && nginx -p "$data/nginx" -c "$data/nginx/nginx.conf" -s quit 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 200); do curl -sf "$base/api/v1/health" >/dev/null && break; sleep 0.1; done
curl -sf "$base/api/v1/health" >/dev/null || { echo "api-contract: the server did not start" >&2; exit 1; }

# An account for the authenticated operations (the first one administers the instance, so the
# admin operations are exercised too), and a hosting for the stateful phase to start from.
pass="contract test password"
curl -sf -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"contract@example.com\",\"username\":\"contract\",\"password\":\"$pass\"}" >/dev/null
token=$(curl -sf -X POST "$base/api/v1/auth/login" --data-urlencode "username=contract" --data-urlencode "password=$pass" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

cd "$data"
args=(--config-file "$root/ops/schemathesis.toml" run "$base/api/v1/openapi.json" --url "$base"
  -H "Authorization: Bearer $token"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
  --phases examples,coverage,fuzzing,stateful
  --max-examples "$examples" --request-timeout 30 --workers 2
  --exclude-operation-id admin_add_node
  --generation-database none --no-color --report junit --report-dir "$data/report")
[ "$seed" = random ] || args+=(--seed "$seed")
echo "api-contract: st ${args[*]/$token/<token>}"
set +e
"$st" "${args[@]}" > "$data/st.log" 2>&1
rc=$?
set -e
# Each phase's numbers, the summary and, on failure, each failure with its reproduction.
grep -v '^\s*$' "$data/st.log"
python3 - "$data/report" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
tests = failures = errors = 0
for f in glob.glob(sys.argv[1] + "/*.xml"):
    r = ET.parse(f).getroot()
    for s in ([r] if r.tag == "testsuite" else r.iter("testsuite")):
        tests += int(s.get("tests", 0)); failures += int(s.get("failures", 0)); errors += int(s.get("errors", 0))
print(f"api-contract: {tests} operations tested, {failures} with failures, {errors} with errors")
PY
[ $rc -eq 0 ] || { echo "api-contract: schemathesis found failures (exit $rc)" >&2; exit $rc; }
echo "api-contract: ok"
