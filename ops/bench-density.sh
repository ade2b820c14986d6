#!/usr/bin/env bash
# Density: N sites asleep on one host, then a random 5 % woken under load.
#   1. One server (own data dir, nginx port, domain prefix; no spares: every site is a clone of
#      the golden snapshot), N sites, each by a new user. Sites fall asleep by the real idle
#      mechanism (`--idle-sleep-minutes 1`, checked every 5 s; BENCH_SLEEP=api puts each to sleep
#      through `POST .../sleep` right after its create instead). At most BENCH_AWAKE sites are
#      awake at once: creates wait for earlier sites to fall asleep.
#   2. Once all N sleep: host RAM (MemTotal - MemAvailable) against the value before the server
#      started, the app's and nginx's PSS, disk (VM folders + saved memory, apparent and real).
#   3. A random 5 % (at least 1) woken at once: each one's first request through nginx timed
#      (the wake), while wrk sends requests to all of them for BENCH_WRK_SECS; errors counted.
#   ops/bench-density.sh            (N=20 by default; VMW_BIN overrides the binary)
set -euo pipefail
. "$(dirname "$0")/lib-bench.sh"
N=${N:-20}
AWAKE=${BENCH_AWAKE:-12}
SLEEP_BY=${BENCH_SLEEP:-idle}
WRK_SECS=${BENCH_WRK_SECS:-15}
export BENCH_CYCLES=${BENCH_CYCLES:-5} BENCH_FLAGS=${BENCH_FLAGS:-}
PORTS=${BENCH_PORT_BASE:-22000}
# Extra server flags, e.g. BENCH_FLAGS="--no-sleep-compress --no-sleep-trim" (the footprint settings).
# Plan disks are thin overlays (~3 MiB each, plus ~37 MiB of saved memory asleep), but capacity
# counts a plan's full disk (4 GiB for `small`): at the default --disk-overcommit 1 a 251 GiB file
# system takes 62 sites (the first N=200 run stopped there with 507 node_full). The bench passes
# --disk-overcommit BENCH_DISK_OVERCOMMIT (20) so that N sites fit.
read -r -a extra <<< "${BENCH_FLAGS:-}"
mem_used_kib() { awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print t-a}' /proc/meminfo; }
pid="" data="" prefix=""

# Stops the server, its nginx and its VMs (only this run's prefix), and removes its files.
cleanup() {
  teardown_server "$pid" "$data" "$prefix"
  pid="" data="" prefix=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
base_kib=$(mem_used_kib)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
data=$(mktemp -d /tmp/vmwdens.XXXXXX); chmod 755 "$data"
app=$(free_port); ng=$(free_port)
prefix="vmwd$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-"
idle=(--idle-sleep-minutes 1 --idle-check-secs 5)
[ "$SLEEP_BY" = api ] && idle=(--idle-sleep-minutes 0)
echo "bench-density: N=$N, $bin (data $data, nginx 127.0.0.1:$ng, prefix $prefix, sleep by $SLEEP_BY)" >&2
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$app" --nginx-listen "127.0.0.1:$ng" --guest-image "$image" \
  --site-root "$site" --domain-prefix "$prefix" --max-hostings-per-user 1 \
  --signups-per-address 100000 --signups-per-hour 100000 --first-user-admin \
  --pool-size 0 --pool-paused 0 --disk-overcommit "${BENCH_DISK_OVERCOMMIT:-20}" \
  --http-port-base "$PORTS" --ssh-port-base $(( PORTS + 5000 )) --log-level warn "${idle[@]}" "${extra[@]}" >"$data.log" 2>&1 &
pid=$!
H="http://127.0.0.1:$ng"
for _ in $(seq 1 150); do curl -sf "$H/api/v1/health" >/dev/null && break; sleep 0.2; done
# Every site is a clone of the golden snapshot: wait for it (one cold boot) before the first create.
t0=$SECONDS
until find "$data/golden" -name golden.json 2>/dev/null | grep -q .; do
  if (( SECONDS - t0 > 900 )); then echo "bench-density: no golden snapshot after 900 s" >&2; exit 1; fi
  sleep 1
done
echo "bench-density: golden snapshot ready after $(( SECONDS - t0 )) s" >&2
set +e
BENCH_N=$N BENCH_AWAKE=$AWAKE BENCH_SLEEP=$SLEEP_BY BENCH_WRK_SECS=$WRK_SECS BENCH_BASE_KIB=$base_kib \
BENCH_DATA=$data BENCH_PREFIX=$prefix BENCH_PID=$pid BENCH_LOAD0="$load0" BENCH_BIN=$bin \
python3 - "$H" <<'PY'
import json, os, random, re, statistics, subprocess, sys, threading, time, urllib.error, urllib.parse, urllib.request
from bench_http import Api
H = sys.argv[1]
N, AWAKE, WRK_SECS = int(os.environ["BENCH_N"]), int(os.environ["BENCH_AWAKE"]), int(os.environ["BENCH_WRK_SECS"])
SLEEP_BY, data, prefix, app_pid = os.environ["BENCH_SLEEP"], os.environ["BENCH_DATA"], os.environ["BENCH_PREFIX"], os.environ["BENCH_PID"]
base_kib = int(os.environ["BENCH_BASE_KIB"])
tag = os.urandom(2).hex()
def log(*a): print("bench-density:", *a, file=sys.stderr, flush=True)
def loadavg(): return " ".join(open("/proc/loadavg").read().split()[:3])
def mem_used_kib():
    m = dict((l.split(":")[0], int(l.split()[1])) for l in open("/proc/meminfo"))
    return m["MemTotal"] - m["MemAvailable"]

api = Api(H, timeout=120)
call, register = api.call, api.register

def states():
    out = subprocess.run(["sqlite3", f"{data}/vm-webhoster.sqlite",
        "select state, count(*) from hostings where user_id is not null and operation is null group by state"],
        capture_output=True, text=True).stdout
    return {l.split("|")[0]: int(l.split("|")[1]) for l in out.split()}

def awake():
    s = states(); return N_made - s.get("sleeping", 0) - s.get("failed", 0) - s.get("stopped", 0)

def fetch(slug, timeout=30):
    t = time.time()
    try:
        with urllib.request.urlopen(f"{H}/{slug}/", timeout=timeout) as r:
            ok = r.status == 200 and f"Welcome to {slug}" in r.read().decode(errors="replace")
    except Exception as e:
        ok = False
    return ok, time.time() - t

def pss_kib(pid, field="Pss:"):
    try:
        for l in open(f"/proc/{pid}/smaps_rollup"):
            if l.startswith(field): return int(l.split()[1])
    except OSError: pass
    return 0

def du(paths, apparent):
    paths = [p for p in paths if os.path.exists(p)]
    if not paths: return 0
    args = ["du", "-scb" if apparent else "-sck"] + paths
    tot = int(subprocess.run(args, capture_output=True, text=True).stdout.split("\n")[-2].split()[0])
    return tot if apparent else tot * 1024

# 1. N sites, each by a new user, at most AWAKE awake at once.
t_start = time.time()
sites, N_made, failed = [], 0, 0
for i in range(N):
    while SLEEP_BY == "idle" and N_made and awake() >= AWAKE: time.sleep(1)
    u = f"d{tag}{i}"
    try:
        tok = register(u)
        h = call("POST", "/api/v1/host", tok, body={})
        N_made += 1
        t = time.time()
        while time.time() - t < 300 and not fetch(u, 10)[0]: time.sleep(0.1)
        sites.append((h["id"], u, tok))
        if SLEEP_BY == "api":
            for _ in range(100):  # 409 while the create's last step (the route check) runs
                try: call("POST", f"/api/v1/hostings/{h['id']}/sleep?wait=120", tok); break
                except urllib.error.HTTPError as e:
                    if e.code != 409: raise
                    time.sleep(0.2)
    except Exception as e:
        failed += 1; log(f"create {i + 1} failed: {e}")
    if (i + 1) % 10 == 0 or i + 1 == N: log(f"{i + 1}/{N} created ({awake()} awake), {time.time() - t_start:.0f} s")
t = time.time()
while states().get("sleeping", 0) < len(sites) and time.time() - t < 900: time.sleep(2)
asleep = states().get("sleeping", 0)
log(f"{asleep}/{len(sites)} asleep after {time.time() - t_start:.0f} s")
time.sleep(10)  # let the last saves' page cache settle
subprocess.run(["sync"]); open("/proc/sys/vm/drop_caches", "w").write("3\n") if os.access("/proc/sys/vm/drop_caches", os.W_OK) else None
time.sleep(2)
used_kib = mem_used_kib()
app_pss, app_anon = pss_kib(app_pid), pss_kib(app_pid, "Pss_Anon:")
ng_pids = subprocess.run(["pgrep", "-f", f"nginx.*{data}/nginx"], capture_output=True, text=True).stdout.split()
ng_pss = sum(pss_kib(p) for p in ng_pids)
qemus = subprocess.run(["pgrep", "-f", f"guest={prefix}"], capture_output=True, text=True).stdout.split()
save_dir = "/var/lib/libvirt/qemu/save"
saves = [os.path.join(save_dir, f) for f in os.listdir(save_dir) if f.startswith(prefix)] if os.path.isdir(save_dir) else []
vm_dirs = [os.path.join(data, "vms", d) for d in os.listdir(os.path.join(data, "vms"))] if os.path.isdir(os.path.join(data, "vms")) else []
golden = os.path.join(data, "golden")
disk = {k: du(vm_dirs, k == "app") + du(saves, k == "app") for k in ("app", "real")}
save_disk = {k: du(saves, k == "app") for k in ("app", "real")}
golden_disk = du([golden], False)
load_asleep = loadavg()

# 2. A random 5 % woken at once, under wrk.
pick = random.sample(sites, max(1, round(len(sites) * 0.05))) if sites else []
lua = os.path.join(data, "paths.lua")
open(lua, "w").write("paths = {" + ",".join(f'"/{u}/"' for _, u, _ in pick) + "}\ni = 0\n"
    "request = function() i = i % #paths + 1; return wrk.format('GET', paths[i]) end\n"
    "done = function(s, l, r) io.write(string.format('wrk_summary %d %d %d %d %d %d\\n', s.requests, s.errors.connect, s.errors.read, s.errors.write, s.errors.status, s.errors.timeout)) end\n")
first, lock = {}, threading.Lock()
go = threading.Barrier(len(pick) + 1)
def wake(u):
    go.wait()
    ok, dt = fetch(u, 30)
    with lock: first[u] = (ok, dt)
threads = [threading.Thread(target=wake, args=(u,)) for _, u, _ in pick]
for t in threads: t.start()
load_wake0 = loadavg()
go.wait()
wrk = subprocess.Popen(["wrk", "-t1", f"-c{max(2, len(pick) * 2)}", f"-d{WRK_SECS}s", "--timeout", "10s", "--latency", "-s", lua, H],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for t in threads: t.join()
wrk_out = wrk.communicate()[0]
load_wake = loadavg()
used_wake_kib = mem_used_kib()
awake_qemus = subprocess.run(["pgrep", "-f", f"guest={prefix}"], capture_output=True, text=True).stdout.split()
qemu_pss = [pss_kib(p) for p in awake_qemus]
qemu_rss = [pss_kib(p, "Rss:") for p in awake_qemus]
# 3. One woken site, BENCH_CYCLES more times alone: put to sleep (API), then its first request
#    through nginx timed (wakes without wrk beside them).
cycles = []
for k in range(int(os.environ.get("BENCH_CYCLES", "5")) if pick else 0):
    hid, u, tok = pick[0]
    try:
        for _ in range(100):
            try: call("POST", f"/api/v1/hostings/{hid}/sleep?wait=120", tok); break
            except urllib.error.HTTPError as e:
                if e.code != 409: raise
                time.sleep(0.2)
        time.sleep(1)
        cycles.append(fetch(u, 30))
    except Exception as e:
        log(f"cycle {k + 1}: {e}"); cycles.append((False, float("nan")))
m = re.search(r"wrk_summary (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", wrk_out)
wrk_req, *wrk_err = (int(x) for x in m.groups()) if m else (0, 0, 0, 0, 0, 0)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_out)
wrk_lat = {k: v for k, v in re.findall(r"^\s+(50|99)%\s+(\S+)", wrk_out, re.M)}
lat = sorted(dt for ok, dt in first.values())
fails = sum(1 for ok, _ in first.values() if not ok)
def pct(v, p): return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")
log("wrk said:\n" + wrk_out)

n = max(1, asleep)
MiB = 1024 * 1024
rows = [
    ("sites created / asleep / failed", f"{len(sites)} / {asleep} / {failed}"),
    ("QEMU processes while all asleep", str(len(qemus))),
    ("host RAM used, before the server / all asleep", f"{base_kib / 1024:.0f} MiB / {used_kib / 1024:.0f} MiB"),
    ("host RAM per sleeping site (delta / N: app + nginx + kernel)", f"{(used_kib - base_kib) / 1024 / n:.2f} MiB"),
    ("app PSS (of it anonymous) / nginx PSS (all its processes)", f"{app_pss / 1024:.1f} MiB ({app_anon / 1024:.1f} MiB) / {ng_pss / 1024:.1f} MiB"),
    ("disk per sleeping site, apparent / real (overlay + saved memory)", f"{disk['app'] / n / MiB:.1f} MiB / {disk['real'] / n / MiB:.1f} MiB"),
    ("  of which saved memory, apparent / real", f"{save_disk['app'] / n / MiB:.1f} MiB / {save_disk['real'] / n / MiB:.1f} MiB"),
    ("golden snapshot (shared by all, once)", f"{golden_disk / MiB:.0f} MiB"),
    (f"woken at once (5 %)", str(len(pick))),
    ("wake: first request through nginx, p50 / p99 / worst", f"{pct(lat, 50):.2f} s / {pct(lat, 99):.2f} s / {(lat[-1] if lat else float('nan')):.2f} s"),
    ("wake: first requests failed", str(fails)),
    (f"one site slept and woken alone {len(cycles)} times: first request p50 / worst, failed",
     f"{pct(sorted(d for _, d in cycles), 50):.2f} s / {max((d for _, d in cycles), default=float('nan')):.2f} s, {sum(1 for ok, _ in cycles if not ok)}"),
    (f"wrk during the wake ({WRK_SECS} s): requests, p50 / p99", f"{wrk_req}, {wrk_lat.get('50', '-')} / {wrk_lat.get('99', '-')}"),
    ("wrk errors (connect/read/write/status/timeout), non-2xx", " / ".join(map(str, wrk_err)) + f", {non2xx.group(1) if non2xx else 0}"),
    ("host RAM used after the wake", f"{used_wake_kib / 1024:.0f} MiB"),
    ("woken QEMUs after the wake: count, PSS / RSS each (mean)",
     f"{len(qemu_pss)}, {(sum(qemu_pss) / len(qemu_pss) / 1024 if qemu_pss else float('nan')):.1f} MiB / {(sum(qemu_rss) / len(qemu_rss) / 1024 if qemu_rss else float('nan')):.1f} MiB"),
    ("load average: before / all asleep / before wake / after wake", f"`{os.environ['BENCH_LOAD0']}` / `{load_asleep}` / `{load_wake0}` / `{load_wake}`"),
    ("time to create all and see them asleep", f"{time.time() - t_start:.0f} s"),
]
print(f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, binary {os.environ['BENCH_BIN']}, N={N}, sleep by {SLEEP_BY}, flags '{os.environ.get('BENCH_FLAGS', '')}', {os.cpu_count()} cores")
print()
print("| | |\n|---|---|")
for k, v in rows: print(f"| {k} | {v} |")
sys.exit(1 if fails or failed or any(not ok for ok, _ in cycles) else 0)
PY
rc=$?
set -e
echo "bench-density: the server's warnings and errors (last 20 lines):" >&2
grep -v '^\s*$' "$data.log" | tail -n 20 | sed 's/^/  | /' >&2 || true
exit $rc
