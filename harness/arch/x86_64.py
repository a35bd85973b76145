from . import ArchProfile

PROFILE = ArchProfile(
    name="x86_64",
    debian_arch="amd64",
    kernel_arch="x86",
    gnu_triplet="x86_64-linux-gnu",
    cross_gcc_package="gcc-x86-64-linux-gnu",
    cross_libc_package="libc6-dev-amd64-cross",
    qemu_binary="qemu-system-x86_64",
    qemu_package="qemu-system-x86",
    # Kernels are booted as ELF through their PVH entry (see kernelfile.py), which makes the
    # firmware's share of the boot small; qboot measured no faster than SeaBIOS then.
    machine_args=("-machine", "pc", "-cpu", "max"),
    console="ttyS0",
    serial_device="virtio-serial-pci,ioeventfd=off",
    # The ELF vmlinux boots through its PVH entry: no decompressor, no real-mode set-up.
    kernel_image="vmlinux",
    kernel_target="vmlinux",
    kconfig_fragment="x86_64.config",
    tcg_slowdown=1.0,
    kvm_hosts=("x86_64",),
    # Delays on x86 use the TSC; a preset loops-per-jiffy only skips the delay-loop
    # calibration of the secondary CPUs, which fails under TCG after 0.2-0.3 s of trying.
    # noapictimer: the local APIC timer's calibration polls twice 25 ticks of the PIT,
    # 0.2 s of the boot under TCG; the PIT's tick then reaches the other CPUs by IPI
    # (broadcast), as on hardware whose APIC timer stops when idle.
    kernel_cmdline=("lpj=4000000", "noapictimer"),
    # One TCG thread for all vCPUs. With a thread per vCPU (QEMU 7.2), a vCPU can still
    # run a function's old translation while another CPU's ftrace rewrites its entry with
    # the int3 protocol: the guest dies with "Oops: int3" at function+1 (seen on
    # __do_sys_getpid in test-syscall.sh, and when the function tracer was set on every
    # function). Livepatch's transitions mostly wait for a timer, so it costs little.
    tcg_accel="tcg,thread=single",
    # The kernel has no ACPI: it finds its CPUs in SeaBIOS's MP table, which lists only
    # the first CPU of each socket (as the MP spec wants), so -smp 2 as two cores booted
    # one CPU.
    cpu_unit="sockets",
    livepatch_since=(4, 0),
)
