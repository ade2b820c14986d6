#!/usr/bin/env bash
# Makes a libvirt daemon hold the guest image as a volume of its storage pool `vmw-images` (what
# adding a node checks): the pool is defined on IMAGE_DIR (redefined when it points elsewhere),
# started and refreshed, and base.qcow2 must be in it. Idempotent. Used by ops/test-node2.sh
# (node 2 over qemu+libssh://) and end2end/nodes.test.mjs (root's qemu:///session).
#   ops/node-image-pool.sh URI IMAGE_DIR
set -euo pipefail
uri=${1:?usage: $0 URI IMAGE_DIR}
image=$(readlink -f "${2:?usage: $0 URI IMAGE_DIR}")
[[ -f $image/base.qcow2 ]] || { echo "no guest image at $image" >&2; exit 1; }
v() { virsh -q -c "$uri" "$@"; }
target=$(v pool-dumpxml vmw-images 2>/dev/null | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -1 || true)
if [[ -n $target && $target != "$image" ]]; then
  v pool-destroy vmw-images >/dev/null 2>&1 || true
  v pool-undefine vmw-images >/dev/null
  target=
fi
[[ -n $target ]] || v pool-define-as vmw-images dir --target "$image" >/dev/null
v pool-start vmw-images >/dev/null 2>&1 || true
v pool-refresh vmw-images >/dev/null
v vol-path --pool vmw-images base.qcow2 >/dev/null
