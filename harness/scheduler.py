"""Every scenario on every arch, on a pool of guests per arch: each guest takes the next
scenario of its arch's queue, longest expected first (from earlier runs' durations).

With --repeat N each scenario x arch is N entries of its arch's queue (repeat.expand), so
its runs spread over the pool; with --until-fail a guest that takes a run of a cell that
has failed already drops it (repeat.UntilFail), and the cell has run fewer times.

A guest spends most of a scenario waiting for the kernel's transition work (it retries once
a second), so guests overlap well even on 2 cores. Ctrl-C stops the run promptly: no
scenario starts any more, every guest is killed (its running command ends at once), and
each guest's thread records the scenario it had taken, with its artifacts, before the
partial outcomes travel up in RunInterrupted.
"""
from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Callable, Collection, Dict, List, Optional, Tuple

from . import pool as poolmod, repeat
from .log import LOG
from .outcome import Outcome, Status
from .scenario import Scenario

if TYPE_CHECKING:
    from .session import Session


class ScenarioInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scenario: its outcome (artifacts kept, guest stopped) travels along."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the outcomes so far, for a partial summary."""

    def __init__(self, outcomes: List[Outcome]):
        super().__init__(f"interrupted after {len(outcomes)} scenario run(s)")
        self.outcomes = outcomes


class Scheduler:
    """One run of ``scenarios`` × ``arches`` (those of them named in ``cells``, if given:
    a shard's) on ``guests`` guests per arch of ``session``; ``report`` sees each outcome
    as it comes."""

    def __init__(self, session: "Session", scenarios: List[Scenario], arches: List[str],
                 guests: int, report: Optional[Callable[[Outcome], None]] = None,
                 cells: Optional[Collection[str]] = None):
        self.session, self.scenarios, self.arches = session, scenarios, arches
        self.guests, self.report = guests, report
        self.durations = poolmod.Durations(session.options.image)
        expected = self.durations.expected()
        # The queues' entries: (scenario's index, its run), each scenario N times.
        self.runs = repeat.expand(range(len(scenarios)), session.options.repeat)
        self.until_fail = repeat.UntilFail(session.run_dir) if session.options.until_fail \
            else None
        self.keys = {a: [repeat.item_id(scenarios[i].id, a) for i, _ in self.runs]
                     for a in arches}
        self.queues: Dict[str, "queue.SimpleQueue[int]"] = {}
        for a in arches:   # a shard's (``cells``: shard.cell names), or every scenario
            self.queues[a] = queue.SimpleQueue()
            for i in poolmod.longest_first(self.keys[a], expected):
                if cells is None or self.keys[a][i] in cells:
                    self.queues[a].put(i)
        self.results: Dict[str, Dict[int, Outcome]] = {a: {} for a in arches}
        self.errors: List[BaseException] = []   # an arch's failure, for the caller's thread
        self.stop = threading.Event()           # Ctrl-C: no scenario starts any more
        self._lock = threading.Lock()
        self._dones: List[threading.Event] = []

    def run(self, parallel: bool = True) -> List[Outcome]:
        """The outcomes, in the order of the scenarios per arch, whichever guest ran them.
        With ``parallel`` all arches at once, else one after the other."""
        waves = [[(a, n) for a in self.arches for n in range(self.guests)]] if parallel else \
            [[(a, n) for n in range(self.guests)] for a in self.arches]
        try:
            for wave in waves:
                self._run_wave(wave)
                if self.stop.is_set():
                    break
        except KeyboardInterrupt:   # in the main thread, while the guests' threads run
            self._interrupt()
        everything = [self.results[a][i] for a in self.arches for i in sorted(self.results[a])]
        if self.stop.is_set():
            for e in self.errors:   # an arch's trouble while the run was being stopped
                LOG.info(f"while stopping: {type(e).__name__}: {e}")
            raise RunInterrupted(everything)
        if self.errors:
            raise self.errors[0]
        self.durations.record(repeat.median_times(
            (self.keys[a][j], o.seconds) for a in self.arches
            for j, o in self.results[a].items() if o.status != Status.SKIP))
        return everything

    def _run_wave(self, wave: List[Tuple[str, int]]) -> None:
        if len(wave) == 1:   # in this thread: Ctrl-C reaches the running step
            self._guest(*wave[0])
            return
        # Waiting on an Event of each thread, not Thread.join(): a join that Ctrl-C
        # interrupts marks a still running thread as ended in Python 3.11 (bpo-45274's
        # fix), so a second join returned before that thread had recorded its scenario.
        self._dones = [threading.Event() for _ in wave]
        for (a, n), done in zip(wave, self._dones):
            threading.Thread(target=self._guest_thread, args=(a, n, done),
                             name=f"klp-{a}-{n}").start()
        for done in self._dones:
            done.wait()

    def _interrupt(self) -> None:
        self.stop.set()
        self.session.stopping.set()
        for machine in list(self.session.booted):   # their commands (and boots) end at
            machine.kill()                          # once; each thread keeps its artifacts
        for done in self._dones:
            done.wait()

    def _guest_thread(self, arch: str, slot: int, done: threading.Event) -> None:
        try:
            self._guest(arch, slot)
        finally:
            done.set()

    def _guest(self, arch: str, slot: int) -> None:
        """Guest ``slot`` of ``arch`` runs scenarios from its arch's queue until it is empty
        or the run stops."""
        i = -1   # the run (of self.runs) this guest has taken and not yet recorded
        try:
            while not self.stop.is_set():
                try:
                    i = self.queues[arch].get_nowait()
                except queue.Empty:
                    return
                scenario, run = self.scenarios[self.runs[i][0]], self.runs[i][1]
                if self.until_fail and self.until_fail.stopped(scenario.id, arch):
                    i = -1   # its cell failed already: this run is not run
                    continue
                outcome = self.session.run_scenario(scenario, arch, slot)
                outcome.run = run
                if self.stop.is_set() and outcome.status == Status.FAIL:   # guest stopped
                    outcome.message = f"interrupted (Ctrl-C): {outcome.message}"
                self._record(arch, i, outcome)
                i = -1
        except ScenarioInterrupted as e:
            self.stop.set()
            e.outcome.run = self.runs[i][1]
            self._record(arch, i, e.outcome)
        except BaseException as e:
            if not self.stop.is_set() and not isinstance(e, KeyboardInterrupt):
                self.errors.append(e)   # handed to the caller's thread by run()
                return
            self.stop.set()
            if i >= 0:
                self._record(arch, i, self._killed(arch, slot, i, e))

    def _killed(self, arch: str, slot: int, i: int, e: BaseException) -> Outcome:
        """Ctrl-C: killing this guest ended its scenario (or its boot) with whatever the dead
        guest caused; the scenario it had taken is still in the summary."""
        outcome = Outcome(self.scenarios[self.runs[i][0]].id, arch, Status.FAIL,
                          f"interrupted (Ctrl-C): its guest was stopped ({type(e).__name__}: "
                          f"{e})", interrupted=True, run=self.runs[i][1])
        machine = self.session.running_machine(arch, slot)
        if machine is not None:   # else it was still booting: nothing ran yet
            self.session.save_artifacts(outcome, machine)
        return outcome

    def _record(self, arch: str, i: int, outcome: Outcome) -> None:
        with self._lock:
            self.results[arch][i] = outcome
            if self.until_fail:
                self.until_fail.mark(outcome)
            if self.report:
                self.report(outcome)
