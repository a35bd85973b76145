"""The livepatch sysfs interface, seen from the host: read state, load, wait, disable.

/sys/kernel/livepatch/<patch>/{enabled,transition,force,replace,stack_order}
/sys/kernel/livepatch/<patch>/<object>/patched
Attributes differ between kernels (``replace`` since 6.11, ``stack_order`` since 6.14):
``read_all`` returns what exists; callers decide what a missing attribute means.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .errors import WaitTimeout
from .guest import COMMAND_TIMEOUT, Guest

SYSFS = "/sys/kernel/livepatch"
# The guest's busybox sh runs its own insmod/rmmod applets (no exec: 50 ms a load and
# unload under emulation). kmod's insmod, by path, costs 200 ms (it links six libraries)
# but prints the error lines upstream's transcripts show: used for loads expected to fail.
INSMOD, RMMOD, KMOD_INSMOD = "insmod", "rmmod", "/sbin/insmod"
POLL = 0.05  # seconds between checks, inside the guest (no SSH round trip per check)

# One command that prints "path=value" for every readable attribute ("force" is
# write-only and has no value to show). Shell builtins only: a process costs 50-100 ms
# under emulation.
_DUMP = (f"for f in {SYSFS}/*/* {SYSFS}/*/*/*; do [ -f \"$f\" ] || continue; "
         "read -r v 2>/dev/null <\"$f\" && echo \"$f=$v\"; done; true")


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


def snapshot(guest: Guest) -> str:
    """Every patch's attributes and objects as text (an artifact of a failed test)."""
    lines = [f"{SYSFS}/{p.name}: {p.attrs} {p.objects}" for p in read_all(guest).values()]
    return "\n".join(lines) + "\n" if lines else f"(no patches under {SYSFS})\n"


def stalled_tasks(guest: Guest, limit: int = 200) -> str:
    """The tasks a livepatch transition waits for, with their stacks: those whose
    patch_state is not the transition's target (1 while patching, 0 while unpatching: the
    patch in transition's `enabled`). All of them up to ``limit``, then a count."""
    script = (
        f"target=; for p in {SYSFS}/*; do read -r t 2>/dev/null <$p/transition || continue; "
        "[ \"$t\" = 1 ] && read -r target <$p/enabled && break; done; "
        "[ -n \"$target\" ] || { echo '(no livepatch is in transition)'; exit 0; } 2>/dev/null; "
        "n=0; for t in /proc/[0-9]*/task/[0-9]*; do "
        "read -r s 2>/dev/null <$t/patch_state || continue; "
        "[ -n \"$s\" ] && [ \"$s\" != -1 ] && [ \"$s\" != \"$target\" ] || continue; "
        f"n=$((n+1)); [ $n -gt {limit} ] && continue; "
        "read -r c 2>/dev/null <$t/comm; "
        "echo \"== ${t#/proc/} $c patch_state=$s (target $target)\"; "
        "cat $t/stack 2>/dev/null; done; "
        f"[ $n -gt {limit} ] && echo \"... and $((n-{limit})) more\"; "
        "[ $n = 0 ] && echo \"(every task is at the target state $target)\"; true")
    return guest.run(f"( {script} )").stdout.strip()


def _wait_while(guest: Guest, condition: str, timeout: float, awaited: str,
                seen_label: str) -> None:
    """Loop in the guest while the shell ``condition`` holds; on timeout, report the tasks
    that have not switched (the usual reason a livepatch wait does not end)."""
    # Bounded by the guest's clock, not by a count of sleeps: on a busy host each sleep
    # stretches, and the loop must end (and report who holds it) before the host gives up.
    # `date`, not /proc/uptime: a scenario may patch what reads that (klp-build/'s do).
    seconds = max(1, math.ceil(timeout * guest.scale))
    # No `exit`: the command runs in the guest's long-lived shell.
    script = (f"end=$(($(date +%s) + {seconds})); "
              f"while {condition}; do [ $(date +%s) -ge $end ] && break; sleep {POLL}; done; "
              f"if {condition}; then false; fi")
    if guest.run(script, timeout=timeout * 2 + 5).status != 0:   # run() scales it too
        raise WaitTimeout(awaited, seconds, f"{seen_label}:\n" + stalled_tasks(guest))


def wait_transition(guest: Guest, patch: str, timeout: float) -> None:
    """Wait until ``patch`` is not in transition (or has gone away)."""
    attr = shlex.quote(f"{SYSFS}/{patch}/transition")
    _wait_while(guest, f"{{ read -r t 2>/dev/null <{attr} && [ \"$t\" = 1 ]; }}", timeout,
                f"livepatch '{patch}' to finish its transition", "tasks not yet switched")


def wait_gone(guest: Guest, patch: str, timeout: float) -> None:
    """Wait until the patch's sysfs dir is gone (after disable, before rmmod succeeds)."""
    wait_absent(guest, f"{SYSFS}/{patch}", timeout, f"livepatch '{patch}' to be removed from sysfs")


def wait_absent(guest: Guest, path: str, timeout: float, awaited: str = "") -> None:
    _wait_while(guest, f"[ -e {shlex.quote(path)} ]", timeout, awaited or f"{path} to go away",
                "tasks")


def wait_value(guest: Guest, path: str, value: str, timeout: float) -> None:
    """Wait until the first line of file ``path`` reads ``value``."""
    q = shlex.quote(path)
    try:
        _wait_while(guest, f"! {{ read -r v 2>/dev/null <{q} && [ \"$v\" = {shlex.quote(value)} ]; }}",
                    timeout, f"{path} to read {value!r}", "tasks")
    except WaitTimeout as e:
        shows = guest.run(f"cat {q} 2>&1").stdout.strip() or "(nothing)"
        raise WaitTimeout(f"{path} to read {value!r} (it shows {shows!r})", e.timeout,
                          e.seen) from None


def wait_unused(guest: Guest, module: str, timeout: float) -> None:
    """Wait until nothing holds a reference to ``module`` (rmmod would fail before)."""
    q = shlex.quote(f"/sys/module/{module}/refcnt")
    _wait_while(guest, f"{{ read -r r 2>/dev/null <{q} && [ \"$r\" != 0 ]; }}", timeout,
                f"module {module}'s reference count to drop to 0", "tasks")


def log_line(guest: Guest, text: str) -> None:
    """Write ``text`` into the kernel log, as upstream's functions.sh `log` does. Debug
    level: kept in the log, not printed on the slow emulated console."""
    guest.run(f"printf '<7>%s\\n' {shlex.quote(text)} > /dev/kmsg")


def modes(guest: Guest, paths: List[str]) -> Dict[str, str]:
    """path -> mode as ls shows it (-rw-r--r--), for the paths that exist."""
    out = guest.run("stat -c '%A %n' " + " ".join(shlex.quote(p) for p in paths) + " 2>/dev/null")
    return dict(reversed(line.split(" ", 1)) for line in out.stdout.splitlines() if " " in line)


def load(guest: Guest, module_path: str, params: Dict[str, str] = None, check: bool = True,
         kmod: bool = False, timeout: float = COMMAND_TIMEOUT):
    """insmod a module already pushed to the guest; returns the Result. ``kmod``: with
    kmod's insmod, for its wording of errors."""
    args = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (params or {}).items())
    return guest.run(f"{KMOD_INSMOD if kmod else INSMOD} {shlex.quote(module_path)} {args}".strip(),
                     check=check, timeout=timeout)


def set_enabled(guest: Guest, patch: str, enabled: bool, check: bool = True):
    return guest.run(f"echo {int(enabled)} > {shlex.quote(f'{SYSFS}/{patch}/enabled')}",
                     check=check)


def unload(guest: Guest, module: str, check: bool = True):
    return guest.run(f"{RMMOD} {shlex.quote(module)}", check=check)


def loaded_modules(guest: Guest) -> List[str]:
    return [line.split()[0] for line in guest.run("cat /proc/modules").stdout.splitlines()]


@dataclass(frozen=True)
class CleanupNote:
    """What a clean-up did. ``lasting``: a change that stays (a forced patch, whose module
    the kernel never lets go; a module that would not unload): the guest is unlike a fresh
    one, and is not given to the next scenario."""
    text: str
    lasting: bool = False

    def __str__(self) -> str:
        return self.text


def cleanup(guest: Guest, timeout: float) -> List[CleanupNote]:
    """Disable every enabled patch and unload livepatch modules; return what was done.

    Used after a scenario, failed or not, so one failure does not cascade into the next.
    A patch stalled while patching is disabled at once: the kernel reverses its transition
    (tasks already switched go back), which needs no stalled task to move. Only a patch
    whose unpatching stalls too is forced, and the report says which tasks held it.
    """
    done = []
    for name, patch in read_all(guest).items():
        stalled = patch.attrs.get("transition") == "1"
        if patch.attrs.get("enabled") == "1":
            set_enabled(guest, name, False, check=False)
            done.append(CleanupNote(f"disabled {name}" + (
                " (its stalled patching transition reversed)" if stalled else "")))
        try:
            wait_gone(guest, name, timeout)
        except WaitTimeout as e:
            guest.run(f"echo 1 > {SYSFS}/{name}/force", check=False)
            done.append(CleanupNote(f"forced {name}: its unpatching transition stalled "
                                    f"({e})", lasting=True))
            try:
                wait_gone(guest, name, timeout)
            except WaitTimeout:
                done.append(CleanupNote(f"{name} still present after disable and force",
                                        lasting=True))
    return done


def unload_modules(guest: Guest, modules: List[str]) -> List[CleanupNote]:
    """rmmod those of ``modules`` still loaded (after ``cleanup``); return what was done.
    A second round takes the targets a patch unloaded in the first still held."""
    done = []
    loaded = set(loaded_modules(guest))
    errors: Dict[str, str] = {}
    for _ in range(2):
        for name in [m for m in modules if m in loaded]:
            result = unload(guest, name, check=False)
            if result.ok:
                done.append(CleanupNote(f"unloaded {name}"))
                loaded.discard(name)
            else:
                errors[name] = result.stderr.strip()
    return done + [CleanupNote(f"could not unload {m}" + (f": {errors[m]}" if errors.get(m)
                                                          else ""), lasting=True)
                   for m in modules if m in loaded]
