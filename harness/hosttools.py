"""Host programs the harness runs, the Debian packages that provide them, and installing them.

``require()`` fails with the package to install; ``install_missing()`` (used by ``klp-harness
setup`` and the ./klp wrapper, as root) installs what is missing through apt-get.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Dict, Iterable, List, Optional, Tuple

from . import arch as archmod
from .errors import HarnessError, MissingHostTool

# Programs every run needs, whatever the architecture: program -> Debian package.
COMMON: Dict[str, str] = {
    "mmdebstrap": "mmdebstrap",        # guest userspace and kernel packages, no emulation
    "depmod": "kmod",                  # module index for the modules an initramfs carries
    "cpio": "cpio",                    # packs the initramfs
    "make": "make",                    # Kbuild for livepatch modules
    "gcc": "gcc",
    "xz": "xz-utils",                  # Debian's linux-source tarball
    "readelf": "binutils",             # libraries the guest's programs need
    "bwrap": "bubblewrap",             # enters a distribution release's build root
}


# What building a kernel from source needs beyond the compiler. An absolute path stands for
# a file the package installs (here headers; libc.a in static_libc_for).
KERNEL_BUILD: Dict[str, str] = {
    "bc": "bc", "flex": "flex", "bison": "bison", "perl": "perl",
    "/usr/include/libelf.h": "libelf-dev",      # objtool (x86)
    "/usr/include/openssl/evp.h": "libssl-dev",  # scripts/sign-file, certs/
}

# What the kernel's scripts/livepatch/klp-build needs (livepatches from source patches).
# Without xxhash's header objtool builds without its `klp` subcommand, silently.
KLP_BUILD: Dict[str, str] = {
    "/usr/include/xxhash.h": "libxxhash-dev", "recountdiff": "patchutils", "gawk": "gawk",
    "patch": "patch", "objcopy": "binutils",
}


# What the harness's own tests need beyond a run (./klp test): a real browser for the
# QA report's page, dpkg-deb for candidate package files.
TESTS: Dict[str, str] = {"chromium": "chromium", "dpkg-deb": "dpkg"}


def compiler_for(profile: "archmod.ArchProfile") -> Tuple[str, str]:
    """The C compiler that builds kernels and modules for ``profile``, and its package."""
    cross = profile.cross_compile()
    return (f"{cross}gcc", profile.cross_gcc_package) if cross else ("gcc", "gcc")


def static_libc_for(profile: "archmod.ArchProfile",
                    host_machine: Optional[str] = None) -> Tuple[str, str]:
    """The libc.a that static guest programs link against, and its package: the host's
    own libc6-dev natively, else the cross package, which Debian puts under /usr/<triplet>."""
    if profile.cross_compile(host_machine):
        return f"/usr/{profile.gnu_triplet}/lib/libc.a", profile.cross_libc_package
    return f"/usr/lib/{profile.gnu_triplet}/libc.a", "libc6-dev"


def needed_for(arches: Iterable[str], builds_kernel: bool = False,
               klp_build: bool = False, tests: bool = False) -> Dict[str, str]:
    """Programs (and their packages) needed to build and boot images for these arches,
    and to build the static programs run in their guests (see programs.py)."""
    needed = dict(COMMON, **(KERNEL_BUILD if builds_kernel else {}),
                  **(KLP_BUILD if klp_build else {}), **(TESTS if tests else {}))
    for name in arches:
        profile = archmod.get(name)
        needed[profile.qemu_binary] = profile.qemu_package
        for program, package in (compiler_for(profile), static_libc_for(profile)):
            needed[program] = package
    return needed


def needed_to_run(arches: Iterable[str]) -> Dict[str, str]:
    """Programs (and their packages) a machine needs that runs what a bundle brought and
    builds nothing (``setup --run-only``): each arch's QEMU, and modinfo for --ko-dir."""
    needed = {"modinfo": "kmod"}
    for name in arches:
        profile = archmod.get(name)
        needed[profile.qemu_binary] = profile.qemu_package
    return needed


def _find(program: str) -> Optional[str]:
    if program.startswith("/"):
        return program if os.path.exists(program) else None
    return shutil.which(program)


def missing(programs: Dict[str, str]) -> Dict[str, str]:
    return {prog: pkg for prog, pkg in programs.items() if _find(prog) is None}


def require(program: str, package: str, why: str = "") -> str:
    path = _find(program)
    if path is None:
        raise MissingHostTool(program, package, why)
    return path


def apt_candidate(package: str) -> bool:
    """Whether this host's apt sources offer ``package`` (False if apt-cache is absent)."""
    try:
        out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True,
                             check=False).stdout
    except OSError:
        return False
    return "Candidate:" in out and "Candidate: (none)" not in out


def install_missing(programs: Dict[str, str], out=sys.stderr) -> List[str]:
    """apt-get install the packages of missing programs; returns the packages installed."""
    packages = sorted(set(missing(programs).values()))
    if not packages:
        return []
    if os.geteuid() != 0:
        raise HarnessError(
            "missing host packages: " + " ".join(packages) +
            ": run as root, or install them with: apt-get install " + " ".join(packages))
    print(f"klp-harness: installing host packages: {' '.join(packages)}", file=out, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # A failing index (e.g. an inconsistent security suite) must not stop us: check the
    # programs afterwards instead of trusting apt-get update's exit status.
    subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    still = missing(programs)
    if still:
        raise HarnessError(
            f"apt-get install {' '.join(packages)} did not provide {', '.join(still)}:\n"
            + result.stdout[-3000:])
    return packages
