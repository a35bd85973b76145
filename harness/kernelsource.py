"""Kernel source trees a kernel is built from, each with an identity that names its content.

Two kinds: Debian's ``linux-source-X.Y`` package (fetched once into the cache, read-only),
and a local tree the user points at (``--kernel-tree``; a git checkout is identified by its
commit and its uncommitted changes). The identity is what the kernel build's cache key is
made of; ``build_slot`` says which persistent build dir the tree builds in, so a local tree
keeps one build dir across commits and rebuilds incrementally.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from . import cache, debian, phases
from .errors import BuildError, HarnessError
from .log import progress

SELFTESTS = "tools/testing/selftests/livepatch"   # in the kernel source and in the image


@dataclass(frozen=True)
class KernelSource:
    tree: Path
    identity: str       # changes whenever the content may have changed
    build_slot: str     # names the build dir this tree builds in (safe as a file name)
    patches: Tuple[str, ...] = ()      # the patches applied to ``base`` (their file names)
    base: Optional["KernelSource"] = None   # the tree the patches were applied to
    changed: Tuple[str, ...] = ()      # the files the patches touch (relative paths)

    @property
    def version(self) -> str:
        return makefile_version((self.tree / "Makefile").read_text())

    @property
    def label(self) -> str:
        """The version, and the patches if any: how the build line names the kernel."""
        return self.version + (f" + {', '.join(self.patches)}" if self.patches else "")


def makefile_version(text: str) -> str:
    v = {k: re.search(rf"^{k} = (\d+)", text, re.M) for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL")}
    return ".".join(m.group(1) if m else "?" for m in v.values())


def version_tuple(text: str) -> Tuple[int, ...]:
    """'6.12.107' or '6.1.0-50-amd64' -> (6, 12, 107) / (6, 1, 0)."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        raise ValueError(f"not a kernel version: {text!r}")
    return tuple(int(x) for x in m.groups(default="0"))


def copy_tree(src: Path, dest: Path) -> bool:
    """Copy a kernel tree (built or not) into ``dest``, without .git, keeping the files'
    times (so make finds a copied build up to date); False if tar failed. tar, not a
    Python copy: 80,000 files. The POSIX format keeps the times' fractions of a second:
    truncated to whole seconds (tar's default format), a copied s390x build regenerated
    its facility headers and so compiled every object again."""
    dest.mkdir(parents=True, exist_ok=True)
    pack = subprocess.Popen(["tar", "-C", str(src), "--exclude=./.git", "--format=posix",
                             "-cf", "-", "."], stdout=subprocess.PIPE)
    unpack = subprocess.run(["tar", "-C", str(dest), "-xf", "-"], stdin=pack.stdout)
    return pack.wait() == 0 and unpack.returncode == 0


def debian_package(package: str, suite: str, mirror) -> KernelSource:
    """Debian's ``package`` (linux-source-X.Y) from ``suite``, unpacked once into the cache.

    The cache keeps the version first fetched; a newer upload in the suite is picked up only
    after that cache entry is removed (``rm -r <cache>/sources/<package>-<suite>``).
    """
    def fetch(out: Path) -> None:
        pkgs, log = out / "package", out / "fetch.log"
        debian.extract([package], suite, debian.host_arch(), mirror(), pkgs, log)
        tarballs = sorted((pkgs / "usr/src").glob("linux-source-*.tar.*"))
        if len(tarballs) != 1:
            raise BuildError(f"{package} from {suite} holds {len(tarballs)} source tarballs, "
                             "expected one", log)
        progress(f"unpacking {tarballs[0].name} (about 15 s)")
        (out / "tree").mkdir()
        phases.run(["tar", "-xf", str(tarballs[0]), "-C", str(out / "tree"),
                        "--strip-components=1"], check=True)
        changelog = pkgs / "usr/share/doc" / package / "changelog.Debian.gz"
        with gzip.open(changelog, "rt") as f:
            first = f.readline()
        (out / "version").write_text(first.split("(")[1].split(")")[0] + "\n")
        subprocess.run(["rm", "-rf", str(pkgs)], check=True)

    def fetch_timed(out: Path) -> None:
        with phases.phase("sources"):
            fetch(out)

    entry = cache.entry("sources", _entry_key(package, suite), fetch_timed,
                        f"{package} from {suite}")
    version = (entry / "version").read_text().strip()
    return KernelSource(tree=entry / "tree", identity=f"debian {package} {version}",
                        build_slot=f"{package}-{version}")


def _entry_key(package: str, suite: str) -> str:
    return f"{package}-{suite}"


def fetched_version(package: str, suite: str) -> str:
    """The version of ``package`` that debian_package fetched from ``suite`` into the
    cache, without fetching; "" if it has not (yet)."""
    path = cache.root() / "sources" / _entry_key(package, suite) / "version"
    return path.read_text().strip() if path.is_file() else ""


def local_tree(path: Path) -> KernelSource:
    """A kernel tree on this host. Git trees: commit + hash of uncommitted changes; other
    trees: the newest modification time of any file (a full walk, about a second)."""
    tree = Path(path).resolve()
    if not (tree / "Makefile").is_file() or not (tree / "kernel" / "livepatch").is_dir():
        raise HarnessError(f"--kernel-tree {path}: not a Linux kernel source tree "
                           "(no Makefile or kernel/livepatch/ there)")
    slot = f"tree-{hashlib.sha256(str(tree).encode()).hexdigest()[:12]}"
    git = ["git", "-C", str(tree)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        dirty = hashlib.sha256()
        for cmd in (["diff", "HEAD", "--binary"],
                    ["ls-files", "--others", "--exclude-standard"]):
            dirty.update(subprocess.run([*git, *cmd], capture_output=True, check=True).stdout)
        identity = f"git {head.stdout.strip()} dirty {dirty.hexdigest()[:16]}"
    else:
        newest = max((e.stat().st_mtime_ns for e in _walk(tree)), default=0)
        identity = f"tree {tree} mtime {newest}"
    return KernelSource(tree=tree, identity=identity, build_slot=slot)


def _walk(top: Path):
    for entry in os.scandir(top):
        if entry.is_dir(follow_symlinks=False):
            if entry.name != ".git":
                yield from _walk(Path(entry.path))
        else:
            yield entry


def patched(source: KernelSource, patches: Sequence[Path]) -> KernelSource:
    """``source`` with ``patches`` applied in order (``patch -p1``), in a tree of its own in
    the cache: hard links to the unchanged files of ``source`` (patch replaces the files it
    changes, so ``source`` itself stays as it was). Its identity names the patches'
    content: it builds in a dir of its own. A patch that does not apply is an error naming
    the patch, the file and the hunk, raised before anything is built."""
    texts = []
    for p in patches:
        if not Path(p).is_file():
            raise HarnessError(f"--kernel-patch {p}: no such file")
        texts.append(Path(p).read_bytes())
    # The diffs name the tree, not the mails around them: a reworded message builds nothing.
    digest = hashlib.sha256(b"".join(hashlib.sha256(_diff_part(t)).digest()
                                     for t in texts)).hexdigest()
    changed = tuple(dict.fromkeys(f for t in texts for f in _patched_files(t.decode(
        errors="replace"))))

    def apply(out: Path) -> None:
        subprocess.run(["cp", "-al", str(source.tree), str(out / "tree")], check=True)
        for p in patches:
            _apply(Path(p), out / "tree", source)

    entry = cache.entry("sources", f"{source.build_slot}-patched-{digest[:12]}", apply,
                        f"{source.build_slot} with {', '.join(Path(p).name for p in patches)}")
    return KernelSource(tree=entry / "tree", identity=f"{source.identity} patches {digest}",
                        build_slot=f"{source.build_slot}-p{digest[:10]}",
                        patches=tuple(Path(p).name for p in patches), base=source,
                        changed=changed)


def _apply(patch: Path, tree: Path, source: KernelSource) -> None:
    done = subprocess.run(["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch",
                           "--reject-file=-", "-d", str(tree), "-i", str(patch.resolve())],
                          capture_output=True, text=True, errors="replace")
    if done.returncode == 0:
        return
    said = done.stdout + done.stderr
    failed = re.search(r"^Hunk #(\d+) FAILED at (\d+)", said, re.M)
    files = re.findall(r"^(?:patching|checking) file (\S+)", said[:failed.start()] if failed
                       else said, re.M)
    if failed and files:
        header = _hunk_header(patch.read_text(errors="replace"), files[-1], int(failed[1]))
        raise HarnessError(f"--kernel-patch {patch}: hunk #{failed[1]} of {files[-1]} "
                           f"({header}) does not apply to Linux {source.version} "
                           f"({source.identity}): patch says it fails at line {failed[2]}")
    raise HarnessError(f"--kernel-patch {patch} does not apply to Linux {source.version} "
                       f"({source.identity}):\n{said.strip()}")


def _diff_part(text: bytes) -> bytes:
    """A patch file from its first diff line on (without a mail's headers and message)."""
    m = re.search(rb"^(diff |--- )", text, re.M)
    return text[m.start():] if m else text


def _patched_files(text: str) -> List[str]:
    """The files a unified diff changes (``+++ b/path``, -p1)."""
    return [m.split("/", 1)[1] for m in re.findall(r"^\+\+\+ (\S+)", text, re.M)
            if "/" in m and m != "/dev/null"]


def _hunk_header(text: str, path: str, number: int) -> str:
    """The ``@@ ... @@`` line of hunk ``number`` of ``path`` in a unified diff."""
    current, count = None, 0
    for line in text.splitlines():
        if line.startswith("+++ "):
            name = line[4:].split()[0]
            current, count = (name.split("/", 1)[1] if "/" in name else name), 0
        elif line.startswith("@@") and current == path:
            count += 1
            if count == number:
                return line
    return f"hunk {number}"
