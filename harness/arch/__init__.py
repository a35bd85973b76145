"""Architecture profiles: everything that differs between guest architectures, as data.

One small module per architecture (like kunit_tool's qemu_configs) defines ``PROFILE``;
logic elsewhere reads fields of the profile and never branches on the architecture's name.
"""
from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass, field
from typing import Tuple

from ..errors import UnknownArch

NAMES = ("x86_64", "ppc64le", "s390x", "arm64")


@dataclass(frozen=True)
class ArchProfile:
    name: str                 # our name, also `uname -m` in the guest
    debian_arch: str          # Debian's name for the architecture
    kernel_arch: str          # ARCH= for the kernel's make
    gnu_triplet: str          # prefix of the cross toolchain's programs
    cross_gcc_package: str    # Debian package with <triplet>-gcc
    cross_libc_package: str   # Debian package with the C library <triplet>-gcc links against
    qemu_binary: str
    qemu_package: str         # Debian package that provides qemu_binary
    machine_args: Tuple[str, ...]   # -machine/-cpu/firmware options
    console: str              # the kernel's console= device
    # QEMU's virtio serial controller; SSH runs over one of its ports. With ioeventfd=off
    # QEMU handles the guest's notifications at once: with them queued for its main loop,
    # a starved QEMU (2 cores, 3 guests) lost wake-ups and an x86_64 port stalled for a
    # minute. s390x goes without it (it costs its boot 0.3 s); the SSH keepalive
    # (guest._keep_alive) wakes a stalled port there within a second.
    serial_device: str
    kernel_image: str         # kernel to boot, relative to a kernel build dir
    kernel_target: str        # the make target that builds kernel_image
    kconfig_fragment: str     # file under images/kconfig/ merged for source builds
    # How much slower than x86_64 under TCG this guest runs; scales every timeout.
    tcg_slowdown: float = 1.0
    # Host `uname -m` values on which KVM can run this guest at all.
    kvm_hosts: Tuple[str, ...] = ()
    kernel_cmdline: Tuple[str, ...] = field(default_factory=tuple)
    tcg_accel: str = "tcg"    # the -accel value under TCG
    # What -smp's CPUs are ("cores" or "sockets"): QEMU makes them cores of one socket,
    # and the firmware of a guest without ACPI may describe only one CPU per socket.
    cpu_unit: str = "cores"
    # The first Linux version with livepatch (HAVE_LIVEPATCH) on this architecture.
    livepatch_since: Tuple[int, int] = (4, 0)

    def cross_compile(self, host_machine: str | None = None) -> str:
        """CROSS_COMPILE= value: empty when the host is this architecture."""
        host = host_machine or platform.machine()
        return "" if host == self.name else f"{self.gnu_triplet}-"


def get(name: str) -> ArchProfile:
    if name not in NAMES:
        raise UnknownArch(name, NAMES)
    return importlib.import_module(f"{__name__}.{name}").PROFILE


def all_profiles():
    return [get(n) for n in NAMES]
