from . import ArchProfile

PROFILE = ArchProfile(
    name="s390x",
    debian_arch="s390x",
    kernel_arch="s390",
    gnu_triplet="s390x-linux-gnu",
    cross_gcc_package="gcc-s390x-linux-gnu",
    qemu_binary="qemu-system-s390x",
    qemu_package="qemu-system-misc",
    machine_args=("-machine", "s390-ccw-virtio", "-cpu", "max"),
    console="ttysclp0",
    nic_device="virtio-net-ccw",
    kernel_image="arch/s390/boot/bzImage",
    kconfig_fragment="s390x.config",
    tcg_slowdown=1.0,
    kvm_hosts=("s390x",),
)
