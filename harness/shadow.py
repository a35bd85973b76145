"""Exact counts of the guest's live livepatch shadow variables, and the leak check.

The kernel keeps shadow variables in a static hash table (klp_shadow_hash in
kernel/livepatch/shadow.c) and counts nothing; kmemleak does not see a leaked one, since
the table still references it. ``harness/guest_modules/klp_shadow_counter.c`` walks the
table under its lock and reports the count per id through debugfs. It finds the table and
its lock in /proc/kallsyms (livepatch depends on CONFIG_KALLSYMS_ALL) and checks, when it
loads, that a variable made through the kernel's API sits where it expects: kernels 4.15
and later (shadow variables' first release; unchanged to date). On any other layout it
refuses to load, and scenarios that count are skipped with its reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Union

from . import livepatch, modules
from .errors import HarnessError
from .guest import Guest
from .image import Image
from .paths import GUEST_MODULES, WORKDIR

SOURCES = GUEST_MODULES
MODULE = "klp_shadow_counter"
DEBUGFS = f"/sys/kernel/debug/{MODULE}"
SYMBOLS = ("klp_shadow_hash", "klp_shadow_lock")


class CounterUnavailable(HarnessError):
    """The counter cannot run on this kernel; the message says why."""


def build(image: Image) -> Path:
    """The counter module built for ``image`` (cached like every module set)."""
    return modules.build_set(image, SOURCES, "harness")[MODULE]


@dataclass(frozen=True)
class Counts:
    """Live shadow variables at one moment: in total and per id."""
    total: int
    by_id: Dict[int, int] = field(default_factory=dict)
    walk_ns: int = 0          # the kernel-side walk of the table, for the record

    def of(self, key: Union[str, int]) -> int:
        return self.total if key == "total" else self.by_id.get(int(key), 0)

    def minus(self, other: "Counts") -> "Counts":
        """What was added since ``other`` (a count can go below: variables freed)."""
        ids = set(self.by_id) | set(other.by_id)
        return Counts(self.total - other.total,
                      {i: self.of(i) - other.of(i) for i in ids if self.of(i) != other.of(i)})

    @classmethod
    def parse(cls, text: str) -> "Counts":
        total, walk_ns, by_id = None, 0, {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "total":
                total = int(value)
            elif key == "walk_ns":
                walk_ns = int(value)
            elif key.startswith("0x"):
                by_id[int(key, 16)] = int(value)
            elif key == "other":
                raise HarnessError(f"the shadow counter saw more distinct ids than it "
                                   f"reports ({value} variables unaccounted for)")
        if total is None:
            raise HarnessError(f"unreadable shadow counter output: {text!r}")
        return cls(total, by_id, walk_ns)


class ShadowCounter:
    """The counter loaded in one guest (``install`` once per boot)."""

    def __init__(self, guest: Guest):
        self.guest = guest

    @classmethod
    def install(cls, guest: Guest, module: Path) -> "ShadowCounter":
        """Load the counter; CounterUnavailable says why it cannot run on this kernel."""
        found = guest.run(f"grep -E ' ({'|'.join(SYMBOLS)})$' /proc/kallsyms").stdout
        addresses = {line.split()[2]: line.split()[0] for line in found.splitlines()}
        missing = [s for s in SYMBOLS if s not in addresses]
        if missing:
            raise CounterUnavailable(f"{', '.join(missing)} not in /proc/kallsyms (a kernel "
                                     f"without CONFIG_LIVEPATCH, or before 4.15)")
        if set(addresses.values()) == {"0" * len(addresses[SYMBOLS[0]])}:
            raise CounterUnavailable("/proc/kallsyms hides addresses (kptr_restrict)")
        remote = f"{WORKDIR}/{MODULE}.ko"
        guest.push(module, remote)
        result = livepatch.load(guest, remote, {"hash_addr": f"0x{addresses['klp_shadow_hash']}",
                                                "lock_addr": f"0x{addresses['klp_shadow_lock']}"},
                                check=False, kmod=True)
        if not result.ok:
            why = guest.run(f"dmesg | grep {MODULE}: | tail -n 1").stdout.strip()
            raise CounterUnavailable(f"{MODULE} did not load: "
                                     f"{why or result.stderr.strip()}")
        return cls(guest)

    def read(self) -> Counts:
        # Shell builtins only: a process costs 10-50 ms under emulation, the read itself
        # much less.
        return Counts.parse(self.guest.run(
            f"while read -r line; do echo \"$line\"; done < {DEBUGFS}/counts").stdout)

    def objects(self, shadow_id: int, limit: int = 10) -> List[str]:
        """Addresses of objects carrying a variable of ``shadow_id`` (at most ``limit``)."""
        out = self.guest.run(f"grep -m {limit} '^{shadow_id:#x} ' {DEBUGFS}/objects; true")
        return [line.split()[1] for line in out.stdout.splitlines()]

    def free_all(self, shadow_id: int) -> None:
        """klp_shadow_free_all(id): clear a leak so it does not carry into later tests."""
        self.guest.run(f"echo {shadow_id:x} > {DEBUGFS}/free")


# -- expectations -------------------------------------------------------------------------

# A count in a `shadow` step: "3", or a comparison such as ">= 1" (scenario validates with it).
COUNT_EXPECTATION = re.compile(r"^(==|>=|<=|>|<|!=)?\s*(\d+)$")


def count_matches(got: int, want: str) -> bool:
    op, number = COUNT_EXPECTATION.match(want).groups()
    n = int(number)
    return {"==": got == n, ">=": got >= n, "<=": got <= n, ">": got > n, "<": got < n,
            "!=": got != n}[op or "=="]


def check(expected: Dict[Union[str, int], str], added: Counts, when: str) -> List[str]:
    """Problems with ``added`` (counts since the scenario began) against ``expected``
    ("total" or an id -> "N" or a comparison such as ">= 1")."""
    problems = []
    for key, want in expected.items():
        got = added.of(key)
        if not count_matches(got, want):
            what = "shadow variables in total" if key == "total" else f"shadow id {key:#x}"
            problems.append(f"{what}: {got} live {when}, {want} expected")
    return problems


def leaks(start: Counts, end: Counts, baseline: Dict[int, int]) -> Dict[int, int]:
    """Ids with more live variables at the end than at the start plus what the scenario
    declares it may leave (``baseline``): id -> number over."""
    over = {}
    for shadow_id in sorted(set(end.by_id)):
        extra = end.of(shadow_id) - start.of(shadow_id) - baseline.get(shadow_id, 0)
        if extra > 0:
            over[shadow_id] = extra
    return over
