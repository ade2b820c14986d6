#!/usr/bin/env bash
# Instant VMs, before against after, from one run on the release build:
#   after  = the defaults (golden snapshot, 6 paused + 2 saved spares, stop saves the VM),
#   before = `--no-golden --pool-paused 0 --pool-size 2` (what the product did before them).
#   BENCH_MODES picks the columns (default "after before"); `no-yield` is the defaults with
#   `--spare-cpu-shares 1024` (refills at the same CPU weight as users' VMs), `full-cpu-check`
#   the defaults with `--full-cpu-check` (libvirt's per-property CPU probe on every start),
#   `one-connection` the defaults with `--libvirt-connections 1`.
# Each mode starts its own server (own data dir, nginx port, libvirt domain prefix) and measures:
#   A. 10 creates in a row, each by a new user, create -> the welcome page answers 200 through
#      nginx (no waiting for the pool to refill between them);
#   B. 12 creates at once by 4 users (3 each): time until all 12 are running, and how many failed;
#   C. stop -> start -> HTTP 200 (3 times), and power_off -> start -> HTTP 200 (a boot) once;
#   the per-step medians from the hostings' events, and /proc/loadavg beside each phase.
#   ops/bench-instant.sh            (prints Markdown tables; VMW_BIN overrides the binary)
set -euo pipefail
. "$(dirname "$0")/lib-bench.sh"
modes=${BENCH_MODES:-after before}
results=$(mktemp)
started=() # "pid data prefix" of every server this script started

cleanup() {
  for s in "${started[@]}"; do
    # shellcheck disable=SC2086
    teardown_server $s
  done
  started=()
  rm -f "$results"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

spares() { sqlite3 "$1/vm-webhoster.sqlite" "select count(*) from hostings where state='spare' and operation is null" 2>/dev/null || echo 0; }
# Waits until the data dir's pool holds N ready spares (none still booting), and, with golden=1,
# the golden snapshot exists. Gives up after TIMEOUT seconds.
wait_ready_pool() { # data N golden timeout
  local t0=$SECONDS
  until [ "$(spares "$1")" -ge "$2" ] && { [ "$3" = 0 ] || find "$1/golden" -name golden.json 2>/dev/null | grep -q .; }; do
    if (( SECONDS - t0 > $4 )); then echo "bench: pool of $1 not ready after $4 s ($(spares "$1") spares)" >&2; return 1; fi
    sleep 1
  done
  echo "bench: pool ready ($(spares "$1") spares) after $(( SECONDS - t0 )) s" >&2
}

run_mode() { # mode
  local mode=$1 flags spares_want golden ports
  case $mode in
    # Forward ports below Linux's ephemeral range (32768+): a port there can be taken by any
    # client socket between its lease and QEMU's bind (Run D lost 2 of 12 clones that way).
    after)  flags=(); spares_want=8; golden=1; ports=26000 ;;
    before) flags=(--no-golden --pool-paused 0 --pool-size 2); spares_want=2; golden=0; ports=29000 ;;
    # The defaults but spares at the normal CPU weight: a refill does not yield to creates.
    no-yield) flags=(--spare-cpu-shares 1024); spares_want=8; golden=1; ports=23000 ;;
    # The defaults but libvirt's own CPU check (~400 qom-get calls on every start and restore).
    full-cpu-check) flags=(--full-cpu-check); spares_want=8; golden=1; ports=20000 ;;
    # The defaults but one libvirt connection (libvirtd serves 5 of its calls at a time).
    one-connection) flags=(--libvirt-connections 1); spares_want=8; golden=1; ports=17000 ;;
    *) echo "bench: unknown mode '$mode' (after, before, no-yield, full-cpu-check, one-connection)" >&2; return 2 ;;
  esac
  local data; data=$(mktemp -d /tmp/vmwbench.XXXXXX); chmod 755 "$data"
  local app ng; app=$(free_port); ng=$(free_port)
  local prefix="vmwb$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-"
  echo "bench: $mode: $bin serve ${flags[*]} (data $data, nginx 127.0.0.1:$ng, prefix $prefix)" >&2
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$app" --nginx-listen "127.0.0.1:$ng" --guest-image "$image" \
    --site-root "$site" --domain-prefix "$prefix" --max-hostings-per-user 4 \
    --signups-per-address 1000 --signups-per-hour 1000 --first-user-admin \
    --http-port-base "$ports" --ssh-port-base $(( ports + 1000 )) --log-level warn "${flags[@]}" >"$data.log" 2>&1 &
  local pid=$!
  started+=("$pid $data $prefix")
  local H="http://127.0.0.1:$ng"
  for _ in $(seq 1 150); do curl -sf "$H/api/v1/health" >/dev/null && break; sleep 0.2; done
  local t0=$SECONDS ok=1
  if wait_ready_pool "$data" "$spares_want" "$golden" 900; then
    echo "$mode ready_s $(( SECONDS - t0 ))" >> "$results"
  else
    ok=0
  fi
  [ "$ok" = 1 ] && BENCH_WAIT_POOL="$data $spares_want" python3 - "$H" "$mode" "$results" <<'PY' || echo "bench: $mode: the measurement failed (rows above are partial)" >&2
import json, os, statistics, subprocess, sys, threading, time, urllib.error, urllib.parse, urllib.request
from bench_http import Api
H, mode, results = sys.argv[1:4]
data, want = os.environ["BENCH_WAIT_POOL"].split()
tag = os.urandom(2).hex()
out = open(results, "a")
def rec(*parts): out.write(" ".join(str(p) for p in (mode,) + parts) + "\n"); out.flush()
def loadavg(): return " ".join(open("/proc/loadavg").read().split()[:3])
def log(*a): print(f"bench: {mode}:", *a, file=sys.stderr, flush=True)

api = Api(H, timeout=60)
call, register = api.call, api.register

def get(path, tok, tries=5):
    for i in range(tries):
        try: return call("GET", path, tok)
        except Exception as e:
            if i == tries - 1: raise
            log(f"GET {path}: {e} (retrying)"); time.sleep(1)

def site_ok(slug):
    try:
        with urllib.request.urlopen(f"{H}/{slug}/", timeout=10) as r:
            return r.status == 200 and f"Welcome to {slug}" in r.read().decode(errors="replace")
    except Exception:
        return False

def wait_site(slug, limit):
    end = time.time() + limit
    while time.time() < end:
        if site_ok(slug): return True
        time.sleep(0.05)
    return False

def steps_since(hid, tok, t0):
    """The succeeded steps of hosting hid that finished after t0 (this create's, not the spare's making)."""
    evs = get(f"/api/v1/hostings/{hid}/events", tok)
    return [(e["step"], e["duration_ms"]) for e in evs
            if e["kind"] == "step" and e["status"] == "succeeded" and e["created_at"] >= t0 * 1000 - 50]

def path_of(steps, paused_before):
    """How the create got its VM: a clone of the golden snapshot, a cold boot, or a claimed spare
    (a paused one is claimed first when one was ready; else a saved one)."""
    d = dict(steps)
    if "clone_vm" in d: return "clone"
    if "wait_ready" in d: return "boot"
    return "paused" if paused_before > 0 else "saved"

def spares(tier=None):
    where = f" and spare_tier='{tier}'" if tier else ""
    return int(subprocess.run(["sqlite3", f"{data}/vm-webhoster.sqlite",
        "select count(*) from hostings where state='spare' and operation is null" + where], capture_output=True, text=True).stdout.strip() or 0)

def wait_pool(limit=900):
    t = time.time()
    while spares() < int(want) and time.time() - t < limit: time.sleep(1)
    log(f"pool {spares()}/{want} after {time.time() - t:.0f} s")

def settle(hid, tok, state, limit=300):
    t = time.time()
    while time.time() - t < limit:
        h = get(f"/api/v1/hostings/{hid}", tok)
        if h["operation"] is None and (h["state"] == state or time.time() - t > 2):
            if h["state"] != state: log(f"ended {h['state']}: {h['state_reason']}")
            return h["state"] == state
        time.sleep(0.1)
    return False
# Users first (password hashing is not part of a create).
N_SEQ, N_USERS, N_EACH = (int(os.environ.get(k, v)) for k, v in (("BENCH_SEQ", 10), ("BENCH_USERS", 4), ("BENCH_EACH", 3)))
seq_users = [(f"s{tag}{i}", register(f"s{tag}{i}")) for i in range(N_SEQ)]
par_users = [(f"p{tag}{i}", register(f"p{tag}{i}")) for i in range(N_USERS)]

# A. 10 creates in a row, no waiting for the pool to refill between them.
rec("load A", loadavg())
first = None
for i, (u, tok) in enumerate(seq_users):
    paused_before = spares("paused")
    t0 = time.time()
    try:
        h = call("POST", "/api/v1/host", tok, body={})
        ok = wait_site(u, 600)
    except Exception as e:
        log(f"create {i + 1} failed: {e}"); ok = False; h = None
    dt = time.time() - t0
    if not ok:
        rec("seq_fail", i + 1); log(f"create {i + 1} ({u}) did not answer"); continue
    first = first or (h["id"], u, tok)
    settle(h["id"], tok, "running")  # the last step's event (add_route's check) lands after the first 200
    steps = steps_since(h["id"], tok, t0)
    rec("seq", f"{dt:.3f}", path_of(steps, paused_before))
    for s, ms in steps: rec("step", s, ms)
    log(f"create {i + 1}: {dt:.2f} s via {path_of(steps, paused_before)}: " + ", ".join(f"{s} {ms}" for s, ms in steps))
rec("load A_end", loadavg())

# B. 12 creates at once by 4 users, 3 each.
wait_pool()
rec("load B", loadavg())
ids, fails, lock = {}, [0], threading.Lock()
go = threading.Barrier(N_USERS * N_EACH)
def create(u, tok, k):
    go.wait()
    try:
        h = call("POST", "/api/v1/hostings", tok, body={"slug": f"{u}x{k}"})
        with lock: ids[h["id"]] = (tok, h["slug"])
    except Exception as e:
        with lock: fails[0] += 1
        log(f"parallel create {u}x{k} refused: {e}")
threads = [threading.Thread(target=create, args=(u, tok, k)) for u, tok in par_users for k in range(N_EACH)]
t0 = time.time()
for t in threads: t.start()
for t in threads: t.join()
running, http, failed = {}, {}, set()
while time.time() - t0 < 1500:
    for u, tok in par_users:
        for h in get("/api/v1/hostings", tok):
            if h["id"] not in ids: continue
            if h["state"] == "running" and h["id"] not in running: running[h["id"]] = time.time() - t0
            if h["state"] == "failed" and h["id"] not in failed:
                failed.add(h["id"]); log(f"parallel {h['slug']} failed: {h['state_reason']}")
    for hid in running:
        if hid not in http and site_ok(ids[hid][1]): http[hid] = time.time() - t0
    if len(running) + len(failed) >= len(ids) and len(http) >= len(running): break
    time.sleep(0.25)
t_all_running = max(running.values()) if running else float("nan")
t_all_http = max(http.values()) if http else float("nan")
rec("par", f"{t_all_running:.3f}", f"{t_all_http:.3f}", len(running), fails[0] + len(failed) + (len(ids) - len(running) - len(failed)))
for hid in running: rec("par_one", f"{running[hid]:.3f}")
for hid, (tok, slug) in ids.items():
    if hid in running: settle(hid, tok, "running", 60)
    for s, ms in steps_since(hid, tok, t0): rec("pstep", s, ms)
log(f"12 at once: all running after {t_all_running:.1f} s, all 200 after {t_all_http:.1f} s, "
    f"{len(running)} running, {fails[0]} refused, {len(failed)} failed")
rec("load B_end", loadavg())

# C. stop -> start -> 200 (a saved VM restored), 3 times; power_off -> start -> 200 once.
wait_pool()
rec("load C", loadavg())
if first:
    hid, slug, tok = first
    for what, n in (("stop", 3), ("power_off", 1)):
        for _ in range(n):
            try:
                call("POST", f"/api/v1/hostings/{hid}/{what}", tok)
            except urllib.error.HTTPError as e:
                log(f"POST .../{what}: {e} (this server has no such action; skipped)"); rec("restart_na", what); break
            if not settle(hid, tok, "stopped"): log(f"{what}: never stopped"); rec("restart_fail", what); continue
            t0 = time.time()
            call("POST", f"/api/v1/hostings/{hid}/start", tok)
            ok = wait_site(slug, 300)
            dt = time.time() - t0
            rec("restart" if ok else "restart_fail", what, f"{dt:.3f}")
            log(f"{what} -> start -> 200: {dt:.2f} s" + ("" if ok else " (no answer)"))
            for s, ms in steps_since(hid, tok, t0): rec("rstep", what, s, ms)
rec("load C_end", loadavg())
PY
  echo "bench: $mode: the server's warnings and errors (last 30 lines):" >&2
  grep -v '^\s*$' "$data.log" | tail -n 30 | sed 's/^/  | /' >&2 || true
  teardown_server "$pid" "$data" "$prefix"
  started=("${started[@]:0:${#started[@]}-1}")
  rm -f "$data.log"
}

when=$(date -u '+%Y-%m-%d %H:%M UTC'); commit=$(git -C "$root" describe --always --dirty)
for m in $modes; do run_mode "$m"; done
echo "bench: raw results:" >&2; sed 's/^/  /' "$results" >&2
python3 - "$results" "$when" "$commit" "$bin" <<'PY'
import os, statistics as st, sys
res, when, commit, binary = sys.argv[1:5]
d = {}
for line in open(res):
    p = line.split()
    d.setdefault(p[0], []).append(p[1:])
known = ("before", "no-yield", "full-cpu-check", "one-connection", "after")
modes = [m for m in known if m in d] + [m for m in d if m not in known]
def rows(m, k): return [r[1:] for r in d[m] if r[0] == k]
def med(v): return f"{st.median(v):.2f} s" if v else "-"
def worst(v): return f"{max(v):.2f} s" if v else "-"
print(f"Date {when}, commit {commit}, binary {binary}, {os.cpu_count()} cores")
print()
print("| | " + " | ".join(f"{m}" for m in modes) + " |")
print("|---|" + "---|" * len(modes))
def line(label, f): print(f"| {label} | " + " | ".join(f(m) for m in modes) + " |")
seq = {m: [float(r[0]) for r in rows(m, "seq")] for m in modes}
line("10 in a row: create -> 200 through nginx, each", lambda m: " / ".join(f"{v:.2f}" for v in seq[m]) + " s")
line("10 in a row: how each got its VM (paused/saved spare, clone, boot)", lambda m: " / ".join(r[1] for r in rows(m, "seq")))
line("10 in a row: p50", lambda m: med(seq[m]))
line("10 in a row: worst", lambda m: worst(seq[m]))
line("10 in a row: failed", lambda m: str(len(rows(m, "seq_fail"))))
def par(m, i):
    r = rows(m, "par")
    return r[0][i] if r else "nan"
line("12 at once (4 users x 3): until all running", lambda m: f"{float(par(m, 0)):.2f} s")
line("12 at once: until all answer 200 through nginx", lambda m: f"{float(par(m, 1)):.2f} s")
line("12 at once: running / failed", lambda m: f"{par(m, 2)} / {par(m, 3)}")
line("12 at once: each one's time to running, p50", lambda m: med([float(r[0]) for r in rows(m, "par_one")]))
for what in ("stop", "power_off"):
    line(f"{what} -> start -> 200 through nginx" + (" (3 times)" if what == "stop" else " (boots)"),
         lambda m: "not in the REST API" if any(r[0] == what for r in rows(m, "restart_na")) else
         " / ".join(f"{float(r[1]):.2f}" for r in rows(m, "restart") if r[0] == what) + " s"
         + (f" ({len([r for r in rows(m, 'restart_fail') if r[0] == what])} failed)" if any(r[0] == what for r in rows(m, "restart_fail")) else ""))
line("server start -> pool (and golden) ready", lambda m: f"{rows(m, 'ready_s')[0][0]} s")
for ph in ("A", "B", "C"):
    line(f"load average at phase {ph} start / end", lambda m: " / ".join(
        "`" + " ".join(r[1:]) + "`" for r in rows(m, "load") if r[0] in (ph, ph + "_end")))
print()
print("Per step, median ms (n) from the events: the 10 in a row; the 12 at once; start after stop / after power_off")
print()
kinds = [("step", "10 in a row"), ("pstep", "12 at once")]
print("| step | " + " | ".join(f"{m}: {k}" for m in modes for _, k in kinds) + " | " + " | ".join(f"{m}: start after {w}" for m in modes for w in ("stop", "power_off")) + " |")
print("|---|" + "---|" * (len(modes) * 4))
order = ["allocate_ports", "create_disk", "clone_vm", "write_seed", "define_domain", "start_vm", "reidentify", "wait_ready", "add_route", "pause_spare", "save_spare"]
seen = {r[0] for m in modes for k, _ in kinds for r in rows(m, k)} | {r[1] for m in modes for r in rows(m, "rstep")}
def cell(v): return f"{st.median(v):.0f} ({len(v)})" if v else "-"
for s in order + sorted(seen - set(order)):
    if s not in seen: continue
    cells = [cell([int(r[1]) for r in rows(m, k) if r[0] == s]) for m in modes for k, _ in kinds]
    cells += [cell([int(r[2]) for r in rows(m, "rstep") if r[0] == w and r[1] == s]) for m in modes for w in ("stop", "power_off")]
    print(f"| {s} | " + " | ".join(cells) + " |")
PY
