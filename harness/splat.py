"""Kernel reports that fail a scenario ("splats"): what each of the kernel's detectors prints.

One entry per report kind, matched against the kernel's own log records (facility 0; lines
written to /dev/kmsg by userspace are facility 1 and up). The messages are those of Linux
7.3 (the prefix is the file's pr_fmt); scenarios/debug/ proves each kind with a module that
triggers it, on the debug image (images/linux-7.3-debug.yaml), which has the detectors.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .kmsg import Record


@dataclass(frozen=True)
class Kind:
    name: str
    pattern: re.Pattern


def _kind(name: str, pattern: str) -> Kind:
    return Kind(name, re.compile(pattern))


KINDS = (
    # The first kind whose pattern matches names a record, so the specific ones come first.
    _kind("kasan", r"^BUG: KASAN: "),                       # mm/kasan/report.c
    _kind("sleep in atomic", r"^BUG: (sleeping function called from invalid context|"
                             r"scheduling while atomic)"),  # kernel/sched/core.c
    _kind("lockdep", r"^WARNING: (possible .*(lock|dependency)|inconsistent lock state|"
                     r"bad unlock balance|held lock freed|suspicious RCU usage)"),
    _kind("warning", r"^WARNING:"),                         # WARN()
    _kind("bug", r"^(BUG:|kernel BUG)"),                    # BUG(), and bad accesses
    _kind("oops", r"^(Oops|general protection fault)"),
    _kind("call trace", r"^Call Trace:"),
    _kind("lockdep", r"^(possible|inconsistent) .*lock"),   # older kernels' lockdep
    _kind("ubsan", r"^UBSAN:"),
    _kind("hung task", r"^INFO: task \S+ blocked"),         # kernel/hung_task.c
    # kernel/watchdog.c (pr_fmt "watchdog: "): soft lockups, and hard lockups found by the
    # buddy or the perf detector; arch/powerpc/kernel/watchdog.c for ppc64's own.
    _kind("soft lockup", r"^watchdog: BUG: soft lockup"),
    _kind("hard lockup", r"^watchdog: .*hard LOCKUP"),
    _kind("rcu stall", r"^rcu: INFO: \S+ (self-detected stall|detected stalls)"),
    _kind("kmemleak", r"^kmemleak: \d+ new suspected memory leak"),   # after a scan
)


@dataclass(frozen=True)
class Splat:
    kind: str
    index: int          # of the record that matched, in the records searched


def find(records: Sequence[Record]) -> Optional[Splat]:
    """The first kernel report among ``records``, if any."""
    for i, r in enumerate(records):
        if r.facility != 0:
            continue
        for kind in KINDS:
            if kind.pattern.search(r.message):
                return Splat(kind.name, i)
    return None


def context(records: Sequence[Record], splat: Splat) -> str:
    """The report with a little before it: WARN()'s own message comes just before its
    "WARNING:" line."""
    return "\n".join(r.message for r in records[max(0, splat.index - 2):splat.index + 15])
