"""A pool of guests per architecture: how many, and which tests go to which guest.

With two or more vCPUs every livepatch transition waits for the kernel's retry work (once
a second), so a guest mostly waits and the host's cores idle: several guests of one arch,
each running its share of the tests, get past that floor. The share is decided by expected
duration, known from earlier runs (kept in the cache per image), longest first onto the
least loaded guest (LPT); a test never timed before counts as the median of those that
were, so new tests spread too.
"""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import cache

QEMU_OVERHEAD_MB = 200   # a TCG QEMU's own memory beside the guest's RAM
MEMORY_SHARE = 0.75      # of the host's available memory, the most all guests may take


def size(arches: int, memory_mb: int, requested: int = 0) -> int:
    """Guests per arch: ``requested``, else one per host core, as many as the host's
    available memory holds for ``arches`` arches (at least one)."""
    if requested:
        return requested
    by_memory = int(available_mb() * MEMORY_SHARE // ((memory_mb + QEMU_OVERHEAD_MB)
                                                     * max(1, arches)))
    return max(1, min(os.cpu_count() or 1, by_memory))


def available_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 1024


def spread(keys: Sequence[str], guests: int, expected: Dict[str, float]) -> Dict[str, int]:
    """key -> guest (0 .. guests-1): longest expected first, each onto the guest with the
    least expected work so far; ties keep the keys' order."""
    default = _median(keys, expected)
    load = [0.0] * max(1, guests)
    where: Dict[str, int] = {}
    for i in longest_first(keys, expected):
        slot = min(range(len(load)), key=lambda n: (load[n], n))
        where[keys[i]] = slot
        load[slot] += expected.get(keys[i], default)
    return where


def longest_first(keys: Sequence[str], expected: Dict[str, float]) -> List[int]:
    """Positions in ``keys`` (a key may repeat: the same test run twice) in the order in
    which guests taking the next test from a shared queue get close to LPT: longest
    expected first (never-timed ones as the median), ties in their order."""
    default = _median(keys, expected)
    return sorted(range(len(keys)), key=lambda i: -expected.get(keys[i], default))


def _median(keys: Sequence[str], expected: Dict[str, float]) -> float:
    """What a never-timed test is expected to take: the median of those timed."""
    known = [expected[k] for k in keys if k in expected]
    return statistics.median(known) if known else 1.0


class Durations:
    """Seconds each test took the last time it ran, per image: ``durations.json`` in the
    cache. Written whole (another run may read it at the same time)."""

    def __init__(self, image: str, path: Optional[Path] = None):
        self.image = image
        self.path = path or cache.root() / "durations.json"

    def _all(self) -> Dict[str, Dict[str, float]]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def expected(self) -> Dict[str, float]:
        return dict(self._all().get(self.image, {}))

    def record(self, times: Iterable[Tuple[str, float]]) -> None:
        times = list(times)
        if not times:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with cache.locked(self.path.with_name(".durations.lock")):
            everything = self._all()
            mine = everything.setdefault(self.image, {})
            mine.update({key: round(seconds, 2) for key, seconds in times})
            cache.write_whole(self.path, json.dumps(everything, indent=1, sort_keys=True))
