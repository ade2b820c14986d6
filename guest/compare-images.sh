#!/usr/bin/env bash
# Measures create -> first HTTP 200 through nginx and create -> SSH login, N runs each, for one
# or more guest images, through the real service (no warm pool: cold boots).
#   guest/compare-images.sh [-n RUNS] IMAGE_DIR...      (e.g. data/images/current data/images/cloudinit)
set -euo pipefail
runs=3
if [ "${1:-}" = "-n" ]; then runs=$2; shift 2; fi
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${VMW_BIN:-$root/target/debug/vm-webhoster}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

echo "| image | runs | create -> HTTP 200 p50 (min-max) | create -> SSH p50 (min-max) |"
echo "|---|---|---|---|"
for image in "$@"; do
  image=$(cd "$image" && pwd -P)
  data=$(mktemp -d); chmod 755 "$data"
  app=$(free_port); ng=$(free_port)
  prefix="vmwcmp$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-"
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$app" --nginx-listen "127.0.0.1:$ng" --guest-image "$image" \
    --domain-prefix "$prefix" --pool-size 0 --http-port-base 44000 --ssh-port-base 45000 --log-level warn &
  pid=$!
  trap 'kill $pid 2>/dev/null; nginx -p "$data/nginx" -c "$data/nginx/nginx.conf" -s quit 2>/dev/null; rm -rf "$data"' EXIT
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ng/api/v1/health" >/dev/null && break; sleep 0.2; done
  ssh-keygen -q -t ed25519 -N '' -f "$data/key"
  H="http://127.0.0.1:$ng"
  http_times=(); ssh_times=()
  for i in $(seq 1 "$runs"); do
    u="cmp$i$(date +%s)"
    curl -sf -X POST "$H/api/v1/auth/register" -H 'Content-Type: application/json' \
      -d "{\"email\":\"$u@example.com\",\"password\":\"correct horse\",\"username\":\"$u\"}" >/dev/null
    tok=$(curl -sf -X POST "$H/api/v1/auth/login" -d "username=$u&password=correct horse" | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
    t0=$(now)
    curl -sf -X POST "$H/api/v1/host" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
      -d "{\"ssh_public_key\": \"$(cat "$data/key.pub")\"}" >/dev/null
    until curl -sf "$H/$u/" 2>/dev/null | grep -q "Welcome to $u"; do sleep 0.2; [ "$(echo "$(now) - $t0 > 400" | bc)" = 1 ] && { echo "timeout" >&2; break; }; done
    http_times+=("$(echo "$(now) - $t0" | bc)")
    port=$(curl -sf "$H/api/v1/host" -H "Authorization: Bearer $tok" | python3 -c 'import sys,json;print(json.load(sys.stdin)["ssh_port"])')
    until ssh -i "$data/key" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=5 ubuntu@127.0.0.1 true 2>/dev/null; do sleep 0.2; done
    ssh_times+=("$(echo "$(now) - $t0" | bc)")
    curl -sf -X DELETE "$H/api/v1/host?wait=120" -H "Authorization: Bearer $tok" >/dev/null || true
  done
  stats() { printf '%s\n' "$@" | sort -n | python3 -c 'import sys; v=[float(x) for x in sys.stdin]; print(f"{v[len(v)//2]:.1f} s ({v[0]:.1f}-{v[-1]:.1f})")'; }
  echo "| $(python3 -c "import json;d=json.load(open('$image/image.json'));print(d['variant'])") | $runs | $(stats "${http_times[@]}") | $(stats "${ssh_times[@]}") |"
  kill $pid; wait $pid 2>/dev/null || true
  nginx -p "$data/nginx" -c "$data/nginx/nginx.conf" -s quit 2>/dev/null || true
  rm -rf "$data"
  trap - EXIT
done
