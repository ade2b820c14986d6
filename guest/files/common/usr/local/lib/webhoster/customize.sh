#!/bin/sh
# Runs inside the new root filesystem (chroot) at the end of the image build.
set -eu
variant=$1
user=$2

echo "/dev/vda / ext4 rw,noatime,errors=remount-ro 0 1" > /etc/fstab
echo "webhoster" > /etc/hostname
printf '127.0.0.1 localhost\n::1 localhost\n' > /etc/hosts

# A small initramfs with just the virtio and ext4 modules (direct kernel boot, no boot loader).
sed -i 's/^MODULES=.*/MODULES=list/' /etc/initramfs-tools/initramfs.conf
update-initramfs -u -k all

# Fewer drivers: a virtio guest needs none of these (halves the image).
for d in sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/bluetooth \
         net/bluetooth drivers/staging drivers/iio drivers/hid drivers/usb drivers/isdn drivers/input/touchscreen \
         drivers/net/ethernet drivers/scsi drivers/md drivers/nvme drivers/mmc drivers/firewire net/wireless net/mac80211; do
  rm -rf /lib/modules/*/kernel/$d
done
for k in /lib/modules/*; do depmod -a "$(basename "$k")"; done

systemctl enable systemd-networkd.service
# Nothing to wait for, nothing to update, no time servers to reach: faster boots.
for u in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
         e2scrub_reap.service man-db.timer fstrim.timer systemd-timesyncd.service getty@tty1.service \
         remote-fs.target systemd-pstore.service; do
  systemctl mask "$u" >/dev/null 2>&1 || true
done

# The web root belongs to the login user (SFTP uploads land in it).
rm -f /var/www/html/index.nginx-debian.html
echo '<!doctype html><title>starting</title><p>This site is starting.</p>' > /var/www/html/index.html
sed -i 's/^\(\s*\)access_log .*/\1access_log off;/' /etc/nginx/nginx.conf

# sshd_config.d/10-webhoster.conf sets the SFTP subsystem; sshd refuses a second definition.
sed -i 's/^Subsystem/#Subsystem/' /etc/ssh/sshd_config

# Passwordless sudo for the sudo group (the login user is in it).
echo '%sudo ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-webhoster
chmod 0440 /etc/sudoers.d/90-webhoster

# Per-instance secrets are made at first boot, never shipped in the image.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

if [ "$variant" = lean ]; then
  systemctl enable webhoster-firstboot.service
else
  systemctl enable cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service || true
fi
passwd -l root >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
