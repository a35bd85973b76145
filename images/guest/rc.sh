#!/bin/sh
# klp-harness guest set-up, run once by busybox init. Keep it fast: the guest is emulated.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox --install -s          # applets where no real program of that name exists

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run

# The run's public key ("TYPE:BASE64") and boot id come on the kernel command line.
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	klp_harness.authkey=*) key=${arg#*=} ;;
	klp_harness.boot=*) boot=${arg#*=} ;;
	esac
done
echo "${key%%:*} ${key#*:} klp-harness" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys

# Drivers this kernel builds as modules (e.g. virtio_console on a distribution kernel).
modules=$(cat /etc/klp-harness/boot-modules)
[ -n "$modules" ] && modprobe -a $modules

# SSH over the virtio serial port the harness names (there is no IP network), started
# before the rest of the set-up: sshd's start (linking its libraries, OpenSSL) is the
# longest step here, and the harness connects while this script goes on. sshd -i serves
# one connection on the port and ends when the host side closes it; the next sshd then
# waits, blocked writing its banner, until the host connects again.
# The driver adds ports and their names as QEMU's control messages arrive, maybe after
# init started (or after the module loaded): look for up to 5 s.
name=klp-harness.ssh   # machine.SSH_PORT_NAME
port=
for try in $(seq 100); do
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2>/dev/null)" = "$name" ] && port=/dev/${p##*/}
	done
	[ -n "$port" ] && [ -e "$port" ] && break
	port=
	sleep 0.05
done
if [ -z "$port" ]; then
	# What was seen, not a guess: the harness names a cause from the console's evidence
	# (harness/bootcause.py). The class dir exists once the driver is in, with or without
	# ports: only its absence shows a kernel without the driver.
	if [ -d /sys/class/virtio-ports ]; then
		ports=$(cat /sys/class/virtio-ports/*/name 2>/dev/null | tr '\n' ' ')
		echo "klp-harness: no virtio serial port named $name; the guest's ports:" \
			"${ports:-none}" >/dev/console
	else
		echo "klp-harness: no virtio serial ports at all (no /sys/class/virtio-ports)" \
			"for SSH" >/dev/console
	fi
	exit 1
fi
mkdir -p -m 0755 /run/sshd   # privilege separation directory
( while :; do
	# A start that fails at once (bad configuration) must not spin: its message is on the
	# console. sshd also exits non-zero when the host closes the port, so a reconnection
	# within one boot waits a second (the harness makes one connection per boot).
	/usr/sbin/sshd -i -f /etc/ssh/sshd_config <>"$port" >&0 2>/dev/console || sleep 1
done ) &

mkdir -p /dev/pts /dev/shm
# What udev makes elsewhere: bash's process substitution, <(...), needs /dev/fd.
ln -s /proc/self/fd /dev/fd
ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname klp-guest

# The harness hands the guest to tests only after this line.
echo "KLP-HARNESS-READY $boot"
