#!/usr/bin/env bash
# Installs the system packages vm-webhoster needs on a fresh Debian bookworm host. Safe to
# re-run: it only calls apt when something is missing. Never installs libvirt-daemon-system
# (it would bring libvirt's NAT network on 192.168.122.0/24).
set -euo pipefail

pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev qemu-system-x86 qemu-utils
      genisoimage mmdebstrap nginx pkg-config openssh-client sqlite3 e2fsprogs curl
      postgresql chromium chromium-driver wrk lzop
      pebble bind9 bind9-dnsutils restic rclone openssh-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The machine may ship qemu-utils 10.x from bookworm-backports, which conflicts with bookworm's
# qemu-system-x86: take both from bookworm in one apt call (FACTS.md).
qemu_fix=()
if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q "install ok installed"; then
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q '^1:10\.'; then
    qemu_fix=(qemu-utils/bookworm)
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades --no-install-recommends \
    "${missing[@]/qemu-utils/}" "${qemu_fix[@]}"
else
  echo "setup-host: system packages present"
fi

# libvirtd wants these (normally made by libvirt-daemon-system).
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent group libvirt >/dev/null || groupadd -r libvirt
id -u libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
