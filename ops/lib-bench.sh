# Shared by the benchmarks (ops/bench-*.sh), which source it: what they run, a free loopback
# port, the teardown of a server a benchmark started, and the Python client of their
# measurement parts (ops/bench_http.py, importable once this is sourced).

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The release build, the cached guest image and the built site; VMW_BIN, VMW_GUEST_IMAGE_DIR
# and VMW_SITE override them.
bin=${VMW_BIN:-$root/target/release/vm-webhoster}
image=${VMW_GUEST_IMAGE_DIR:-$root/data/images/current}
site=${VMW_SITE:-$root/target/site}
# The benchmarks' servers serve HTTP only (an environment variable: a baseline build from before
# `--tls` existed ignores it); ops/bench-tls.sh measures HTTPS.
export VMW_TLS=${VMW_TLS:-off}

# Prints a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Stops a server a benchmark started, its nginx and its VMs (only those of its domain prefix),
# and removes its data dir and its log beside it. An empty argument skips its part.
teardown_server() { # pid data prefix
  if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi
  if [ -n "$2" ]; then nginx -p "$2/nginx" -c "$2/nginx/nginx.conf" -s quit 2>/dev/null || true; fi
  if [ -n "$3" ]; then
    for d in $(virsh -c qemu:///system list --all --name | grep "^$3" || true); do
      virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
      virsh -c qemu:///system undefine --managed-save --snapshots-metadata "$d" >/dev/null 2>&1 \
        || virsh -c qemu:///system undefine --managed-save "$d" >/dev/null 2>&1 || true
    done
  fi
  if [ -n "$2" ]; then rm -rf "$2" "$2.log"; fi
}

export PYTHONPATH="$root/ops${PYTHONPATH:+:$PYTHONPATH}"
