"""klp-build's original build, shared with the image's kernel: each kernel compiled once.

klp-build (``scripts/livepatch/klp-build``) starts with ``make clean`` and builds the
original kernel in-tree with make variables of its own (in 7.3: ``KCFLAGS=-ffunction-sections
-fdata-sections``, ``KLP_SYMIDS=1``, ``KBUILD_MODPOST_WARN=1``), keeps its objects in
``klp-tmp/1-orig`` and diffs each patched build against them. Those variables must be on
every object, which is why it cleans first: a kernel built without them does not serve.

So where klp-build can run (the tree has it, the arch selects ``HAVE_KLP_BUILD``, no cross
compiler), the image's kernel is built in-tree with exactly those variables, read from the
tree's own script: it is then the very kernel klp-build would build, and the kernel the
livepatches are diffed against is the one the guest boots. A klp-build workspace is a copy
of that built tree, seeded here as klp-build's step 1 leaves it (``copy_orig_objects``),
and klp-build starts at step 2. A script whose build step we cannot read gets no sharing:
the workspace then builds its original kernel itself, as before.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

from . import arch as archmod

SCRIPT = "scripts/livepatch/klp-build"
MARKER = "klp-harness-klp-build-vars"   # in a tree built this way: the variables, one a line
TARGETS = ("vmlinux", "modules")          # what klp-build's build_kernel() makes
TMP, ORIG = "klp-tmp", "klp-tmp/1-orig"


def make_vars(tree: Path, profile: archmod.ArchProfile) -> Optional[Dict[str, str]]:
    """The make variables of klp-build's original build, when the image's kernel of
    ``profile`` from ``tree`` can be that build; else None."""
    script = tree / SCRIPT
    if profile.cross_compile() or not script.is_file():
        return None   # klp-build does not cross-compile
    kconfig = tree / "arch" / profile.kernel_arch / "Kconfig"
    if not kconfig.is_file() or not re.search(r"^\s*select HAVE_KLP_BUILD\b",
                                              kconfig.read_text(errors="replace"), re.M):
        return None
    return build_kernel_vars(script.read_text(errors="replace"))


def build_kernel_vars(script: str) -> Optional[Dict[str, str]]:
    """``NAME=value`` words that klp-build's build_kernel() adds to its make command, or None
    if the function is not there as we know it (then nothing is shared)."""
    m = re.search(r"^build_kernel\(\) \{\n(.*?)^\}", script, re.M | re.S)
    if not m:
        return None
    found: Dict[str, str] = {}
    targets = []
    depth = 0   # words added under an `if` (V=1 when verbose) are not the build's own
    for line in m.group(1).splitlines():
        depth += bool(re.match(r"\s*if\b", line)) - bool(re.match(r"\s*fi\b", line))
        word = re.match(r'\s*cmd\+=\("([^"]*)"\)', line)
        if depth or not word:
            continue
        name, eq, value = word.group(1).partition("=")
        if eq and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            found[name] = value
        elif re.fullmatch(r"[a-z_]+", name):
            targets.append(name)
    if "KCFLAGS" not in found or sorted(targets) != sorted(TARGETS):
        return None
    return found


def is_shared(build_dir: Path) -> bool:
    """Was the kernel in ``build_dir`` built in-tree as klp-build's original build?"""
    return (build_dir / MARKER).is_file()


def recorded_vars(build_dir: Path) -> Dict[str, str]:
    """The variables a shared build was made with (its MARKER)."""
    lines = (build_dir / MARKER).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def settle_copy(build_dir: Path, tree: Path, profile: archmod.ArchProfile) -> None:
    """Make ``tree``, a copy (times kept) of the shared build in ``build_dir``, up to date
    for make. objtool's own build (tools/objtool) records absolute paths, so in a copy the
    next make rebuilds it, and Kbuild makes every object depend on the objtool binary: all
    of them would be compiled again. So objtool is rebuilt here (seconds), and given the
    original's time: the same program, built from the same sources."""
    objtool = Path("tools/objtool/objtool")
    cmd = ["make", "-s", "-C", str(tree), f"ARCH={profile.kernel_arch}",
           *(f"{k}={v}" for k, v in recorded_vars(build_dir).items()), str(objtool.parent)]
    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if done.returncode != 0 or not (tree / objtool).exists():
        raise RuntimeError(f"rebuilding objtool in {tree} failed: {done.stdout}{done.stderr}")
    was = (build_dir / objtool).stat()
    os.utime(tree / objtool, ns=(was.st_atime_ns, was.st_mtime_ns))


def seed(tree: Path) -> None:
    """Leave ``tree`` (a copy of a shared build) as klp-build's step 1 would: the objects of
    vmlinux and of every module in ``klp-tmp/1-orig`` (klp-build's find_objects and
    copy_orig_objects: vmlinux.o and each module's .o, not hidden files or dirs, not .ko
    files at the top), vmlinux beside them, then its timestamp and completion marks."""
    tmp, orig = tree / TMP, tree / ORIG
    shutil.rmtree(tmp, ignore_errors=True)
    orig.mkdir(parents=True)
    for here, dirs, files in os.walk(tree):
        top = Path(here) == tree
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (top and d == TMP)]
        for name in files:
            if name.startswith(".") or not (name.endswith(".ko") and not top
                                            or top and name == "vmlinux.o"):
                continue
            rel = (Path(here) / name).relative_to(tree)
            obj = str(rel).replace(".ko", ".o", 1)
            (orig / obj).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tree / obj, orig / obj)
    shutil.copy(tree / "vmlinux", orig / "vmlinux")
    (tmp / "timestamp").touch()
    (orig / ".complete").touch()
