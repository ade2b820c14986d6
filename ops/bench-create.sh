#!/usr/bin/env bash
# Create -> first HTTP 200 of the site through nginx, cold boots (warm pool off) against warm
# spares (pool on), in one run, with the per-step breakdown from the hostings' events.
#   ops/bench-create.sh [RUNS]        (default 3; prints a Markdown table)
set -euo pipefail
runs=${1:-3}
. "$(dirname "$0")/lib-bench.sh"
bin=${VMW_BIN:-$root/target/debug/vm-webhoster}
now() { date +%s.%N; }
results=$(mktemp)

# Registers a user and prints a login token for it.
register() { # H username
  curl -sf -X POST "$1/api/v1/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$2@example.com\",\"password\":\"correct horse\",\"username\":\"$2\"}" >/dev/null
  curl -sf -X POST "$1/api/v1/auth/login" -d "username=$2&password=correct horse" | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])'
}

# Waits until the data dir's warm pool holds N ready spares (none still booting).
wait_spares() { # data N
  until [ "$(sqlite3 "$1/vm-webhoster.sqlite" "select count(*) from hostings where state='spare' and operation is null")" -ge "$2" ]; do sleep 1; done
}

# One create and its wait for the welcome page through nginx; prints "total SECONDS" and the
# succeeded steps' durations ("STEP MS") for the results file.
create_and_time() { # H username token
  local t0; t0=$(now)
  local id; id=$(curl -sf -X POST "$1/api/v1/host" -H "Authorization: Bearer $3" | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
  until curl -sf "$1/$2/" 2>/dev/null | grep -q "Welcome to $2"; do sleep 0.05; done
  echo "total $(echo "$(now) - $t0" | bc)"
  curl -sf "$1/api/v1/hostings/$id/events" -H "Authorization: Bearer $3" \
    | python3 -c "import sys,json; [print(e['step'], e['duration_ms']) for e in json.load(sys.stdin) if e['kind']=='step' and e['status']=='succeeded']"
}

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
  # One at a time; with the pool on, each starts with the pool full (no spare booting beside it).
  for i in $(seq 1 "$runs"); do
    [ "$pool" -gt 0 ] && wait_spares "$data" "$pool"
    local u="b${mode}${i}$(date +%s)"
    local tok; tok=$(register "$H" "$u")
    create_and_time "$H" "$u" "$tok" | sed "s/^/$mode /" >> "$results"
    curl -sf -X DELETE "$H/api/v1/host?wait=120" -H "Authorization: Bearer $tok" >/dev/null || true
  done
  # Three users pressing create at the same moment.
  [ "$pool" -gt 0 ] && wait_spares "$data" "$pool"
  local users=() toks=() pids=()
  for i in 1 2 3; do
    users+=("c${mode}${i}$(date +%s)"); toks+=("$(register "$H" "${users[-1]}")")
  done
  for i in 0 1 2; do
    ( create_and_time "$H" "${users[$i]}" "${toks[$i]}" | grep '^total' | sed "s/^total/$mode together/" >> "$results" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  for i in 0 1 2; do
    curl -sf -X DELETE "$H/api/v1/host?wait=120" -H "Authorization: Bearer ${toks[$i]}" >/dev/null || true
  done
  teardown_server "$pid" "$data" "$prefix"
}

# Steady state on one running site (cold server, pool off): SSH, stop -> start, idle cost,
# latency under load with wrk, and what nginx adds in front of a VM.
steady() {
  local data; data=$(mktemp -d); chmod 755 "$data"
  local app ng; app=$(free_port); ng=$(free_port)
  local prefix="vmwbench$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-"
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$app" --nginx-listen "127.0.0.1:$ng" --guest-image "$image" \
    --domain-prefix "$prefix" --pool-size 0 --http-port-base 48500 --ssh-port-base 49500 --log-level warn &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ng/api/v1/health" >/dev/null && break; sleep 0.2; done
  local H="http://127.0.0.1:$ng" u="steady$(date +%s)"
  ssh-keygen -q -t ed25519 -N '' -f "$data/key"
  local tok; tok=$(register "$H" "$u")
  local t0; t0=$(now)
  curl -sf -X POST "$H/api/v1/host" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    -d "{\"ssh_public_key\": \"$(cat "$data/key.pub")\"}" >/dev/null
  local port=""
  until [ -n "$port" ] && ssh -i "$data/key" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=5 ubuntu@127.0.0.1 true 2>/dev/null; do
    sleep 0.2
    port=$(curl -sf "$H/api/v1/host" -H "Authorization: Bearer $tok" | python3 -c 'import sys,json;print(json.load(sys.stdin)["ssh_port"] or "")')
  done
  echo "steady create_to_ssh $(echo "$(now) - $t0" | bc)" >> "$results"
  curl -sf "$H/api/v1/host?wait=300" -H "Authorization: Bearer $tok" >/dev/null
  curl -sf -X POST "$H/api/v1/host/stop?wait=120" -H "Authorization: Bearer $tok" >/dev/null
  t0=$(now)
  curl -sf -X POST "$H/api/v1/host/start" -H "Authorization: Bearer $tok" >/dev/null
  until curl -sf "$H/$u/" 2>/dev/null | grep -q "Welcome to $u"; do sleep 0.05; done
  echo "steady stop_start_to_http $(echo "$(now) - $t0" | bc)" >> "$results"
  sleep 20 # let it settle to idle
  local qpid; qpid=$(pgrep -f "guest=${prefix}" | head -n1)
  local rss; rss=$(ps -o rss= -p "$qpid")
  local c1 c2; c1=$(awk '{print $14+$15}' "/proc/$qpid/stat"); sleep 10; c2=$(awk '{print $14+$15}' "/proc/$qpid/stat")
  echo "steady idle_rss_mib $(echo "$rss / 1024" | bc)" >> "$results"
  echo "steady idle_cpu_pct $(echo "scale=1; ($c2 - $c1) / $(getconf CLK_TCK) * 10" | bc)" >> "$results"
  echo "steady fit_idle_vms $(( $(awk '/MemAvailable/{print $2}' /proc/meminfo) / rss ))" >> "$results"
  ulimit -n 65536 2>/dev/null || true
  # The VM's raw HTTP forward listens on the HTTP forward address (--http-forward-bind), not 127.0.0.1.
  local http; http=$(curl -sf "$H/api/v1/host" -H "Authorization: Bearer $tok" | python3 -c 'import sys,json;print(json.load(sys.stdin)["http_port"])')
  # The dashboard as a logged-in person sees it: a browser session from the log-in form.
  curl -sf -c "$data/jar" -o /dev/null -X POST "$H/api/fn/login" --data-urlencode "login=$u" --data-urlencode "password=correct horse"
  local cookie; cookie=$(awk '$6 == "vmw_session" {print $7}' "$data/jar")
  curl -sf -H "Cookie: vmw_session=$cookie" "$H/dashboard" | grep -q "$u" || echo "bench: warning: the dashboard did not show $u's hosting (rows below measure something else)" >&2
  for c in 10 100 1000; do
    for target in "api_host|$H/api/v1/host|Authorization: Bearer $tok" "dashboard|$H/dashboard|Cookie: vmw_session=$cookie" \
                  "home_page|$H/|X-Bench: 1" "site_via_nginx|$H/$u/|X-Bench: 1" "site_direct|http://${VMW_HTTP_FORWARD_BIND:-127.0.0.2}:$http/|X-Bench: 1"; do
      local name=${target%%|*} rest=${target#*|}
      local url=${rest%%|*} header=${rest#*|}
      wrk -t2 -c "$c" -d5s --latency -H "$header" "$url" > "$data/wrk.txt" 2>&1 || true
      python3 - "$data/wrk.txt" "$name" "$c" >> "$results" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)\b", v)
    return float(m[1]) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m[2]] if m else float("nan")
# The latency distribution's own lines ("     50%   12.54ms"), not a "+/- Stdev" cell ending in 50%.
p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M); p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M); rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"load {sys.argv[2]}@{sys.argv[3]} {ms(p50[1]) if p50 else 'nan'} {ms(p99[1]) if p99 else 'nan'} {rps[1] if rps else 'nan'} {non2xx[1] if non2xx else 0}")
PY
    done
  done
  curl -sf -X DELETE "$H/api/v1/host?wait=120" -H "Authorization: Bearer $tok" >/dev/null || true
  teardown_server "$pid" "$data" "$prefix"
}

run_mode cold 0
run_mode warm 3
steady
python3 - "$results" "$runs" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[0] in ("steady", "load"):
        continue
    mode, step, v = parts
    rows.setdefault(step, {}).setdefault(mode, []).append(float(v))
def fmt(vs, unit):
    if not vs: return "-"
    vs = sorted(vs)
    med = st.median(vs)
    return f"{med:.2f} s ({vs[0]:.2f}-{vs[-1]:.2f})" if unit == "s" else f"{med/1000:.2f} s"
print(f"| create -> HTTP 200 through nginx (N={sys.argv[2]} each) | before: cold boot (pool off) | after: warm pool |")
print("|---|---|---|")
print(f"| **total**, one create alone, median (min-max) | {fmt(rows['total'].get('cold', []), 's')} | {fmt(rows['total'].get('warm', []), 's')} |")
print(f"| **total**, 3 creates at once, median (min-max) | {fmt(rows.get('together', {}).get('cold', []), 's')} | {fmt(rows.get('together', {}).get('warm', []), 's')} |")
for step in ["allocate_ports", "create_disk", "write_seed", "define_domain", "start_vm", "wait_ready", "add_route"]:
    r = rows.get(step, {})
    print(f"| step {step}, median | {fmt(r.get('cold', []), 'ms')} | {fmt(r.get('warm', []), 'ms')} |")
steady = {}
load = []
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[0] == "steady":
        steady[parts[1]] = parts[2]
    elif parts[0] == "load":
        load.append(parts[1:])
print()
print("| one running site (cold boot, pool off) | value |")
print("|---|---|")
for k, label, unit in [("create_to_ssh", "create -> SSH login works", " s"), ("stop_start_to_http", "stop -> start -> HTTP 200", " s"),
                       ("idle_rss_mib", "idle VM: host RSS of its QEMU", " MiB"), ("idle_cpu_pct", "idle VM: CPU (of one core, 10 s)", " %"),
                       ("fit_idle_vms", "idle VMs that fit in MemAvailable", "")]:
    if k in steady:
        v = steady[k]
        print(f"| {label} | {float(v):.1f}{unit} |" if unit.strip() in ('s', '%') else f"| {label} | {v}{unit} |")
print()
print("| wrk, 5 s, 2 threads | connections | p50 ms | p99 ms | requests/s | non-2xx |")
print("|---|---|---|---|---|---|")
for name_c, p50, p99, rps, bad in load:
    name, c = name_c.split("@")
    print(f"| {name} | {c} | {float(p50):.2f} | {float(p99):.2f} | {float(rps):.0f} | {bad} |")
PY
rm -f "$results"
