"""The build cache: finished work lives in a directory named by a hash of its inputs.

A build writes into a temporary sibling directory and renames it into place when complete,
so an interrupted build never leaves a half-made entry that a later run would trust.
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
from typing import Callable, Iterable, Union

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


def entry(kind: str, key: str, build: Callable[[Path], None], describe: str) -> Path:
    """Return the cache dir for (kind, key), calling ``build(tmpdir)`` first if it is absent."""
    final = root() / kind / key
    if (final / ".complete").exists():
        return final
    with locked(root() / kind / f".{key}.lock"):
        if (final / ".complete").exists():
            return final
        tmp = final.with_name(f".{key}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        started = time.monotonic()
        progress(f"building {describe} -> {final}")
        build(tmp)
        (tmp / ".complete").write_text(json.dumps({"built": time.time()}))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        progress(f"built {describe} in {time.monotonic() - started:.1f}s")
    return final
