"""What a bundle import leaves in the cache for lookups that cannot compute their keys.

A build machine finds an image by a key that hashes its kernel's source and config
(kernelbuild.identity); a test machine has neither. So an import records, per image and
arch, which image it brought and the part of the key a checkout computes from its own
files (image.input_hash: recipe, guest files, builder sources). image.build finds the
image by that part: the same checkout finds it, a changed builder or recipe does not.
The other lookups (modules, programs, livepatches) hash only the project's sources and the
image's dir name, and find the bundle's entries by their own keys.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from . import cache
from .log import LOG

KIND = "bundles"   # the cache dir of the records: <image>-<arch>.json each


def record_path(name: str, arch: str) -> Path:
    return cache.root() / KIND / f"{name}-{arch}.json"


def record(name: str, arch: str, base_key: str, image_key: str, bundle: str) -> None:
    """Image ``name`` for ``arch`` is the cache's images/``image_key`` (from ``bundle``),
    for a checkout whose image.input_hash is ``base_key``. The last import wins."""
    path = record_path(name, arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache.write_whole(path, json.dumps({"base_key": base_key, "image_key": image_key,
                                        "bundle": bundle}, indent=2) + "\n")


def image_key(name: str, arch: str, base_key: str) -> Optional[str]:
    """The key of the imported image of ``name`` for ``arch``; None if none was imported,
    or one for another checkout's builder (then said in the log: a build follows)."""
    path = record_path(name, arch)
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    if found["base_key"] != base_key:
        LOG.warning(f"the bundle {found['bundle']} imported for image {name} {arch} was made "
                    "by a harness whose image recipe or builder differs from this checkout's: "
                    "not used (export and import a bundle of this checkout)")
        return None
    return found["image_key"]
