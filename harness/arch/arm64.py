from . import ArchProfile

PROFILE = ArchProfile(
    name="arm64",
    debian_arch="arm64",
    kernel_arch="arm64",
    gnu_triplet="aarch64-linux-gnu",
    cross_gcc_package="gcc-aarch64-linux-gnu",
    cross_libc_package="libc6-dev-arm64-cross",
    qemu_binary="qemu-system-aarch64",
    qemu_package="qemu-system-arm",
    # cortex-a57 (ARMv8.0): no pointer authentication, which the `max` CPU emulates slowly
    # under TCG; boots measured the same. virtio-mmio's ioeventfd off, as on the others'
    # virtio serial controllers (see serial_device).
    machine_args=("-machine", "virt", "-cpu", "cortex-a57",
                  "-global", "virtio-mmio.ioeventfd=off"),
    console="ttyAMA0",
    serial_device="virtio-serial-device",
    kernel_image="arch/arm64/boot/Image",
    kernel_target="Image",
    kconfig_fragment="arm64.config",
    tcg_slowdown=1.2,
    kvm_hosts=("aarch64",),
    # One TCG thread for all vCPUs: with a thread per vCPU, tasks kept running the old
    # __arm64_sys_getpid for up to two minutes after "patching complete", until QEMU
    # flushed its translation cache (7 of 20 rounds; 0 of 24 single-threaded).
    tcg_accel="tcg,thread=single",
    # HAVE_LIVEPATCH on arm64 came with Linux 6.17 (reliable stack traces, ftrace args).
    livepatch_since=(6, 17),
)
