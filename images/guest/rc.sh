#!/bin/sh
# klp-harness guest set-up, run once by busybox init. Keep it fast: the guest is emulated.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox --install -s          # applets where no real program of that name exists

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
# What udev makes elsewhere: bash's process substitution, <(...), needs /dev/fd.
ln -s /proc/self/fd /dev/fd
ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname klp-guest

# Drivers this kernel builds as modules (e.g. virtio_net on a distribution kernel).
modules=$(cat /etc/klp-harness/boot-modules)
[ -n "$modules" ] && modprobe -a $modules

# QEMU user-mode network: fixed addresses, no DHCP round trip.
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# Tell slirp our MAC now: until the guest has sent a packet, slirp holds the first SYN
# from the host back for an ARP round and a TCP retransmit (seconds under emulation).
ping -c 1 -W 1 10.0.2.2 >/dev/null 2>&1

# The run's public key and boot id come on the kernel command line.
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	klp_harness.authkey=*) key=${arg#*=} ;;
	klp_harness.boot=*) boot=${arg#*=} ;;
	esac
done
echo "ssh-ed25519 $key klp-harness" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys

dropbear -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key

echo "KLP-HARNESS-READY $boot"
