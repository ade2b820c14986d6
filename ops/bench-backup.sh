#!/usr/bin/env bash
# make bench-backup: backups and restores of real VMs (clones of the golden snapshot) into a fresh
# local restic repository, on a release build: the first backup (with and without the base), an
# unchanged site's next backup, a sleeping site's, a restore as a new site to its page answering,
# and a projection for 1,000 sites nightly (its assumptions in the table). Loopback only. Prints a
# table (BENCHMARKS.md). Needs libvirt (qemu:///system), the guest image, restic.
#   VMW_GUEST_IMAGE_DIR=data/images/current ops/bench-backup.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v restic >/dev/null || { echo "bench-backup needs restic (apt-get install -y restic)" >&2; exit 1; }
echo "commit $(git -C "$root" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cd "$root"
VMW_GUEST_IMAGE_DIR=${VMW_GUEST_IMAGE_DIR:-$root/data/images/current} \
  cargo test -q --release -p service --test real_vm -- --ignored --exact bench_backup --nocapture 2>&1 \
  | grep -E '^\|' || { echo "the benchmark failed: cargo test --release -p service --test real_vm -- --ignored --exact bench_backup --nocapture" >&2; exit 1; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
