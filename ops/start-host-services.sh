#!/usr/bin/env bash
# Starts libvirt's daemons without systemd (PID 1 here is not an init system). Idempotent.
# Defines no libvirt network: VMs use QEMU user networking bound to loopback.
set -euo pipefail

mkdir -p /var/log/libvirt/qemu /var/run/libvirt /var/lib/libvirt/qemu
# /dev/kvm as udev makes it on a normal host (root:kvm 0660; libvirt-qemu is in kvm). Without
# udev it is root 0600: libvirt's QEMU probe (as root) finds KVM but its check as libvirt-qemu
# does not, so it calls its capabilities cache stale on every lookup and re-probes QEMU twice:
# each define and start took 30-60 s instead of milliseconds. Guests still use the domain
# type chosen by the service (TCG where KVM does not boot a guest).
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
if ! pgrep -x virtlogd >/dev/null; then
  virtlogd -d
fi
if ! pgrep -x libvirtd >/dev/null; then
  libvirtd -d
fi
for _ in $(seq 1 60); do
  if virsh -c qemu:///system version >/dev/null 2>&1; then break; fi
  sleep 0.5
done
virsh -c qemu:///system version >/dev/null

# Kernel same-page merging: idle guests share identical pages (FACTS.md: ~45 MiB per guest).
if [ -w /sys/kernel/mm/ksm/run ]; then
  echo 2000 > /sys/kernel/mm/ksm/pages_to_scan 2>/dev/null || true
  echo 20 > /sys/kernel/mm/ksm/sleep_millisecs 2>/dev/null || true
  echo 1 > /sys/kernel/mm/ksm/run 2>/dev/null || true
fi

# Transparent huge pages off (VMW_HOST_THP=keep leaves the host's setting). QEMU asks for huge
# pages on all guest RAM, so a restore that writes ~100 MB of saved pages scattered over 256 MiB
# zeroes a whole 2 MiB page for each first touch: a managed-saved clone's `virsh start` took
# 0.95-1.40 s with THP (`madvise`, Debian's default) and 0.74-0.83 s without it, measured on this
# machine (BENCHMARKS.md, Run H). An awake guest's touched memory then also stays in 4 KiB pages
# that KSM and free page reporting can give back one by one.
thp=/sys/kernel/mm/transparent_hugepage/enabled
if [ "${VMW_HOST_THP:-never}" != keep ] && [ -w "$thp" ]; then
  echo never > "$thp" 2>/dev/null || true
fi

if [ -e /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then echo "domain type: kvm"; else echo "domain type: qemu (TCG)"; fi
