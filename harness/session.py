"""A test session: one booted guest per architecture (a pool of them under run_all),
reused across scenarios; its arches' images and modules made once.

A guest that panicked or whose QEMU died is discarded; the next test boots a fresh one.
After every test, whichever front end ran it, ``finish`` gives the verdict, keeps a
failure's artifacts (artifacts.py) and replaces a guest the test left unclean.
"""
from __future__ import annotations

import concurrent.futures
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Collection, Dict, List, Optional, Sequence

from . import (applicability, artifacts, buildinfo, image as imagemod, klpbuild, phases,
               report, runner)
from . import pool as poolmod, shard
from .archstate import ArchState
from .errors import BootError, GuestPanic, HarnessError, WaitTimeout
from .guest import Guest
from .log import LOG
from .machine import Machine, host_load
from .modules import ModuleCatalog
from .options import Options
from .outcome import Cause, Outcome, Status, verdict
from .scenario import Scenario
from .scheduler import ScenarioInterrupted, Scheduler


class Session:
    def __init__(self, options: Options):
        self.options = options
        # A dir of this run's own (artifacts.open_run); the caller's options stay as given.
        self.run_dir = artifacts.open_run(Path(options.artifacts), options.run_id)
        self.run_id = self.run_dir.name
        self._arches: Dict[str, ArchState] = {}
        self._failed: Dict[str, HarnessError] = {}   # arches whose image or modules failed
        self._unbootable: Dict[str, BootError] = {}  # arches whose guest did not boot
        self._locks_lock = threading.Lock()
        self._state_locks: Dict[str, threading.Lock] = {}
        self.booted: List[Machine] = []   # every guest started, booting ones too (Ctrl-C)
        self.stopping = threading.Event()   # Ctrl-C in run_all: no guest is to start

    def prepare(self, arches: List[str], images=(), scenarios: Sequence[Scenario] = ()) -> None:
        """Build what ``arches`` need (image, modules, programs, the livepatches that
        ``scenarios`` build from patches), and the other ``images`` ((name, arch) pairs),
        all at the same time: kernel builds of several arches fill the host's cores better
        together than one after the other. A failure is kept and raised when the arch (or
        image) is used, so one broken arch does not stop the others' tests."""
        jobs = [(lambda a: self.state(a).build_livepatches(scenarios), (a,)) for a in arches]
        jobs += [(imagemod.build, (name, a, self.options.mirror)) for name, a in images]
        if len(jobs) <= 1:
            for fn, args in jobs:
                _ignore_harness_errors(fn, *args)
            return
        with concurrent.futures.ThreadPoolExecutor(len(jobs), "klp-prepare") as pool:
            for f in [pool.submit(_ignore_harness_errors, fn, *args) for fn, args in jobs]:
                f.result()

    def state(self, arch: str) -> ArchState:
        """``arch``'s image, modules and pool, made once: the guests of a pool ask for it
        at the same time (a lock per arch; arches build side by side)."""
        with self._locks_lock:
            lock = self._state_locks.setdefault(arch, threading.Lock())
        with lock:
            if arch in self._failed:   # the same error at once, instead of building again
                raise self._failed[arch]
            try:
                if arch not in self._arches:
                    self._arches[arch] = ArchState.make(arch, self.options)
                    image = self._arches[arch].image
                    report.record_image(self.run_dir, image, buildinfo.facts(
                        image, self.options.image, self.options.kernel_tree))
                return self._arches[arch]
            except HarnessError as e:
                self._failed[arch] = e
                raise

    def machine(self, arch: str, slot: int = 0) -> Machine:
        """The running guest ``slot`` of ``arch``'s pool, booting one if there is none or it
        died. An arch boots one guest at a time, and a boot that fails marks the arch
        broken: later calls (any slot) raise that failure at once instead of booting again
        for every test (labgrid's never_retry)."""
        if arch in self._unbootable:
            raise self._unbootable[arch]
        arch_state = self.state(arch)
        g = arch_state.slot(slot)
        if g.machine is not None and (not g.machine.alive() or g.machine.panicked()):
            LOG.info(f"{arch}: guest is gone (panic or QEMU exit); the next test boots a "
                     "fresh one")
            g.discard()
        if g.machine is None:
            with arch_state.boot_lock:
                if arch in self._unbootable:   # found broken while this one waited
                    raise self._unbootable[arch]
                machine = self._boot(arch, arch_state)
            g.start(machine, arch_state)
        return g.machine

    def _boot(self, arch: str, arch_state: ArchState) -> Machine:
        machine = arch_state.new_machine(self.run_dir / "machines" / self.options.worker,
                                         self.options)
        self.booted.append(machine)
        started = time.monotonic()
        try:
            machine.boot()
        except BootError as e:
            machine.shutdown()
            self._unbootable[arch] = e
            LOG.info(f"{arch}: the guest did not boot; the arch's other tests fail at once")
            raise
        except BaseException:
            machine.shutdown()
            raise
        if self.stopping.is_set():   # Ctrl-C came while it booted (before it could be killed)
            machine.kill()
            raise KeyboardInterrupt
        load = host_load()
        LOG.info(f"{arch}: guest up in {time.monotonic() - started:.1f}s, image "
                 f"{arch_state.image.name}, kernel {arch_state.image.kernel_name} (console: "
                 f"{machine.console_log})" + (f"; the host is oversubscribed: waits stretched "
                                              f"{load:.1f}x" if load > 1 else ""))
        return machine

    def guest(self, arch: str, slot: int = 0) -> Guest:
        return self.machine(arch, slot).guest

    def run_scenario(self, scenario: Scenario, arch: str, slot: int = 0) -> Outcome:
        """Run ``scenario`` on guest ``slot`` of ``arch``'s pool (booted if need be)."""
        skip = applicability.skip(scenario, arch)
        if skip:   # decided before building or booting anything
            return Outcome.skipped(scenario.id, arch, skip)
        self.state(arch)   # the image and modules: phases of their own, not the guest's
        with phases.phase(f"scenarios {arch}"):   # guests' boots too
            return self._run_scenario(scenario, arch, slot)

    def _run_scenario(self, scenario: Scenario, arch: str, slot: int) -> Outcome:
        arch_state = self.state(arch)
        kernel = arch_state.image.kernel_name
        skip = applicability.skip(scenario, arch, arch_state.image, arch_state.catalog)
        if skip:
            return Outcome.skipped(scenario.id, arch, skip, kernel=kernel)
        scenario.check_modules(arch_state.catalog.names())   # before booting: file, line
        try:
            catalog = self.catalog_with(arch, scenario.livepatches) if scenario.livepatches \
                else arch_state.catalog
        except klpbuild.Refused as e:   # a negative control may expect just that
            outcome = Outcome(scenario.id, arch, Status.FAIL, str(e), kernel=kernel,
                              cause=Cause.LIVEPATCH_BUILD)
            outcome = self.finish(outcome, scenario=scenario)
            if outcome.artifacts:
                shutil.copy(e.log, Path(outcome.artifacts) / "klp-build.log")
            return outcome
        try:
            machine = self.machine(arch, slot)
        except BootError as e:
            return Outcome(scenario.id, arch, Status.FAIL, f"the {arch} guest does not boot "
                           f"(its first failure in this run): {e}", kernel=kernel,
                           cause=Cause.BOOT)
        first_command, judged = len(machine.guest.history), scenario
        try:
            outcome = self.runner(arch, catalog, slot).run(scenario)
        except BootError as e:   # a panic is the kernel's failure; QEMU dying is not
            outcome, judged = Outcome(scenario.id, arch, Status.FAIL, str(e), cause=(
                Cause.NONE if isinstance(e, GuestPanic) else Cause.GUEST)), None
        except WaitTimeout as e:   # before its first step: the guest stopped working
            outcome, judged = Outcome(scenario.id, arch, Status.FAIL, "the guest did not "
                                      f"answer before the scenario's first step: {e}",
                                      unclean="it did not answer", cause=Cause.GUEST), None
        outcome.kernel = kernel
        outcome = self.finish(outcome, scenario=judged, slot=slot, machine=machine,
                              first_command=first_command)
        if outcome.interrupted:
            raise ScenarioInterrupted(outcome)
        return outcome

    def finish(self, outcome: Outcome, scenario: Optional[Scenario] = None, slot: int = 0,
               machine: Optional[Machine] = None, first_command: int = 0) -> Outcome:
        """After every test (a scenario of `run` or pytest, a klp_livetest block): the
        verdict of ``scenario`` (its known failures, its negative control), the artifacts
        of a failure (``machine``'s console and the commands from ``first_command``), and
        guest ``slot`` stopped if the test was interrupted or left what the clean-up could
        not undo: the next test boots a fresh one."""
        if scenario is not None and not outcome.interrupted:
            outcome = verdict(scenario, outcome)
        if outcome.interrupted:   # stop the guest first: its shell is still busy
            self._discard(outcome.arch, slot)
        if outcome.status.failed:
            self.save_artifacts(outcome, machine, first_command)
        # Under Ctrl-C every guest is being stopped anyway: no "keeps what ... left" then.
        if outcome.unclean and not outcome.interrupted and not self.stopping.is_set():
            LOG.info(f"{outcome.arch}: the guest keeps what {outcome.scenario} left "
                     f"({outcome.unclean}); the next test boots a fresh one")
            self._discard(outcome.arch, slot)
        return outcome

    def _discard(self, arch: str, slot: int) -> None:
        if arch in self._arches:
            self._arches[arch].slot(slot).discard()

    def running_machine(self, arch: str, slot: int) -> Optional[Machine]:
        """Guest ``slot`` of ``arch`` if one is up; never builds or boots (Ctrl-C)."""
        arch_state = self._arches.get(arch)
        return arch_state.slot(slot).machine if arch_state else None

    def save_artifacts(self, outcome: Outcome, machine: Optional[Machine],
                       first_command: int = 0) -> Path:
        tree = self.options.kernel_tree
        return artifacts.save(self.run_dir, outcome, machine, first_command,
                              f"image {self.options.image}"
                              + (f" built from the tree {tree}" if tree else ""))

    def catalog_with(self, arch: str,
                     livepatches: Dict[str, klpbuild.LivepatchSource]) -> ModuleCatalog:
        """``arch``'s modules and ``livepatches`` (ArchState.catalog_with)."""
        return self.state(arch).catalog_with(livepatches)

    def runner(self, arch: str, catalog: Optional[ModuleCatalog] = None,
               slot: int = 0) -> runner.Runner:
        """A Runner on ``arch``'s running guest (booted if need be), with its modules (or
        ``catalog``: those and a scenario's livepatches) and its shadow counter: for
        scenarios, and for Python tests (livetest.LiveTest)."""
        machine = self.machine(arch, slot)
        arch_state = self.state(arch)
        g = arch_state.slot(slot)
        return runner.Runner(machine.guest, catalog or arch_state.catalog, arch,
                             arch_state.image, g.counter, g.counter_unavailable)

    def run_all(self, scenarios: List[Scenario], arches: List[str], parallel: bool = True,
                report: Optional[Callable[[Outcome], None]] = None,
                pool: Optional[int] = None,
                cells: Optional[Collection[str]] = None) -> List[Outcome]:
        """Every scenario on every arch (scheduler.Scheduler), or those of ``cells`` (a
        shard's, by shard.cell name), on a pool of guests per arch: ``pool``, else
        pool.size (Options.pool, or what the host holds)."""
        per_arch = len(scenarios) if cells is None else max(
            [sum(shard.cell(sc.id, a) in cells for sc in scenarios) for a in arches] + [0])
        guests = min(pool or poolmod.size(len(arches), self.options.memory_mb,
                                          self.options.pool),
                     max(1, per_arch * self.options.repeat))   # runs to share
        if guests > 1:
            LOG.info(f"a pool of {guests} guests per arch")
        return Scheduler(self, scenarios, arches, guests, report, cells).run(parallel)

    def close(self) -> None:
        for arch_state in self._arches.values():
            for g in arch_state.guests.values():
                g.discard()


def _ignore_harness_errors(fn, *args) -> None:
    """Run ``fn`` for its side effects; a HarnessError is the caller's to see later."""
    try:
        fn(*args)
    except HarnessError:
        pass
