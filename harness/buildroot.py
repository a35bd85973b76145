"""Build roots: a distribution release's own toolchain, for modules of its kernels.

A distribution kernel's out-of-tree modules must be built with the compiler that built
the kernel (its headers name it), and its kbuild programs (modpost, objtool) are linked
against that release's libraries. When this host lacks that compiler (Debian 12 has no
gcc-14 for trixie's kernels), the modules are built inside a build root of the kernel's
own release: a directory made by mmdebstrap from Debian packages (essential packages, the
compiler, make, libc6-dev and the kernel's kbuild package), cached by a hash of what it is
made of and reused, and entered with bubblewrap (no root needed, nothing left mounted).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from . import cache, debian, hosttools
from .errors import BuildError
from .log import progress

# What every build root has beside the compiler and the kernel's kbuild package.
BASE_PACKAGES = ("make", "libc6-dev")


@dataclass(frozen=True)
class Toolchain:
    """The toolchain a distribution kernel's modules need: its compiler program (as the
    headers name it), and the release and packages of a build root that has it."""
    compiler: str                 # x86_64-linux-gnu-gcc-14
    suite: str                    # the kernel's suite: trixie, trixie-backports
    debian_arch: str
    packages: Tuple[str, ...]     # gcc-14, linux-kbuild-6.12.117+deb13, make, libc6-dev

    def to_json(self) -> dict:
        return {"compiler": self.compiler, "suite": self.suite,
                "debian_arch": self.debian_arch, "packages": list(self.packages)}

    @classmethod
    def from_json(cls, d: Optional[dict]) -> Optional["Toolchain"]:
        if not d:
            return None
        return cls(d["compiler"], d["suite"], d["debian_arch"], tuple(d["packages"]))

    def on_host(self) -> bool:
        return shutil.which(self.compiler) is not None

    def key(self) -> str:
        return (cache.InputHash("buildroot").text("suite", self.suite)
                .text("arch", self.debian_arch).text("packages", " ".join(sorted(self.packages)))
                .hexdigest())

    def cannot_make_root(self) -> str:
        """Why a build root cannot serve here ("" if it can): its programs must run on
        this host without emulation."""
        host = debian.host_arch()
        if self.debian_arch != host:
            return (f"a build root of {self.suite} for {self.debian_arch} would need emulation "
                    f"on this {host} host")
        return ""


def compiler_package(program: str) -> str:
    """The Debian package of a compiler the headers name: x86_64-linux-gnu-gcc-14 -> gcc-14."""
    return re.sub(r"^[\w-]*-linux-gnu-", "", program)


def kbuild_package(headers: Path) -> Optional[str]:
    """The kbuild package of Debian kernel headers: their ``scripts`` link points into
    /usr/lib/linux-kbuild-<version>, the package's own directory (None if not Debian's)."""
    link = headers / "scripts"
    if not link.is_symlink():
        return None
    for part in Path(str(link.readlink())).parts:
        if part.startswith("linux-kbuild-"):
            return part
    return None


def ensure(toolchain: Toolchain, mirror: str) -> Path:
    """The build root of ``toolchain``, made now if the cache does not have it yet."""
    why = toolchain.cannot_make_root()
    if why:
        raise BuildError(f"no build root for {toolchain.compiler}: {why}")
    for program, package in (("mmdebstrap", "mmdebstrap"), ("bwrap", "bubblewrap")):
        hosttools.require(program, package, f"to make a build root with {toolchain.compiler}")

    def make(out: Path) -> None:
        root = out / "root"
        log = out / "mmdebstrap.log"
        cmd = ["mmdebstrap", "--variant=essential", f"--architectures={toolchain.debian_arch}",
               f"--include={','.join(toolchain.packages)}", debian.base_suite(toolchain.suite),
               str(root), *debian.sources(toolchain.suite, mirror)]
        progress(f"making a {toolchain.suite} build root with "
                       f"{', '.join(toolchain.packages)} (about a minute)")
        debian.mmdebstrap(cmd, log, f"making a {toolchain.suite} build root "
                          f"({', '.join(toolchain.packages)})")
        if not (root / "usr/bin" / toolchain.compiler).exists():
            raise BuildError(f"the {toolchain.suite} build root has no {toolchain.compiler} "
                             f"after installing {', '.join(toolchain.packages)}", log)

    return cache.entry("buildroots", f"{toolchain.suite}-{toolchain.debian_arch}-"
                       f"{toolchain.key()}", make,
                       f"{toolchain.suite} build root for {toolchain.compiler}") / "root"


def wrap(root: Path, cmd: Sequence[str], read_only: Sequence[Path],
         writable: Sequence[Path]) -> List[str]:
    """``cmd`` run inside the build ``root``, with these host directories at the same paths
    (the kbuild tree read-only, the module's build dir writable)."""
    args = ["bwrap", "--bind", str(root), "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent"]
    for path in read_only:
        args += ["--ro-bind", str(path), str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    return args + ["--chdir", str(writable[0] if writable else "/"), "--", *cmd]
