#!/usr/bin/env bash
# A second hypervisor on this machine for `make test-nodes`, reached through a real remote
# libvirt URI: root's own `qemu:///session` daemon (not the system one), over SSH to an sshd
# of its own bound to 127.0.0.1 only (its own config, port, host key and authorised key, in
# $VMW_NODE2_DIR). Idempotent: `start` installs openssh-server if missing (without starting
# Debian's sshd on port 22), makes the keys once, starts the sshd if it is not running, and
# makes sure the session daemon has the guest image as a volume of its storage pool
# `vmw-images` (what adding a node checks). `uri` prints the node's libvirt URI; `stop` stops
# this sshd (the session daemon ends by itself when idle).
#   ops/test-node2.sh start IMAGE_DIR   # then: ops/test-node2.sh uri
# Caveat (issue 28): a privileged libvirtd serves root's `/session` URI with its system driver
# (a pool made over one is listed over the other), so this URI reaches the daemon of
# `qemu:///system`. Adding it as a second node is refused as the same daemon unless the
# operator allows it (`--allow-shared-libvirt-daemon`, which the nodes test sets): each node's
# domains carry their own prefix and marker, so the two nodes leave each other's alone. A
# second daemon of its own (an unprivileged user's session) hung on capabilities over libssh
# when tried; see the closing note of the session that found this.
set -euo pipefail
DIR=${VMW_NODE2_DIR:-/var/lib/vmw-test-node2}
PORT=${VMW_NODE2_PORT:-22022}
cmd=${1:-start}

uri() {
    echo "qemu+libssh://root@127.0.0.1:${PORT}/session?keyfile=${DIR}/id_ed25519&known_hosts=${DIR}/known_hosts&sshauth=privkey"
}

running() {
    [[ -f $DIR/sshd.pid ]] && kill -0 "$(cat "$DIR/sshd.pid")" 2>/dev/null
}

case $cmd in
uri) uri ;;
stop)
    if running; then kill "$(cat "$DIR/sshd.pid")"; fi
    ;;
start)
    image=${2:?usage: $0 start IMAGE_DIR}
    image=$(readlink -f "$image")
    [[ -f $image/base.qcow2 ]] || { echo "no guest image at $image" >&2; exit 1; }
    if [[ ! -x /usr/sbin/sshd ]]; then
        echo "==> installing openssh-server (its own sshd is not started)"
        # Debian's postinst would start sshd on *:22: policy-rc.d forbids starting services.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        inst() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server >/dev/null; }
        inst || { apt-get update -q >/dev/null && inst; }
        rm -f /usr/sbin/policy-rc.d
    fi
    install -d -m 0700 "$DIR"
    [[ -f $DIR/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C vmw-node2-host -f "$DIR/host_ed25519"
    [[ -f $DIR/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C vmw-node2-client -f "$DIR/id_ed25519"
    cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
    echo "[127.0.0.1]:${PORT} $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" >"$DIR/known_hosts"
    cat >"$DIR/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port ${PORT}
HostKey ${DIR}/host_ed25519
PidFile ${DIR}/sshd.pid
AuthorizedKeysFile ${DIR}/authorized_keys
PermitRootLogin prohibit-password
AllowUsers root
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
CONF
    install -d -m 0755 /run/sshd
    if ! running; then
        /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"
        for _ in $(seq 50); do running && break; sleep 0.1; done
    fi
    running || { echo "sshd did not start; see $DIR/sshd.log" >&2; exit 1; }
    # The guest image as a volume of the session daemon's pool `vmw-images` (through the URI).
    "$(dirname "$0")/node-image-pool.sh" "$(uri)" "$image"
    echo "==> node 2: $(uri)"
    ;;
*) echo "usage: $0 start IMAGE_DIR | uri | stop" >&2; exit 2 ;;
esac
