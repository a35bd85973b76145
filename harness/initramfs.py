"""Assembling the guest's initramfs from unpacked Debian packages of the guest architecture.

Only the programs a recipe names are kept, with the shared libraries they need (found with
binutils' readelf, which reads any architecture's ELF), plus our init and sshd set-up. An
emulated kernel unpacks every byte of the initramfs at boot, so small is fast.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, List, Set

from cryptography.hazmat.primitives import serialization

from . import hosttools, phases, sshkey
from .errors import BuildError
from .paths import GUEST_FILES

LIB_DIRS = ("lib/*-linux-gnu*", "usr/lib/*-linux-gnu*", "lib64", "lib", "usr/lib")
# Debian systems have a merged /usr (/bin is /usr/bin), so scripts name a program by either
# path (the selftests run /bin/stat; coreutils installs /usr/bin/stat). Without the twin
# link, busybox --install would put its own applet at the other path and shadow the program.
MERGED_DIRS = {"bin": "usr/bin", "sbin": "usr/sbin", "usr/bin": "bin", "usr/sbin": "sbin"}


def _elf_needs(path: Path) -> List[str]:
    """The interpreter and DT_NEEDED libraries of an ELF file ([] for scripts and data)."""
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return []
    out = subprocess.run(["readelf", "-d", "-l", "-W", str(path)], capture_output=True,
                         text=True).stdout
    needs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    interp = re.search(r"Requesting program interpreter: ([^\]]+)\]", out)
    if interp:
        needs.append(interp.group(1))
    return needs


def _find_library(rootfs: Path, name: str) -> Path:
    if name.startswith("/"):
        return rootfs / name.lstrip("/")
    for pattern in LIB_DIRS:
        for d in rootfs.glob(pattern):
            if (d / name).exists():
                return d / name
    raise BuildError(f"library {name} not found in the guest userspace")


def closure(rootfs: Path, patterns: Iterable[str]) -> Set[Path]:
    """Paths (relative to rootfs) of the named programs, links they pass and libraries."""
    hosttools.require("readelf", "binutils", "to find the libraries guest programs need")
    todo: List[Path] = []
    for pattern in patterns:
        matches = sorted(rootfs.glob(pattern))
        if not matches:
            raise BuildError(f"program '{pattern}' is not in the guest userspace packages")
        todo.extend(matches)
    keep: Set[Path] = set()
    while todo:
        path = todo.pop()
        rel = path.relative_to(rootfs)
        if rel in keep:
            continue
        keep.add(rel)
        if path.is_symlink():
            target = Path(os.readlink(path))
            todo.append(rootfs / target.relative_to("/") if target.is_absolute()
                        else path.parent / target)
            continue
        if path.is_dir():
            todo.extend(path.iterdir())
            continue
        todo.extend(_find_library(rootfs, lib) for lib in _elf_needs(path))
    return {Path(os.path.normpath(p)) for p in keep}


def assemble(unpacked: Path, dest: Path, programs: Iterable[str], extra_trees: Iterable[str],
             boot_modules: List[str]) -> str:
    """Make the guest tree ``dest`` from ``unpacked``; return the sshd host public key."""
    kept = sorted(closure(unpacked, programs) | {Path(t) for t in extra_trees})
    for rel in kept:
        src, dst = unpacked / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            if not dst.is_symlink():
                dst.symlink_to(os.readlink(src))
        elif src.is_dir():
            shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    _link_merged_usr(dest, kept)
    etc = dest / "etc"
    (etc / "klp-harness").mkdir(parents=True, exist_ok=True)
    shutil.copy(GUEST_FILES / "inittab", etc / "inittab")
    (etc / "ssh").mkdir(exist_ok=True)
    shutil.copy(GUEST_FILES / "sshd_config", etc / "ssh/sshd_config")
    shutil.copy(GUEST_FILES / "rc.sh", etc / "klp-harness/rc.sh")
    os.chmod(etc / "klp-harness/rc.sh", 0o755)
    (etc / "klp-harness/boot-modules").write_text(" ".join(boot_modules) + "\n")
    # busybox sh as the login shell: sshd runs every session's command with it, and it
    # starts in 15 ms under TCG where bash takes 90 ms (linking). It prefers its own
    # applets over the programs in PATH: name a program by its path to get it.
    # sshd's unprivileged pre-authentication process runs as sshd (privilege separation).
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "shells").write_text("/bin/sh\n/bin/bash\n")
    for d in ("proc", "sys", "dev", "tmp", "run", "root/.ssh", "var/log",
              "bin", "sbin", "usr/bin", "usr/sbin"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "root", 0o700)
    for link, target in (("init", "bin/busybox"), ("bin/sh", "busybox")):
        if not (dest / link).exists():
            (dest / link).symlink_to(target)
    _console_node(dest / "dev/console")
    return _host_key(etc / "ssh/ssh_host_ed25519_key")


def _link_merged_usr(dest: Path, kept: Iterable[Path]) -> None:
    """Give each kept program its merged-/usr twin path (a relative link) if it is free."""
    for rel in kept:
        twin_dir = MERGED_DIRS.get(str(rel.parent))
        if twin_dir is None or (dest / rel).is_dir():
            continue
        twin = dest / twin_dir / rel.name
        if not (twin.exists() or twin.is_symlink()):
            twin.parent.mkdir(parents=True, exist_ok=True)
            twin.symlink_to(os.path.relpath(dest / rel, twin.parent))


def _host_key(key_file: Path) -> str:
    """Made here, once, not at every boot of a slow emulated guest; returns the public key."""
    key = sshkey.host_key()
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
    os.chmod(key_file, 0o600)   # sshd refuses a host key others can read
    return sshkey.public_line(key)


def _console_node(path: Path) -> None:
    """/dev/console must exist before init opens it. Making it needs root; the kernel's
    built-in initramfs carries one too, so going without when unprivileged is safe."""
    try:
        os.mknod(path, 0o600 | 0o020000, os.makedev(5, 1))
    except (PermissionError, FileExistsError):
        pass


def pack(tree: Path, dest: Path) -> None:
    """An uncompressed newc cpio: the kernel unpacks it without decompressing."""
    hosttools.require("cpio", "cpio", "to pack the initramfs")
    paths = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    with open(dest, "wb") as out:
        phases.run(["cpio", "--quiet", "--null", "-o", "-H", "newc", "-R", "0:0"],
                       input="\0".join(paths).encode() + b"\0", cwd=tree, stdout=out, check=True)
