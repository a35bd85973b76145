"""The livepatch sysfs interface, seen from the host: read state, load, wait, disable.

/sys/kernel/livepatch/<patch>/{enabled,transition,force,replace,stack_order}
/sys/kernel/livepatch/<patch>/<object>/patched
Attributes differ between kernels (``replace`` since 6.11, ``stack_order`` since 6.14):
``read_all`` returns what exists; callers decide what a missing attribute means.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .errors import WaitTimeout
from .guest import Guest

SYSFS = "/sys/kernel/livepatch"
POLL = 0.05  # seconds between checks, inside the guest (no SSH round trip per check)

# One command that prints "path=value" for every readable attribute ("force" is
# write-only and has no value to show).
_DUMP = (f"for f in {SYSFS}/*/* {SYSFS}/*/*/*; do [ -f \"$f\" ] || continue; "
         "v=$(cat \"$f\" 2>/dev/null) && echo \"$f=$v\"; done; true")


@dataclass
class Patch:
    name: str
    attrs: Dict[str, str] = field(default_factory=dict)         # enabled, transition, ...
    objects: Dict[str, Dict[str, str]] = field(default_factory=dict)  # obj -> {patched: ..}

    def get(self, path: str) -> Optional[str]:
        """An attribute by path relative to the patch dir: 'enabled' or 'vmlinux/patched'."""
        obj, _, attr = path.rpartition("/")
        return self.objects.get(obj, {}).get(attr) if obj else self.attrs.get(attr)


def read_all(guest: Guest) -> Dict[str, Patch]:
    patches: Dict[str, Patch] = {}
    for line in guest.run(_DUMP).stdout.splitlines():
        path, _, value = line.partition("=")
        parts = path[len(SYSFS) + 1:].split("/")
        patch = patches.setdefault(parts[0], Patch(parts[0]))
        if len(parts) == 2:
            patch.attrs[parts[1]] = value
        elif len(parts) == 3:
            patch.objects.setdefault(parts[1], {})[parts[2]] = value
    return patches


def stalled_tasks(guest: Guest, limit: int = 20) -> str:
    """Tasks whose patch_state says they have not switched yet, with their stacks."""
    script = ("n=0; for t in /proc/[0-9]*/task/[0-9]*; do s=$(cat $t/patch_state 2>/dev/null); "
              "[ -n \"$s\" ] && [ \"$s\" != -1 ] || continue; "
              "echo \"== ${t#/proc/} $(cat $t/comm 2>/dev/null) patch_state=$s\"; "
              f"cat $t/stack 2>/dev/null; n=$((n+1)); [ $n -ge {limit} ] && break; done; true")
    return guest.run(script).stdout.strip() or "(no task reports an unfinished patch_state)"


def _wait_while(guest: Guest, condition: str, timeout: float, awaited: str,
                seen_label: str) -> None:
    """Loop in the guest while the shell ``condition`` holds; on timeout, report the tasks
    that have not switched (the usual reason a livepatch wait does not end)."""
    tries = max(1, int(timeout * guest.machine.scale / POLL))
    script = (f"i=0; while {condition}; do "
              f"i=$((i+1)); [ $i -ge {tries} ] && exit 3; sleep {POLL}; done")
    if guest.run(script, timeout=timeout * 2).status == 3:
        raise WaitTimeout(awaited, timeout * guest.machine.scale,
                          f"{seen_label}:\n" + stalled_tasks(guest))


def wait_transition(guest: Guest, patch: str, timeout: float) -> None:
    """Wait until ``patch`` is not in transition (or has gone away)."""
    attr = shlex.quote(f"{SYSFS}/{patch}/transition")
    _wait_while(guest, f"[ \"$(cat {attr} 2>/dev/null)\" = 1 ]", timeout,
                f"livepatch '{patch}' to finish its transition", "tasks not yet switched")


def wait_gone(guest: Guest, patch: str, timeout: float) -> None:
    """Wait until the patch's sysfs dir is gone (after disable, before rmmod succeeds)."""
    _wait_while(guest, f"[ -d {shlex.quote(f'{SYSFS}/{patch}')} ]", timeout,
                f"livepatch '{patch}' to be removed from sysfs", "tasks")


def load(guest: Guest, module_path: str, params: Dict[str, str] = None, check: bool = True):
    """insmod a module already pushed to the guest; returns the Result."""
    args = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (params or {}).items())
    return guest.run(f"insmod {shlex.quote(module_path)} {args}".strip(), check=check)


def set_enabled(guest: Guest, patch: str, enabled: bool, check: bool = True):
    return guest.run(f"echo {int(enabled)} > {shlex.quote(f'{SYSFS}/{patch}/enabled')}",
                     check=check)


def unload(guest: Guest, module: str, check: bool = True):
    return guest.run(f"rmmod {shlex.quote(module)}", check=check)


def loaded_modules(guest: Guest) -> List[str]:
    return [line.split()[0] for line in guest.run("cat /proc/modules").stdout.splitlines()]


def cleanup(guest: Guest, timeout: float) -> List[str]:
    """Disable every enabled patch and unload livepatch modules; return what was done.

    Used after a scenario, failed or not, so one failure does not cascade into the next.
    """
    done = []
    for name, patch in read_all(guest).items():
        if patch.attrs.get("transition") == "1":
            try:
                wait_transition(guest, name, timeout)
            except WaitTimeout:
                guest.run(f"echo 1 > {SYSFS}/{name}/force")
                done.append(f"forced {name}")
        if patch.attrs.get("enabled") == "1":
            set_enabled(guest, name, False, check=False)
            done.append(f"disabled {name}")
        try:
            wait_gone(guest, name, timeout)
        except WaitTimeout:
            done.append(f"{name} still present after disable")
    return done
