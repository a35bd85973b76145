"""What a run leaves on disk: a dir of its own under the artifacts dir (so neither a
concurrent run nor a later one overwrites it; ``latest`` points to the newest), and in it
the artifacts of each failed test: console log, kernel log, livepatch sysfs snapshots (when
the step failed, and after the clean-up) and every command run with its output.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from . import livepatch
from .outcome import Outcome

if TYPE_CHECKING:
    from .machine import Machine


def new_run_id() -> str:
    """A name for one run's artifacts: when it began, and the process (runs at once)."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def open_run(base: Path, run_id: str = "") -> Path:
    """The dir of run ``run_id`` (a new one if empty) under ``base``, made, and
    <base>/latest pointing to it."""
    base = Path(base).resolve()
    run_id = run_id or new_run_id()
    (base / run_id).mkdir(parents=True, exist_ok=True)
    _point_latest(base, run_id)
    return base / run_id


def _point_latest(base: Path, run_id: str) -> None:
    """<base>/latest -> run_id, replaced atomically (xdist workers of a run all set it)."""
    tmp = base / f".latest.{os.getpid()}.{threading.get_ident()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        tmp.replace(base / "latest")
    except OSError:   # a file system without symlinks: the run's own path is printed
        tmp.unlink(missing_ok=True)


def save(run_dir: Path, outcome: Outcome, machine: Optional["Machine"], first_command: int = 0,
         about: str = "") -> Path:
    """Keep a failed test's artifacts in a dir of its own under <run_dir>/failed (the same
    test failing twice in a run gets a second); ``about`` says which image (and tree) the
    kernel came from. The outcome's message ends with where they are."""
    target = _new_dir(run_dir / "failed", f"{safe(outcome.scenario)}[{outcome.arch}]")
    outcome.artifacts = str(target)
    (target / "failure.txt").write_text(
        f"kernel {outcome.kernel or '(none)'}, {about}, {outcome.arch}\n" + outcome.message
        + "\n" + "".join(f"clean-up: {c}\n" for c in outcome.cleanup))
    (target / "kmsg.txt").write_text(outcome.kmsg + "\n")
    (target / "steps.txt").write_text("".join(f"{t}\n" for t in outcome.steps))
    if outcome.sysfs:
        (target / "sysfs-at-failure.txt").write_text(outcome.sysfs)
    if machine is not None:   # None: it failed before a guest was needed (a livepatch build)
        _save_guest(target, machine, first_command)
    outcome.message += f"\nartifacts: {target}"
    return target


def _new_dir(parent: Path, name: str) -> Path:
    target = parent / name
    for n in range(2, 1000):
        if not target.exists():
            break
        target = parent / f"{name}-{n}"
    target.mkdir(parents=True)
    return target


def _save_guest(target: Path, machine: "Machine", first_command: int) -> None:
    """The guest's console, the commands the test ran, livepatch sysfs after the clean-up."""
    if machine.console_log.exists():
        shutil.copy(machine.console_log, target / "console.log")
    if machine.guest is None:
        return
    with open(target / "commands.txt", "w") as f:
        for r in machine.guest.history[first_command:]:
            f.write(f"$ {r.command}\n[exit {r.status}, {r.seconds:.2f}s]\n{r.stdout}"
                    + (f"[stderr]\n{r.stderr}" if r.stderr else "") + "\n")
    try:
        after = livepatch.snapshot(machine.guest)
    except Exception as e:  # the guest may be gone: keep what we have
        after = f"(could not read: {e})\n"
    (target / "sysfs-after-cleanup.txt").write_text(after)


def safe(name: str) -> str:
    """``name`` as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
