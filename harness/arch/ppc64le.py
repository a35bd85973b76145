from . import ArchProfile

PROFILE = ArchProfile(
    name="ppc64le",
    debian_arch="ppc64el",
    kernel_arch="powerpc",
    gnu_triplet="powerpc64le-linux-gnu",
    cross_gcc_package="gcc-powerpc64le-linux-gnu",
    cross_libc_package="libc6-dev-ppc64el-cross",
    qemu_binary="qemu-system-ppc64",
    qemu_package="qemu-system-ppc",
    # x-vof: QEMU's virtual Open Firmware instead of SLOF, about 7 s faster under TCG.
    machine_args=("-machine", "pseries,x-vof=on", "-cpu", "power9"),
    console="hvc0",
    serial_device="virtio-serial-pci,ioeventfd=off",
    kernel_image="vmlinux",
    kernel_target="vmlinux",
    kconfig_fragment="ppc64le.config",
    tcg_slowdown=1.5,
    kvm_hosts=("ppc64le",),
    livepatch_since=(4, 7),
)
