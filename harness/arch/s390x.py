from . import ArchProfile

PROFILE = ArchProfile(
    name="s390x",
    debian_arch="s390x",
    kernel_arch="s390",
    gnu_triplet="s390x-linux-gnu",
    cross_gcc_package="gcc-s390x-linux-gnu",
    cross_libc_package="libc6-dev-s390x-cross",
    qemu_binary="qemu-system-s390x",
    qemu_package="qemu-system-misc",
    # No vector facility: QEMU 7.2's TCG computes wrong checksums with it (the kernel's
    # csum_partial uses VCKSM since 6.x): when guests still had a network, every incoming
    # TCP segment was dropped as corrupt (InCsumErrors). vxeh and vxeh2 depend on vx
    # (QEMU 10's max CPU has vxeh2 and warns "'vxeh2' requires 'vxeh'" unless it is off).
    machine_args=("-machine", "s390-ccw-virtio", "-cpu", "max,vx=off,vxeh=off,vxeh2=off"),
    console="ttysclp0",
    serial_device="virtio-serial-ccw",
    kernel_image="arch/s390/boot/bzImage",
    kernel_target="bzImage",
    kconfig_fragment="s390x.config",
    tcg_slowdown=1.0,
    kvm_hosts=("s390x",),
    livepatch_since=(5, 1),
)
