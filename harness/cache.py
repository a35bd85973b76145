"""The build cache: finished work lives in a directory named by a hash of its inputs.

A build writes into a temporary sibling directory and renames it into place when complete,
so an interrupted build never leaves a half-made entry that a later run would trust.

An entry of what a guest boots or loads (``checked``) also records each file's size and
sha256 in its ``.complete`` mark, and is checked before use: a file changed since (an
initrd truncated by a full disk) is rebuilt, or refused naming the file; never booted.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Union

from .errors import HarnessError
from .log import progress

ENV = "KLP_HARNESS_CACHE"


def root() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "klp-harness")


class InputHash:
    """Accumulates the inputs of a build into one hex digest."""

    def __init__(self, kind: str):
        self._h = hashlib.sha256(kind.encode())

    def text(self, label: str, value: str) -> "InputHash":
        self._h.update(f"\0{label}\0{len(value)}\0".encode())
        self._h.update(value.encode())
        return self

    def file(self, label: str, path: Union[str, Path]) -> "InputHash":
        return self.text(label, Path(path).read_bytes().hex())

    def tree(self, label: str, top: Union[str, Path], suffixes: Iterable[str] = ()) -> "InputHash":
        top = Path(top)
        for path in sorted(p for p in top.rglob("*") if p.is_file()):
            if suffixes and path.suffix not in suffixes and path.name not in suffixes:
                continue
            self.file(f"{label}/{path.relative_to(top)}", path)
        return self

    def hexdigest(self, length: int = 16) -> str:
        return self._h.hexdigest()[:length]


def write_whole(path: Path, text: str) -> None:
    """Write ``path`` through a private temporary file, so that a parallel reader (another
    pytest -n worker) sees it whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs building the same entry wait for each other
        yield


COMPLETE = ".complete"   # an entry's mark: written last; JSON, with its files if checked


class CacheCorrupt(HarnessError):
    """A cached file no longer matches what was recorded when it was made."""

    def __init__(self, path: Path, problem: str, remedy: str = ""):
        super().__init__(path, problem, remedy)
        self.path, self.problem, self.remedy = path, problem, remedy

    def __str__(self) -> str:
        return (f"cached file {self.path} {self.problem}: it is not used"
                + (f"; {self.remedy}" if self.remedy else ""))


def entry(kind: str, key: str, build: Optional[Callable[[Path], None]], describe: str,
          checked: bool = False, unbuildable: str = "") -> Path:
    """Return the cache dir for (kind, key), calling ``build(tmpdir)`` first if it is absent.
    ``checked``: its files are checked against its record first, and a changed one makes
    the entry be built anew. ``unbuildable`` (this machine cannot build it: why) makes an
    absent or changed entry an error instead."""
    final = root() / kind / key
    problem = _usable(final, checked)
    if problem is None:
        return final
    with locked(root() / kind / f".{key}.lock"):
        problem = _usable(final, checked)
        if problem is None:
            return final
        if unbuildable or build is None:
            if isinstance(problem, CacheCorrupt):
                raise CacheCorrupt(problem.path, problem.problem, unbuildable)
            raise HarnessError(f"{describe} is not in the cache ({final}), and {unbuildable}")
        if isinstance(problem, CacheCorrupt):
            progress(f"{problem}; building it anew")
        try:
            _build(final, build, describe, checked)
        except HarnessError as e:
            if isinstance(problem, CacheCorrupt):   # the first error is the one to fix
                raise CacheCorrupt(problem.path, problem.problem,
                                   f"building it anew failed: {e}") from e
            raise
    return final


def _build(final: Path, build: Callable[[Path], None], describe: str, checked: bool) -> None:
    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    progress(f"building {describe} -> {final}")
    build(tmp)
    complete(tmp, checked)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _seen[final] = _signature(final)
    progress(f"built {describe} in {time.monotonic() - started:.1f}s")


def complete(path: Path, checked: bool = True) -> None:
    """Mark ``path`` complete; ``checked``: with the size and sha256 of each of its files."""
    mark: Dict[str, object] = {"built": time.time()}
    if checked:
        mark["files"] = files_of(path)
    write_whole(path / COMPLETE, json.dumps(mark))


def files_of(top: Path) -> Dict[str, List]:
    """Each file under ``top`` (but the mark) -> [size, sha256]; a symlink -> ["->", target]."""
    found: Dict[str, List] = {}
    for here, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(here, d))]:
            path = Path(here, name)
            rel = str(path.relative_to(top))
            if rel == COMPLETE:
                continue
            if path.is_symlink():
                found[rel] = ["->", os.readlink(path)]
            else:
                found[rel] = [path.stat().st_size, sha256(path)]
    return found


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# The check's cost: each checked entry is hashed in full once per process, on its first
# use (the kernel and initrd of an image, ~0.2 s); later uses in the same process only
# compare each file's size and mtime with what that first check saw, and hash again only
# if they moved. Hashing on first use, not trusting size and mtime alone, catches a file
# changed in place with its time kept (a copy with `cp -p`, a restored backup).
_seen: Dict[Path, Dict[str, tuple]] = {}


def _signature(top: Path) -> Dict[str, tuple]:
    found = {}
    for here, dirs, files in os.walk(top):
        for name in files + dirs:
            st = os.lstat(os.path.join(here, name))
            found[os.path.join(here, name)] = (st.st_size, st.st_mtime_ns)
    return found


def _usable(final: Path, checked: bool):
    """None if the entry is there, complete and (``checked``) as recorded; else the
    problem: False if it is absent, a CacheCorrupt naming a changed file."""
    mark = final / COMPLETE
    if not mark.exists():
        return False
    if not checked:
        return None
    if final in _seen and _signature(final) == _seen[final]:
        return None
    try:
        recorded = json.loads(mark.read_text() or "{}").get("files")
    except ValueError:
        return CacheCorrupt(mark, "is not the JSON record it was written as")
    if recorded is None:   # made before entries kept a record: recorded now, on first use
        # (the image keys changed with this check, so images were all made anew with it)
        complete(final)
        _seen[final] = _signature(final)
        return None
    problem = verify(final, recorded)
    if problem is None:
        _seen[final] = _signature(final)
    return problem


def intact(path: Path) -> bool:
    """``path`` is a complete entry whose files are as recorded."""
    return _usable(path, True) is None


def verify(top: Path, recorded: Dict[str, List]) -> Optional[CacheCorrupt]:
    """The first file under ``top`` that differs from ``recorded`` (files_of's form), as a
    CacheCorrupt naming it; None if all match. Sizes are compared first: cheap, and a
    truncated file is then told as such."""
    for rel, (size, digest) in sorted(recorded.items()):
        path = top / rel
        if size == "->":
            if not path.is_symlink() or os.readlink(path) != digest:
                return CacheCorrupt(path, f"is no longer a link to {digest}")
        elif not path.is_file() or path.is_symlink():
            return CacheCorrupt(path, "is missing")
        elif path.stat().st_size != size:
            return CacheCorrupt(path, f"is {path.stat().st_size} bytes, but was {size} "
                                      "when it was made (truncated or overwritten)")
    for rel, (size, digest) in sorted(recorded.items()):
        if size != "->" and sha256(top / rel) != digest:
            return CacheCorrupt(top / rel, "has changed since it was made (its sha256 "
                                           "differs)")
    return None
