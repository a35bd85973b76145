"""One step of ``git bisect run klp-harness bisect-run ...``: build, boot, run, answer.

git checks out a commit and runs the command; its exit status is the verdict:

  0    good   every scenario passed (in every ``--repeat`` round)
  1    bad    a scenario failed, in any round: a flaky failure makes the step bad too
  125  skip   this commit cannot be tested: the kernel does not configure or build, the
              guest does not boot, the modules (or a livepatch from patches) do not
              build, or every scenario skips
  128  abort  trouble of the harness or the host, never the commit's: QEMU or a compiler
              missing, the disk full, a scenario file that does not parse, a harness error.
              git bisect stops instead of skipping, so nothing is skipped silently.

What is bisected is the current checkout, one of two kinds:

- a kernel tree (``--kernel-tree``, the default: the current directory), built in one build
  dir that survives between steps (kept in the cache per tree path and arch, or
  ``--build-dir``), so each step recompiles only what the checkout changed. The image made
  for a commit (kernel + initramfs) is removed after its step; the build dir stays.
- livepatch module sources (``--modules DIR``, a directory of the checkout), built against
  the image's own kernel (no kernel build); or, with ``--image-kernel``, scenarios whose
  livepatches klp-build makes of the checkout's patches. A patch that klp-build does not
  turn into a livepatch at a commit (it does not apply, klp-build refuses it) makes the
  step a skip, not bad.

Each step appends one line to ``bisect.log`` in the work dir (and prints it): commit,
verdict, build and run times, and why. With ``--repeat N`` the scenarios run N times, round
by round (repeat.expand, as ``klp-harness run --repeat`` queues them), and the step stops at
the first failed run: the verdict is known then. A line per scenario gives its failed runs
of those that ran as k/N, with its 95% interval: a good step's 0/N says how rare a failure
it could still have missed.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import List, Optional, Tuple

from . import arch as archmod, cache, hosttools, image as imagemod, kernelbuild, klpbuild, modules
from . import repeat
from .errors import (BootError, KernelBuildError, ModuleBuildError, QemuStartError,
                     ScenarioError, WaitTimeout)
from .scenario import Scenario, discover
from .options import Options
from .outcome import Cause, Outcome, Status
from .session import Session

class Verdict(IntEnum):
    """A step's answer to `git bisect run`, as its exit status; its word is the name."""
    GOOD = 0
    BAD = 1
    SKIP = 125      # git bisect: this commit cannot be tested
    ABORT = 128     # git bisect: stop


GOOD, BAD, SKIP, ABORT = Verdict
VERDICTS = {v: v.name.lower() for v in Verdict}
# Below this much free space in the cache a kernel build is likely to fail half-way with
# errors that look like the commit's: stop instead.
MIN_FREE_BYTES = 2 * 1024 ** 3


@dataclass
class Plan:
    """A step: the options of its Session, made from the option table as by every front end
    (kernel_tree None: the image's own kernel, not built here), and bisect-run's own."""
    scenarios: List[Path]
    arch: str
    options: Options = field(default_factory=Options)
    workdir: Optional[Path] = None           # bisect.log and artifacts; default in the cache

    @property
    def repeat(self) -> int:
        """Runs of each scenario (--repeat, Options.repeat as for `run` and pytest)."""
        return self.options.repeat

    @property
    def checkout(self) -> Path:
        """The git checkout being bisected (whose HEAD names the step)."""
        opts = self.options
        return opts.kernel_tree or (opts.module_dirs[0] if opts.module_dirs else Path.cwd())


class _Verdict(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def default_workdir(checkout: Path, arch: str) -> Path:
    """Outside the checkout (files there would change what git and the build see)."""
    where = Path(checkout).resolve()
    tag = hashlib.sha256(str(where).encode()).hexdigest()[:10]
    return cache.root() / "bisect" / f"{where.name}-{tag}-{arch}"


def describe_commit(checkout: Path) -> str:
    """'abbrev-hash subject' of the checkout's HEAD, or a note that it is not git."""
    out = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h %s"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() \
        else f"(not a git checkout: {checkout})"


def run(plan: Plan, out=sys.stdout) -> int:
    """One bisect step; returns the exit status for git bisect run."""
    workdir = Path(plan.workdir or default_workdir(plan.checkout, plan.arch))
    workdir.mkdir(parents=True, exist_ok=True)
    commit = describe_commit(plan.checkout)
    times = {"build": 0.0, "run": 0.0}
    outcomes: List[Outcome] = []   # the scenarios' runs, for the k/N lines
    try:
        code, reason = _step(plan, workdir, times, outcomes)
    except _Verdict as v:
        code, reason = v.code, v.reason
    except KeyboardInterrupt:
        code, reason = ABORT, "interrupted"
    except OSError as e:
        code = ABORT
        reason = ("disk full: " if e.errno == errno.ENOSPC else "host error: ") + str(e)
    except Exception as e:   # the harness's own trouble: stop the bisection, never skip
        code, reason = ABORT, f"{type(e).__name__}: {e}"
    line = (f"{time.strftime('%Y-%m-%d %H:%M:%S')} {plan.arch} {commit[:60]!r}: "
            f"{VERDICTS[code]} ({code}); build {times['build']:.1f}s, run "
            f"{times['run']:.1f}s; {reason.splitlines()[0] if reason else ''}")
    with open(workdir / "bisect.log", "a") as log:
        log.write(line + "\n")
    if reason and "\n" in reason:
        print(reason, file=sys.stderr)
    print(f"klp-bisect: {line}\nklp-bisect: log {workdir / 'bisect.log'}", file=out, flush=True)
    if plan.repeat > 1:
        for cell in repeat.cells(outcomes).values():
            print(f"klp-bisect: {repeat.item_id(cell.scenario, cell.arch)}: {cell.text()}"
                  + ("" if len(cell.runs) == plan.repeat else
                     " (the step stopped at its first failed run)"),
                  file=out, flush=True)
    return code


def _step(plan: Plan, workdir: Path, times, outcomes: List[Outcome]) -> Tuple[int, str]:
    # Everything that is the same at every commit is checked first: if it is wrong, git
    # bisect must stop, not skip or blame commits.
    scenarios = [Scenario.load(p) for p in discover(plan.scenarios)]   # files or dirs
    if not scenarios:
        raise _Verdict(ABORT, "no scenarios given")
    for sources in plan.options.module_dirs:
        modules.require_sources(sources)
    profile = archmod.get(plan.arch)
    hosttools.require(profile.qemu_binary, profile.qemu_package, f"to boot {plan.arch} guests")
    free = shutil.disk_usage(cache.root() if cache.root().exists() else workdir).free
    if free < MIN_FREE_BYTES:
        raise _Verdict(ABORT, f"disk full: {free / 1024 ** 3:.1f} GiB free under "
                              f"{cache.root()}; a build would fail for the host's reason")
    # A copy: the Session sets its run's fields on the Options it is given.
    session = Session(dataclasses.replace(plan.options, artifacts=workdir / "artifacts",
                                          module_dirs=list(plan.options.module_dirs)))
    made_image = None
    try:
        started = time.monotonic()
        try:
            made_image = _build(plan, session)
        finally:
            times["build"] = time.monotonic() - started
        started = time.monotonic()
        try:
            return _run_scenarios(plan, session, scenarios, outcomes)
        finally:
            times["run"] = time.monotonic() - started
    finally:
        session.close()
        if made_image is not None:
            _forget(made_image)


def _build(plan: Plan, session: Session) -> Optional[imagemod.Image]:
    """Build the kernel (if bisecting one), the image and the modules; return the image if
    this step made it (it belongs to this commit only)."""
    opts = plan.options
    before = set((cache.root() / "images").glob(f"{opts.image}-{plan.arch}-*"))
    try:
        if opts.kernel_tree is not None:
            # First on its own: its failure is the commit's (skip); the image's other work
            # (Debian packages, the initramfs) failing is the host's (abort).
            source, profile, fragments = imagemod.kernel_inputs(
                opts.image, plan.arch, opts.mirror, opts.kernel_tree)
            kernelbuild.build(source, profile, fragments, opts.build_dir)
        state = session.state(plan.arch)
    except KernelBuildError as e:
        log = Path(e.log_path) if e.log_path else None
        if log and log.is_file() and "No space left on device" in log.read_text(errors="replace"):
            raise _Verdict(ABORT, f"disk full during the kernel build (see {log})")
        raise _Verdict(SKIP, f"the kernel does not build: {e}")
    except ModuleBuildError as e:
        raise _Verdict(SKIP, f"the modules do not build: {e}")
    made = opts.kernel_tree is not None and state.image.dir not in before
    return state.image if made else None


def _run_scenarios(plan: Plan, session: Session, scenarios: List[Scenario],
                   outcomes: List[Outcome]) -> Tuple[int, str]:
    try:
        session.machine(plan.arch)
    except QemuStartError:
        raise                     # the host's QEMU, not the kernel
    except (BootError, WaitTimeout) as e:
        raise _Verdict(SKIP, f"the guest does not boot: {e}")
    passed: set = set()
    skipped: List[str] = []
    for sc, run in repeat.expand(scenarios, plan.repeat):   # round by round
        try:
            session.machine(plan.arch)   # a guest that does not boot: skip, not bad
            outcome = session.run_scenario(sc, plan.arch)
        except QemuStartError:
            raise                     # the host's QEMU, not the kernel
        except ScenarioError as e:    # e.g. a module this commit does not have
            raise _Verdict(SKIP, f"cannot run {sc.id} at this commit: {e}")
        except (BootError, WaitTimeout) as e:   # a fresh guest for the next round failed
            raise _Verdict(SKIP, f"the guest does not boot: {e}")
        outcome.run = run
        outcomes.append(outcome)
        if outcome.status == Status.SKIP:
            skipped.append(f"{sc.id}: {outcome.message}")
            continue
        if outcome.status == Status.FAIL and outcome.cause == Cause.LIVEPATCH_BUILD:
            raise _Verdict(SKIP, f"cannot test {sc.id} at this commit: {outcome.message}")
        if outcome.status == Status.FAIL:
            where = (f" in run {run} of {plan.repeat} (--repeat: any failed run makes "
                     f"the step bad; the earlier {run - 1} passed)" if run else "")
            return BAD, f"{sc.id} failed{where}: {outcome.message}"
        passed.add(sc.id)   # pass, or a declared known failure (xfail)
    if not passed:
        return SKIP, "every scenario skipped: " + "; ".join(skipped[:len(scenarios)])
    runs = f" in all {plan.repeat} runs" if plan.repeat > 1 else ""
    return GOOD, f"{len(passed)} scenario(s) passed{runs}" + (
        f", {len(scenarios) - len(passed)} skipped" if len(passed) < len(scenarios) else "")


def _forget(image: imagemod.Image) -> None:
    """Remove an image made for one commit, and the modules and programs built for it."""
    for kind in ("modules", "programs"):
        for entry in (cache.root() / kind).glob(f"{image.dir.name}-*"):
            shutil.rmtree(entry, ignore_errors=True)
    klpbuild.forget(image)
    shutil.rmtree(image.dir, ignore_errors=True)
