"""A test session: one booted guest per architecture, reused across scenarios.

A guest that panicked or whose QEMU died is discarded; the next test boots a fresh one.
Failed scenarios leave an artifact directory: console log, kernel log, livepatch sysfs
snapshots (when the step failed, and after the clean-up) and every command run with its
output.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from . import (accel, arch as archmod, cache, image as imagemod, klpbuild, kselftest, livepatch,
               phases, pool as poolmod, programs, report, runner, shadow, skipsummary)
from .errors import BootError, BuildError, HarnessError, ScenarioError, WaitTimeout
from .guest import Guest
from .machine import Machine, MachineConfig, host_load
from .modules import ModuleCatalog
from .options import Options
from .scenario import Scenario, taken_name_message
from .skips import Skip


OUR_PROGRAMS = imagemod.PROJECT / "scenarios" / "programs"
UPSTREAM_PREFIX = "test_klp_"   # upstream's selftest modules; ours are klp_*


@dataclass
class ArchState:
    profile: archmod.ArchProfile
    image: imagemod.Image
    catalog: ModuleCatalog
    programs: Dict[str, Path]       # static guest programs, copied to runner.WORKDIR at boot
    accel: str
    counter_module: Optional[Path]  # the shadow variable counter, if it builds for the image
    counter_unavailable: str        # why there is no counter module (when there is none)
    guests: Dict[int, "GuestSlot"] = field(default_factory=dict)   # the arch's pool, by slot
    boots: int = 0
    boot_lock: threading.Lock = field(default_factory=threading.Lock)

    def slot(self, n: int) -> "GuestSlot":
        return self.guests.setdefault(n, GuestSlot(counter_unavailable=self.counter_unavailable))

    @property
    def machine(self) -> Optional[Machine]:
        """The first guest (slot 0): the one of a session without a pool."""
        return self.slot(0).machine

    @property
    def counter(self) -> Optional[shadow.ShadowCounter]:
        return self.slot(0).counter

    @counter.setter
    def counter(self, counter: Optional[shadow.ShadowCounter]) -> None:
        self.slot(0).counter = counter   # a Python test that reinstalls it


@dataclass
class GuestSlot:
    """One guest of an arch's pool, and the shadow counter loaded in it."""
    machine: Optional[Machine] = None
    counter: Optional[shadow.ShadowCounter] = None
    counter_unavailable: str = ""

    def discard(self) -> None:
        """Stop the guest: the next test on this slot boots a fresh one."""
        if self.machine is not None:
            self.machine.shutdown()
            self.machine = None


def log(message: str) -> None:
    cache.LOG.info(message)


class Session:
    def __init__(self, options: Options):
        self.options = options
        # Each run writes under a dir of its own, so neither a concurrent run nor a later
        # one overwrites its artifacts; <artifacts>/latest points to the newest run's.
        base = Path(options.artifacts).resolve()
        self.options.run_id = options.run_id or new_run_id()
        self.options.artifacts = base / self.options.run_id
        self.options.artifacts.mkdir(parents=True, exist_ok=True)
        _point_latest(base, self.options.run_id)
        self._arches: Dict[str, ArchState] = {}
        self._failed: Dict[str, HarnessError] = {}   # arches whose image or modules failed
        self._unbootable: Dict[str, BootError] = {}  # arches whose guest did not boot
        self._locks_lock = threading.Lock()
        self._state_locks: Dict[str, threading.Lock] = {}
        self._booted: List[Machine] = []   # every guest started, booting ones too (Ctrl-C)
        self._stopping = threading.Event()   # Ctrl-C in run_all: no guest is to start

    def prepare(self, arches: List[str], images=(), scenarios: Sequence[Scenario] = ()) -> None:
        """Build what ``arches`` need (image, modules, programs, the livepatches that
        ``scenarios`` build from patches), and the other ``images`` ((name, arch) pairs),
        all at the same time: kernel builds of several arches fill the host's cores better
        together than one after the other. A failure is kept and raised when the arch (or
        image) is used, so one broken arch does not stop the others' tests."""
        jobs = [(self._prepare_arch, (a, scenarios)) for a in arches]
        jobs += [(imagemod.build, (name, a, self.options.mirror)) for name, a in images]
        if len(jobs) <= 1:
            for fn, args in jobs:
                _ignore_harness_errors(fn, *args)
            return
        with concurrent.futures.ThreadPoolExecutor(len(jobs), "klp-prepare") as pool:
            for f in [pool.submit(_ignore_harness_errors, fn, *args) for fn, args in jobs]:
                f.result()

    def _prepare_arch(self, arch: str, scenarios: Sequence[Scenario]) -> None:
        st = self.state(arch)
        if klpbuild.unsupported(st.image):
            return
        for sc in scenarios:
            if sc.skip_reason(arch, st.image) is None:
                for source in sc.livepatches.values():   # a refusal is cached: seen later
                    _ignore_harness_errors(klpbuild.build, st.image, source)

    def state(self, arch: str) -> ArchState:
        """``arch``'s image, modules and pool, made once: the guests of a pool ask for it
        at the same time (a lock per arch; arches build side by side)."""
        with self._locks_lock:
            lock = self._state_locks.setdefault(arch, threading.Lock())
        with lock:
            if arch in self._failed:   # the same error at once, instead of building again
                raise self._failed[arch]
            try:
                return self._state(arch)
            except HarnessError as e:
                self._failed[arch] = e
                raise

    def _state(self, arch: str) -> ArchState:
        if arch not in self._arches:
            profile = archmod.get(arch)
            image = imagemod.build(self.options.image, arch, self.options.mirror,
                                   self.options.kernel_tree, self.options.build_dir)
            with phases.phase(f"modules {arch}"):
                catalog = ModuleCatalog(image, self.options.module_dirs, self.options.ko_dirs)
                helpers = guest_programs(image)
                try:
                    counter_module, unavailable = shadow.build(image), ""
                except BuildError as e:   # a kernel the counter does not build for
                    counter_module, unavailable = None, f"the shadow counter does not build: {e}"
            chosen, why = accel.choose(profile, image, self.options.accel)
            log(f"{arch}: {why}")
            self._arches[arch] = ArchState(profile, image, catalog, helpers, chosen,
                                           counter_module, unavailable)
            report.record_image(self.options.artifacts, image)
        return self._arches[arch]

    def machine(self, arch: str, slot: int = 0) -> Machine:
        """The running guest ``slot`` of ``arch``'s pool, booting one if there is none or it
        died. An arch boots one guest at a time, and a boot that fails marks the arch
        broken: later calls (any slot) raise that failure at once instead of booting again
        for every test (labgrid's never_retry)."""
        if arch in self._unbootable:
            raise self._unbootable[arch]
        st = self.state(arch)
        g = st.slot(slot)
        if g.machine is not None and (not g.machine.alive() or g.machine.panicked()):
            log(f"{arch}: guest is gone (panic or QEMU exit); the next test boots a fresh one")
            g.discard()
        if g.machine is None:
            with st.boot_lock:
                if arch in self._unbootable:   # found broken while this one waited
                    raise self._unbootable[arch]
                machine = self._boot(arch, st)
            runner.prepare(machine.guest, st.programs)
            g.counter, g.counter_unavailable = None, st.counter_unavailable
            if st.counter_module is not None:
                try:
                    g.counter = shadow.ShadowCounter.install(machine.guest, st.counter_module)
                except shadow.CounterUnavailable as e:
                    g.counter_unavailable = str(e)
                    log(f"{arch}: no shadow variable counts: {e}")
            g.machine = machine
        return g.machine

    def _boot(self, arch: str, st: ArchState) -> Machine:
        st.boots += 1   # names the machine's dir: each guest has its own sockets and logs
        workdir = (self.options.artifacts / "machines" / self.options.worker
                   / f"{arch}-{st.boots}")
        shutil.rmtree(workdir, ignore_errors=True)
        config = MachineConfig(memory_mb=self.options.memory_mb, cpus=self.options.cpus,
                               accel=st.accel)
        machine = Machine(st.image, st.profile, workdir, config)
        self._booted.append(machine)
        started = time.monotonic()
        try:
            machine.boot()
        except BootError as e:
            machine.shutdown()
            self._unbootable[arch] = e
            log(f"{arch}: the guest did not boot; the arch's other tests fail at once")
            raise
        except BaseException:
            machine.shutdown()
            raise
        if self._stopping.is_set():   # Ctrl-C came while it booted (before it could be killed)
            machine.kill()
            raise KeyboardInterrupt
        load = host_load()
        log(f"{arch}: guest up in {time.monotonic() - started:.1f}s, image {st.image.name}, "
            f"kernel {st.image.kernel_release} (console: {machine.console_log})"
            + (f"; the host is oversubscribed: waits stretched {load:.1f}x" if load > 1 else ""))
        return machine

    def guest(self, arch: str, slot: int = 0) -> Guest:
        return self.machine(arch, slot).guest

    def run_scenario(self, scenario: Scenario, arch: str, slot: int = 0) -> runner.Outcome:
        """Run ``scenario`` on guest ``slot`` of ``arch``'s pool (booted if need be)."""
        if not scenario.skip(arch):   # the arch's image and modules: phases of their own,
            self.state(arch)          # and not a guest's time while another builds them
        with phases.phase(f"scenarios {arch}"):   # guests' boots too
            return self._run_scenario(scenario, arch, slot)

    def _run_scenario(self, scenario: Scenario, arch: str, slot: int) -> runner.Outcome:
        skip = scenario.skip(arch)
        if skip:  # decided before building or booting anything
            return runner.Outcome.skipped(scenario.id, arch, skip)
        st = self.state(arch)
        skip = scenario.skip(arch, st.image) or newer_selftest_modules(scenario, st.catalog)
        if skip:
            return runner.Outcome.skipped(scenario.id, arch, skip, kernel=st.image.kernel_release)
        # Before the module check: what a scenario loads beside its livepatches may be a
        # module only the images klp-build serves have (binfmt_misc of the x86_64 image).
        skip = klpbuild.unsupported_skip(st.image) if scenario.livepatches else None
        if skip:
            skip = dataclasses.replace(skip, reason=f"its livepatches are built from patches "
                                                    f"by klp-build: {skip.reason}")
            return runner.Outcome.skipped(scenario.id, arch, skip, kernel=st.image.kernel_release)
        scenario.check_modules(st.catalog.names())   # before booting: file, line, module
        catalog = st.catalog
        if scenario.livepatches:
            catalog = self._scenario_livepatches(scenario, arch)
            if isinstance(catalog, runner.Outcome):   # klp-build made no livepatch of them
                return catalog
        try:
            machine = self.machine(arch, slot)
        except BootError as e:
            return runner.Outcome(scenario.id, arch, "fail", f"the {arch} guest does not "
                                  f"boot (its first failure in this run): {e}",
                                  kernel=st.image.kernel_release)
        first_command = len(machine.guest.history)
        try:
            outcome = self.runner(arch, catalog, slot).run(scenario)
        except BootError as e:
            outcome = runner.Outcome(scenario.id, arch, "fail", str(e))
        except WaitTimeout as e:   # before its first step: the guest stopped working
            outcome = runner.Outcome(scenario.id, arch, "fail", f"the guest did not answer "
                                     f"before the scenario's first step: {e}")
            outcome.unclean = "it did not answer"
        outcome.kernel = st.image.kernel_release
        if outcome.interrupted:   # stop the guest first: its shell is still busy
            st.slot(slot).discard()
        if outcome.status in ("fail", "xfail"):
            self.save_artifacts(scenario.id, arch, outcome, machine, first_command)
        # While Ctrl-C stops the run, every guest is being stopped anyway (by the thread
        # that caught it): no "the guest keeps what ... left" for guests killed on purpose.
        if outcome.unclean and not outcome.interrupted and not self._stopping.is_set():
            log(f"{arch}: the guest keeps what {scenario.id} left ({outcome.unclean}); the "
                "next test boots a fresh one")
            st.slot(slot).discard()
        if outcome.interrupted:
            raise ScenarioInterrupted(outcome)
        return outcome

    def _scenario_livepatches(self, scenario: Scenario, arch: str):
        """The arch's modules and the scenario's livepatches; or, if klp-build refused a
        patch, the scenario's outcome (a negative control may expect just that)."""
        st = self.state(arch)
        try:
            return self.catalog_with(arch, scenario.livepatches)
        except klpbuild.Refused as e:
            outcome = runner.Outcome(scenario.id, arch, "fail", str(e),
                                     kernel=st.image.kernel_release, cause="livepatch build")
            outcome = runner.expected_failure(scenario, runner.known_failure(scenario, outcome))
            if outcome.status in ("fail", "xfail"):
                target = self.save_artifacts(scenario.id, arch, outcome, None)
                shutil.copy(e.log, target / "klp-build.log")
            return outcome

    def catalog_with(self, arch: str,
                     livepatches: Dict[str, klpbuild.LivepatchSource]) -> ModuleCatalog:
        """``arch``'s modules and ``livepatches``, built from their patches by klp-build
        (cached): klpbuild.Unsupported if the image cannot, Refused if a patch is not
        made into a livepatch. A name the image's modules have is an error (naming the
        scenario file and line that declare the livepatch, when a scenario does)."""
        st = self.state(arch)
        reason = klpbuild.unsupported(st.image)
        if reason:
            raise klpbuild.Unsupported(reason)
        taken = next((name for name in livepatches if name in st.catalog.names()), None)
        if taken:
            message = taken_name_message(taken, f"image {st.image.name} "
                                                f"({st.catalog.path(taken)})")
            if livepatches[taken].declared:
                raise ScenarioError(*livepatches[taken].declared, f"livepatches.{taken}",
                                    message)
            raise HarnessError(message)
        return st.catalog.with_modules({name: klpbuild.build(st.image, source)
                                        for name, source in livepatches.items()})

    def runner(self, arch: str, catalog: Optional[ModuleCatalog] = None,
               slot: int = 0) -> runner.Runner:
        """A Runner on ``arch``'s running guest (booted if need be), with its modules (or
        ``catalog``: those and a scenario's livepatches) and its shadow counter: for
        scenarios, and for Python tests (livetest.LiveTest)."""
        machine = self.machine(arch, slot)
        st = self.state(arch)
        g = st.slot(slot)
        return runner.Runner(machine.guest, catalog or st.catalog, arch, st.image, g.counter,
                             g.counter_unavailable)

    def run_all(self, scenarios: List[Scenario], arches: List[str], parallel: bool = True,
                report: Optional[Callable[[runner.Outcome], None]] = None,
                pool: Optional[int] = None) -> List[runner.Outcome]:
        """Every scenario on every arch, on a pool of guests per arch (``pool``, else
        pool.size: Options.pool or what the host holds): each guest takes the next
        scenario of its arch's queue, longest expected first (from earlier runs). With
        ``parallel`` all arches at once, else one after the other. A guest spends most of
        a scenario waiting for the kernel's transition work (it retries once a second), so
        guests overlap well even on 2 cores. The outcomes come in the order of
        ``scenarios`` per arch, whichever guest ran them."""
        guests = min(pool or poolmod.size(len(arches), self.options.memory_mb,
                                          self.options.pool), max(1, len(scenarios)))
        if guests > 1:
            log(f"a pool of {guests} guests per arch")
        durations = poolmod.Durations(self.options.image)
        expected = durations.expected()
        keys = {a: [f"{sc.id}[{a}]" for sc in scenarios] for a in arches}
        queues: Dict[str, "queue.SimpleQueue[int]"] = {}
        for a in arches:
            queues[a] = queue.SimpleQueue()
            for i in poolmod.longest_first(keys[a], expected):
                queues[a].put(i)
        lock = threading.Lock()
        results: Dict[str, Dict[int, runner.Outcome]] = {a: {} for a in arches}
        errors: List[BaseException] = []
        stop = threading.Event()   # Ctrl-C: no scenario starts any more

        def record(a: str, i: int, outcome: runner.Outcome) -> None:
            with lock:
                results[a][i] = outcome
                if report:
                    report(outcome)

        def one_guest(a: str, slot: int) -> None:
            i = -1   # the scenario this guest has taken and not yet recorded
            try:
                while not stop.is_set():
                    try:
                        i = queues[a].get_nowait()
                    except queue.Empty:
                        return
                    outcome = self.run_scenario(scenarios[i], a, slot)
                    if stop.is_set() and outcome.status == "fail":   # its guest was stopped
                        outcome.message = f"interrupted (Ctrl-C): {outcome.message}"
                    record(a, i, outcome)
                    i = -1
            except ScenarioInterrupted as e:
                stop.set()
                record(a, i, e.outcome)
            except BaseException as e:
                if not stop.is_set() and not isinstance(e, KeyboardInterrupt):
                    errors.append(e)   # handed to the caller's thread below
                    return
                # Ctrl-C: killing this guest ended its scenario (or its boot) with whatever
                # the dead guest caused; the scenario it had taken is still in the summary.
                stop.set()
                if i < 0:
                    return
                outcome = runner.Outcome(scenarios[i].id, a, "fail", f"interrupted (Ctrl-C): "
                                         f"its guest was stopped ({type(e).__name__}: {e})",
                                         interrupted=True)
                st = self._arches.get(a)   # not state(): that could start building
                machine = st.slot(slot).machine if st else None
                if machine is not None:   # else it was still booting: nothing ran yet
                    self.save_artifacts(scenarios[i].id, a, outcome, machine)
                record(a, i, outcome)

        def guest_thread(a: str, slot: int, done: threading.Event) -> None:
            try:
                one_guest(a, slot)
            finally:
                done.set()

        waves = [[(a, n) for a in arches for n in range(guests)]] if parallel else \
            [[(a, n) for n in range(guests)] for a in arches]

        # Waiting on an Event of each thread, not Thread.join(): a join that Ctrl-C
        # interrupts marks a still running thread as ended in Python 3.11 (bpo-45274's
        # fix), so a second join returned before that thread had recorded its scenario.
        dones: List[threading.Event] = []
        try:
            for wave in waves:
                if len(wave) == 1:   # in this thread: Ctrl-C reaches the running step
                    one_guest(*wave[0])
                    continue
                dones = [threading.Event() for _ in wave]
                for (a, n), done in zip(wave, dones):
                    threading.Thread(target=guest_thread, args=(a, n, done),
                                     name=f"klp-{a}-{n}").start()
                for done in dones:
                    done.wait()
                if stop.is_set():
                    break
        except KeyboardInterrupt:   # in the main thread, while the guests' threads run
            stop.set()
            self._stopping.set()
            for machine in list(self._booted):   # their commands (and boots) end at once;
                machine.kill()                   # each thread keeps its artifacts itself
            for done in dones:
                done.wait()
        everything = [results[a][i] for a in arches for i in sorted(results[a])]
        if stop.is_set():
            for e in errors:   # an arch's trouble while the run was being stopped
                log(f"while stopping: {type(e).__name__}: {e}")
            raise RunInterrupted(everything)
        if errors:
            raise errors[0]
        durations.record((keys[a][i], o.seconds) for a in arches
                         for i, o in results[a].items() if o.status != "skip")
        return everything

    def save_artifacts(self, name: str, arch: str, outcome: runner.Outcome,
                       machine: Optional[Machine], first_command: int = 0) -> Path:
        target = self.options.artifacts / "failed" / f"{_safe(name)}[{arch}]"
        for n in range(2, 1000):   # the same test failing twice in a run (e.g. --repeat)
            if not target.exists():
                break
            target = target.with_name(f"{_safe(name)}[{arch}]-{n}")
        target.mkdir(parents=True)
        outcome.artifacts = str(target)
        (target / "failure.txt").write_text(
            f"kernel {outcome.kernel or '(none)'}, image {self.options.image}"
            + (f" built from the tree {self.options.kernel_tree}" if self.options.kernel_tree
               else "") + f", {arch}\n"
            + outcome.message + "\n" + "".join(f"clean-up: {c}\n" for c in outcome.cleanup))
        (target / "kmsg.txt").write_text(outcome.kmsg + "\n")
        (target / "steps.txt").write_text("".join(f"{t}\n" for t in outcome.steps))
        if outcome.sysfs:
            (target / "sysfs-at-failure.txt").write_text(outcome.sysfs)
        if machine is None:   # it failed before any guest was needed (a livepatch's build)
            outcome.message += f"\nartifacts: {target}"
            return target
        if machine.console_log.exists():
            shutil.copy(machine.console_log, target / "console.log")
        if machine.guest is not None:
            with open(target / "commands.txt", "w") as f:
                for r in machine.guest.history[first_command:]:
                    f.write(f"$ {r.command}\n[exit {r.status}, {r.seconds:.2f}s]\n{r.stdout}"
                            + (f"[stderr]\n{r.stderr}" if r.stderr else "") + "\n")
            try:
                after = livepatch.snapshot(machine.guest)
            except Exception as e:  # the guest may be gone: keep what we have
                after = f"(could not read: {e})\n"
            (target / "sysfs-after-cleanup.txt").write_text(after)
        outcome.message += f"\nartifacts: {target}"
        return target

    def close(self) -> None:
        for st in self._arches.values():
            for g in st.guests.values():
                g.discard()


class ScenarioInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scenario: its outcome (artifacts kept, guest stopped) travels along."""

    def __init__(self, outcome: runner.Outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during run_all: the outcomes so far, for a partial summary."""

    def __init__(self, outcomes: List[runner.Outcome]):
        super().__init__(f"interrupted after {len(outcomes)} scenario run(s)")
        self.outcomes = outcomes


def new_run_id() -> str:
    """A name for one run's artifacts: when it began, and the process (runs at once)."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _point_latest(base: Path, run_id: str) -> None:
    """<base>/latest -> run_id, replaced atomically (xdist workers of a run all set it)."""
    tmp = base / f".latest.{os.getpid()}.{threading.get_ident()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        tmp.replace(base / "latest")
    except OSError:   # a file system without symlinks: the run's own path is printed
        tmp.unlink(missing_ok=True)


def _ignore_harness_errors(fn, *args) -> None:
    """Run ``fn`` for its side effects; a HarnessError is the caller's to see later."""
    try:
        fn(*args)
    except HarnessError:
        pass


def newer_selftest_modules(scenario: Scenario, catalog: ModuleCatalog) -> Optional[Skip]:
    """Why a scenario cannot run on this image because it loads upstream selftest modules
    (test_klp_*) that this kernel's own selftests do not have yet (e.g. test_klp_syscall on
    6.1): a newer kernel's test, skipped. Other unknown names stay errors (check_modules)."""
    missing = [m for m in scenario.modules if m not in catalog.names()]
    if not missing or not all(m.startswith(UPSTREAM_PREFIX) for m in missing):
        return None
    return Skip(f"the selftests of this kernel ({catalog.image.kernel_release}, image "
                f"{catalog.image.name}) have no {', '.join(missing)}: the scenario is for a "
                "newer kernel's selftests",
                f"need selftest modules of a newer kernel ({', '.join(missing)})")


def guest_programs(image: imagemod.Image) -> Dict[str, Path]:
    """The helper programs scenarios run: the upstream selftests' (test_klp-call_getpid)
    and ours in scenarios/programs/."""
    found: Dict[str, Path] = {}
    source = image.dir / "source" / kselftest.SELFTESTS
    if source.is_dir():
        found.update(programs.build_set(image, source, "kselftest"))
    if OUR_PROGRAMS.is_dir():
        found.update(programs.build_set(image, OUR_PROGRAMS, "scenario"))
    return found


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def summary(outcomes: List[runner.Outcome]) -> str:
    """A table: one row per scenario, one column per arch, each cell result and time; then
    the counts, and the skips by cause (skipsummary: what would run them)."""
    arches = list(dict.fromkeys(o.arch for o in outcomes))
    cells: Dict[str, Dict[str, str]] = {}
    for o in outcomes:
        cells.setdefault(o.scenario, {})[o.arch] = f"{o.status:<5} {o.seconds:5.1f}s"
    width = max([len(s) for s in cells] + [8])
    kernels = {o.arch: o.kernel for o in outcomes if o.kernel}
    lines = []
    if kernels:
        lines.append("kernels: " + ", ".join(f"{a} {kernels[a]}" for a in arches if a in kernels))
    lines.append((f"{'scenario':<{width}}" + "".join(f"  {a:<12}" for a in arches)).rstrip())
    for scenario, row in cells.items():
        lines.append((f"{scenario:<{width}}"
                      + "".join(f"  {row.get(a, '-'):<12}" for a in arches)).rstrip())
    counts = {s: sum(o.status == s for o in outcomes) for s in ("pass", "fail", "skip", "xfail")}
    lines.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
                 + (f", {counts['xfail']} expected failures (known kernel failures, "
                    f"negative controls caught)" if counts["xfail"] else ""))
    if counts["skip"]:
        lines.append(f"{counts['skip']} skipped, by cause:")
        lines += skipsummary.lines(skipsummary.groups(outcomes))
    return "\n".join(lines)
