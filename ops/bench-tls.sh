#!/usr/bin/env bash
# make bench-tls: nginx's HTTPS through the project's own configuration (service::proxy), on
# loopback only: HTTPS against HTTP request rate at 100 keep-alive connections to one site
# (backend: a static nginx standing in for the VM's), new TLS handshakes (p50/p99 of 500), and
# set_tls/add_route reload times with 1,000 sites each with a custom domain and its own
# certificate. Needs nginx, openssl, wrk and python3. Prints a table (BENCHMARKS.md).
#   BENCH_SECS=10 BENCH_SITES=1000 ops/bench-tls.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ops/lib-bench.sh
source "$root/ops/lib-bench.sh"
for tool in nginx openssl wrk python3; do
  command -v "$tool" >/dev/null || { echo "bench-tls needs $tool (apt-get install -y $tool)" >&2; exit 1; }
done
echo "commit $(git -C "$root" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cd "$root"
BENCH_SECS=${BENCH_SECS:-10} BENCH_SITES=${BENCH_SITES:-1000} \
  cargo test -q --release -p service --test proxy_tls -- --ignored --exact bench_https_against_http --nocapture 2>&1 \
  | grep -E '^\|' || { echo "the benchmark failed: cargo test --release -p service --test proxy_tls -- --ignored bench_https_against_http --nocapture" >&2; exit 1; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
