#!/usr/bin/env bash
# Builds the guest base image from Debian's packages, with the host's own apt sources (no
# host name is written anywhere). Cached: rebuilt only when this recipe changes.
#
#   guest/build-image.sh [--variant lean|cloudinit] DATA_DIR
#
# Output: DATA_DIR/images/<variant>-<recipe hash>/{base.qcow2,vmlinuz,initrd.img,image.json}
# and the symlink DATA_DIR/images/current (lean) or DATA_DIR/images/cloudinit.
set -euo pipefail

variant=lean
if [ "${1:-}" = "--variant" ]; then variant=$2; shift 2; fi
case "$variant" in lean|cloudinit) ;; *) echo "unknown variant: $variant" >&2; exit 2 ;; esac
data_dir=${1:?usage: $0 [--variant lean|cloudinit] DATA_DIR}
here=$(cd "$(dirname "$0")" && pwd)
sources=${VMW_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
login_user=${VMW_GUEST_USER:-ubuntu}

hash=$( (echo "$variant"; cat "$here/build-image.sh"; find "$here/files" -type f -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-12)
images="$data_dir/images"
out="$images/$variant-$hash"
link="$images/current"; [ "$variant" = cloudinit ] && link="$images/cloudinit"
mkdir -p "$images"

if [ -f "$out/base.qcow2" ] && [ -f "$out/image.json" ]; then
  ln -sfn "$(basename "$out")" "$link"
  echo "guest image up to date: $out"
  exit 0
fi

echo "building guest image ($variant, recipe $hash); this takes a few minutes once"
start=$(date +%s)
# One line per step, with the time since the build began.
steps=5
n=0
step() {
  n=$((n + 1))
  echo "guest image [$n/$steps] +$(( $(date +%s) - start ))s: $*"
}
work=$(mktemp -d "${TMPDIR:-/tmp}/vmw-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

pkgs="systemd,systemd-sysv,udev,dbus,kmod,e2fsprogs,procps,sudo,openssh-server,openssh-sftp-server,nginx,qemu-guest-agent,linux-image-amd64,initramfs-tools,less"
if [ "$variant" = cloudinit ]; then pkgs="$pkgs,cloud-init"; fi

step "Debian bookworm with nginx, sshd and the guest agent (mmdebstrap: download and install; the long one)"
mmdebstrap --variant=apt --include="$pkgs" \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook="cp -a '$here/files/common/.' \"\$1/\"" \
  --customize-hook="if [ $variant = lean ]; then cp -a '$here/files/lean/.' \"\$1/\"; else cp -a '$here/files/cloudinit/.' \"\$1/\"; fi" \
  --customize-hook="chroot \"\$1\" /bin/sh /usr/local/lib/webhoster/customize.sh $variant $login_user" \
  bookworm "$root" "$sources"

step "kernel and initrd"
mkdir -p "$work/out"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
chmod 0644 "$work/out/vmlinuz" "$work/out/initrd.img"

step "ext4 root file system"
size=$(du -sm "$root" | cut -f1)
raw="$work/base.raw"
truncate -s 4G "$raw"
mkfs.ext4 -q -L rootfs -E root_owner=0:0 -d "$root" "$raw"
step "qcow2 base disk"
qemu-img convert -O qcow2 "$raw" "$work/out/base.qcow2"
chmod 0644 "$work/out/base.qcow2"

step "image.json and the cache link"
# init_on_free=1: the guest kernel zeroes the memory it frees, so a saved VM's freed memory is
# zero pages (a flag each in the save stream, not 4 KiB): smaller saves, faster restores.
cmdline="root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet mitigations=off init_on_free=1"
cat > "$work/out/image.json" <<JSON
{"variant": "$variant", "recipe": "$hash", "login_user": "$login_user", "cmdline": "$cmdline",
 "rootfs_mib": $size, "built_at": "$(date -u +%FT%TZ)", "build_seconds": $(( $(date +%s) - start ))}
JSON
rm -rf "$out"
mv "$work/out" "$out"
chmod 0755 "$out"
ln -sfn "$(basename "$out")" "$link"
# Old builds of this variant go, so the cache does not grow without bound.
for old in "$images/$variant"-*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "guest image built in $(( $(date +%s) - start )) s: $out (rootfs $size MiB)"
