#!/usr/bin/env bash
# Create -> first HTTP 200 of the site through nginx, cold boots (warm pool off) against warm
# spares (pool on), in one run, with the per-step breakdown from the hostings' events.
#   ops/bench-create.sh [RUNS]        (default 3; prints a Markdown table)
set -euo pipefail
runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${VMW_BIN:-$root/target/debug/vm-webhoster}
image=${VMW_GUEST_IMAGE_DIR:-$root/data/images/current}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
results=$(mktemp)

run_mode() { # mode pool_size
  local mode=$1 pool=$2
  local data; data=$(mktemp -d); chmod 755 "$data"
  local app ng; app=$(free_port); ng=$(free_port)
  local prefix="vmwbench$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-"
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$app" --nginx-listen "127.0.0.1:$ng" --guest-image "$image" \
    --domain-prefix "$prefix" --pool-size "$pool" --max-hostings-per-user 5 \
    --http-port-base 48000 --ssh-port-base 49000 --log-level warn &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ng/api/v1/health" >/dev/null && break; sleep 0.2; done
  local H="http://127.0.0.1:$ng"
  for i in $(seq 1 "$runs"); do
    if [ "$pool" -gt 0 ]; then # wait for a ready spare, as a running service would have one
      until [ "$(sqlite3 "$data/vm-webhoster.sqlite" "select count(*) from hostings where state='spare' and operation is null")" -ge 1 ]; do sleep 1; done
    fi
    local u="b${mode}${i}$(date +%s)"
    curl -sf -X POST "$H/api/v1/auth/register" -H 'Content-Type: application/json' \
      -d "{\"email\":\"$u@example.com\",\"password\":\"correct horse\",\"username\":\"$u\"}" >/dev/null
    local tok; tok=$(curl -sf -X POST "$H/api/v1/auth/login" -d "username=$u&password=correct horse" | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
    local t0; t0=$(now)
    local id; id=$(curl -sf -X POST "$H/api/v1/host" -H "Authorization: Bearer $tok" | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
    until curl -sf "$H/$u/" 2>/dev/null | grep -q "Welcome to $u"; do sleep 0.05; done
    local t; t=$(echo "$(now) - $t0" | bc)
    curl -sf "$H/api/v1/hostings/$id/events" -H "Authorization: Bearer $tok" \
      | python3 -c "import sys,json; [print('$mode', e['step'], e['duration_ms']) for e in json.load(sys.stdin) if e['kind']=='step' and e['status']=='succeeded']" >> "$results"
    echo "$mode total $t" >> "$results"
    curl -sf -X DELETE "$H/api/v1/host?wait=120" -H "Authorization: Bearer $tok" >/dev/null || true
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  nginx -p "$data/nginx" -c "$data/nginx/nginx.conf" -s quit 2>/dev/null || true
  for d in $(virsh -c qemu:///system list --all --name | grep "^$prefix" || true); do
    virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine --managed-save "$d" >/dev/null 2>&1 || true
  done
  rm -rf "$data"
}

run_mode cold 0
run_mode warm 1
python3 - "$results" "$runs" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    mode, step, v = line.split()
    rows.setdefault(step, {}).setdefault(mode, []).append(float(v))
def fmt(vs, unit):
    if not vs: return "-"
    vs = sorted(vs)
    med = st.median(vs)
    return f"{med:.2f} s ({vs[0]:.2f}-{vs[-1]:.2f})" if unit == "s" else f"{med/1000:.2f} s"
print(f"| create -> HTTP 200 through nginx (N={sys.argv[2]} each) | before: cold boot (pool off) | after: warm pool |")
print("|---|---|---|")
print(f"| **total**, median (min-max) | {fmt(rows['total'].get('cold', []), 's')} | {fmt(rows['total'].get('warm', []), 's')} |")
for step in ["allocate_ports", "create_disk", "write_seed", "define_domain", "start_vm", "wait_ready", "add_route"]:
    r = rows.get(step, {})
    print(f"| step {step}, median | {fmt(r.get('cold', []), 'ms')} | {fmt(r.get('warm', []), 'ms')} |")
PY
rm -f "$results"
