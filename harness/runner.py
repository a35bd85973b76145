"""Running a scenario against a booted guest; usable with or without pytest.

Each step runs, then its own checks; the kernel log of the whole scenario is checked for
splats at the end; clean-up (disable patches, unload modules, stop background jobs) always
runs, so a failure does not cascade into the next scenario on the same guest.

The runner writes upstream's command lines into the kernel log ("% insmod
test_modules/x.ko", "% rmmod x", ...) the way the selftests' functions.sh does, so a
transcript copied from an upstream script matches line for line.
"""
from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Dict, List, Optional

from . import kmsg, livepatch, shadow, splat
from .errors import BootError, HarnessError, WaitTimeout
from .guest import COMMAND_TIMEOUT, Guest
from .livepatch import SYSFS
from .modules import ModuleCatalog
from .outcome import Outcome, Status
from .paths import WORKDIR   # modules are pushed to WORKDIR/test_modules/
from .scenario import (DEFAULT_LOG_IGNORE, LogExpectation, Scenario, Step, load_error_text,
                       substitute)
from .skips import Skip

STEP_TIMEOUT = 30.0   # seconds for a wait, at x86_64 TCG speed; scaled per machine
DYNDBG = "/sys/kernel/debug/dynamic_debug/control"
FTRACE_ENABLED = "/proc/sys/kernel/ftrace_enabled"
TRACING = "/sys/kernel/tracing"


# Steps that change livepatch state: `shadow` counts name the last one ("after step 7
# (disable klp_x)"), not a workload's run step between them.
LIVEPATCH_STEPS = ("load", "enable", "disable", "force", "unload", "wait-transition", "param")


class StepFailed(AssertionError):
    """A step's expectation did not hold; the message names the step and the difference."""


class ScenarioSkipped(Exception):
    """The kernel lacks something the scenario looks at (e.g. a sysfs attribute); ``group``
    says what, without the step or the kernel release (the skip's cause, skips.Skip)."""

    def __init__(self, message: str, group: str = ""):
        super().__init__(message)
        self.group = group or message


def prepare(guest: Guest, programs: Optional[Dict[str, Path]] = None) -> None:
    """Once per boot, as upstream's setup_config: livepatch's debug messages on (but not
    the transition's per-task retry notes), ftrace enabled, modules' directory made; and
    the helper programs copied to WORKDIR, where `run` steps start (./program)."""
    for name, path in (programs or {}).items():
        guest.push(path, f"{WORKDIR}/{name}")
        guest.run(f"chmod +x {WORKDIR}/{name}")
    guest.run(f"mkdir -p {WORKDIR}/test_modules && cd {WORKDIR}; "
              f"[ -w {DYNDBG} ] && printf '%s\\n' 'file kernel/livepatch/* +p' "
              f"'func klp_try_switch_task -p' > {DYNDBG}; "
              f"[ -w {FTRACE_ENABLED} ] && echo 1 > {FTRACE_ENABLED}; true")


def push_module(guest: Guest, catalog: ModuleCatalog, name: str) -> str:
    """Copy a module of ``catalog`` to the guest's WORKDIR/test_modules/; return its path
    relative to WORKDIR (as upstream's "% insmod test_modules/x.ko" lines name it)."""
    remote = f"test_modules/{name}.ko"
    guest.push(catalog.path(name), f"{WORKDIR}/{remote}")
    return remote


class Runner:
    def __init__(self, guest: Guest, catalog: ModuleCatalog, arch: str, image=None,
                 counter: Optional[shadow.ShadowCounter] = None,
                 counter_unavailable: str = "no shadow counter in this guest"):
        self.guest, self.catalog, self.arch, self.image = guest, catalog, arch, image
        self.counter, self.counter_unavailable = counter, counter_unavailable
        self._loaded: List[str] = []
        self._pushed: Dict[str, str] = {}
        self._vars: Dict[str, str] = {}
        self._shadow_start: Optional[shadow.Counts] = None
        self._last_step = self._current = "the scenario began"
        self.timings: List[str] = []          # "step N, kind (file:line): 1.2s"
        self._timeout = STEP_TIMEOUT          # the running step's

    def run(self, scenario: Scenario) -> Outcome:
        """Run ``scenario`` on the guest. What the image tells (arch, kernel version, config,
        modules) was decided before anything booted (Session.run_scenario); here only what
        the running guest tells: its shadow counter and the scenario's guest check. The
        outcome is raw: its verdict (known failures, negative controls) is given after
        the test, in one place for every front end (Session.finish, outcome.verdict)."""
        start = time.monotonic()
        skip = self.guest_skip(scenario)
        if skip:
            return Outcome.skipped(scenario.id, self.arch, skip)
        begin = self.begin()
        outcome = Outcome(scenario.id, self.arch, Status.PASS)
        try:
            for index, step in enumerate(scenario.steps):
                self.run_step(step, index, scenario.source, begin)
            if not scenario.expect_splat:
                self.check_no_splat(begin)
        except StepFailed as e:
            outcome.fail(str(e))
        except ScenarioSkipped as e:
            outcome.status, outcome.message = Status.SKIP, str(e)
            outcome.skip = Skip(str(e), e.group)
        except KeyboardInterrupt:
            # The guest's shell is still in the interrupted command: no clean-up there
            # (it would wait for that command); the caller stops the guest instead.
            outcome.status, outcome.interrupted = Status.FAIL, True
            outcome.steps = list(self.timings)
            outcome.message = f"interrupted (Ctrl-C) during {self._current}"
        finally:
            if not outcome.interrupted:
                self.end(outcome, begin, scenario.shadow_baseline)
            outcome.seconds = time.monotonic() - start
        return outcome   # raw: the verdict is the session's (Session.finish)

    def guest_skip(self, scenario: Scenario) -> Optional[Skip]:
        """Why the running guest cannot run ``scenario``: no shadow counter where it counts
        shadow variables, or its requires.guest check failed; None if it can."""
        if scenario.counts_shadow and self.counter is None:
            return Skip(f"the scenario counts shadow variables: {self.counter_unavailable}",
                        "count shadow variables, and the guest has no shadow counter")
        if scenario.requires.guest_check:
            command, why = scenario.requires.guest_check
            if self.guest.run(command).status != 0:
                return Skip(f"{why} (its requires.guest check failed in the guest)", why)
        return None

    # -- the parts of a run, shared with Python tests (livetest.LiveTest) -----------------

    def begin(self) -> int:
        """Start a scenario: forget the last one's modules and variables, take the shadow
        counts to compare against; returns the kernel log cursor of its start."""
        self._loaded, self._vars, self.timings = [], {}, []
        self._last_step = self._current = "the scenario began"
        self._shadow_start = self.counter.read() if self.counter else None
        return self.guest.kmsg_cursor()

    def run_step(self, step: Step, index: int, source: Path, begin: int) -> None:
        """Run one step and its checks; a failure names the step and where it is written."""
        self._current = f"step {index + 1}, {step.describe(source)}"
        started = time.monotonic()
        try:
            self._step(step, begin)
        except (StepFailed, WaitTimeout, HarnessError) as e:
            # A panic or QEMU gone is reported as this step's failure too: the step
            # that was running is what a reader needs first.
            died = "the guest died: " if isinstance(e, BootError) else ""
            raise StepFailed(f"step {index + 1}, {step.describe(source)}: {died}{e}") from None
        except ScenarioSkipped as e:
            raise ScenarioSkipped(f"step {index + 1}, {step.describe(source)}: {e}",
                                  e.group) from None
        finally:
            self.timings.append(f"{self._current}: {time.monotonic() - started:.2f}s")
        if step.kind in LIVEPATCH_STEPS:
            self._last_step = f"step {index + 1} ({step.summary()})"

    def end(self, outcome: Outcome, begin: int, shadow_baseline: Dict[int, int]) -> None:
        """Whatever happened: keep the kernel log (and sysfs, after a failure), clean up,
        and check for shadow variable leaks (a leak fails a passing outcome)."""
        outcome.steps = list(self.timings)
        if self.guest.panicked():
            return
        try:
            records = self.guest.kmsg_since(begin)
            outcome.kmsg = kmsg.text(records)
            if outcome.status == Status.FAIL:
                outcome.sysfs = livepatch.snapshot(self.guest)
            notes = self._cleanup()
            outcome.cleanup = [n.text for n in notes]
            # A forced patch's module can never be unloaded (the kernel keeps its
            # reference): the next scenario must not meet it, so the guest is replaced.
            unclean = [n.text for n in notes if n.lasting]
            # After a report the kernel is not what the next scenario should meet: lockdep
            # and KASAN turn themselves off after their first, lockups and leaks taint it.
            found = splat.find(records)
            if found:
                unclean.append(f"the kernel made a {found.kind} report")
            outcome.unclean = "; ".join(unclean)
            if outcome.status != Status.SKIP:
                self._leak_check(shadow_baseline, outcome)
        except HarnessError as e:   # a guest that cannot be cleaned up is not reused
            outcome.unclean = f"its clean-up failed: {e.headline}"

    # -- steps ----------------------------------------------------------------------------

    def _step(self, step: Step, scenario_begin: int) -> None:
        own_span = step.log is not None and step.log.since == "step"
        begin = self.guest.kmsg_cursor() if own_span else scenario_begin
        self._timeout = step.timeout or STEP_TIMEOUT
        getattr(self, "_do_" + step.kind.replace("-", "_"))(**substitute(step.args, self._vars))
        if step.log:
            self._check_log(step.log.with_variables(self._vars), self.guest.kmsg_since(begin))

    def _log(self, text: str) -> None:
        livepatch.log_line(self.guest, text)

    def _do_load(self, module: str, params: Dict[str, str], wait: bool,
                 error: Optional[str]) -> None:
        remote = self._push(module)
        words = " ".join(f"{k}={v}" for k, v in params.items())
        self._log(f"% insmod {remote} {words}".rstrip())
        self.guest.run(f"cd {WORKDIR}")
        # insmod's own time: a command's, or more if the step gives more
        result = livepatch.load(self.guest, remote, params, check=False, kmod=error is not None,
                                timeout=max(self._timeout, COMMAND_TIMEOUT))
        if error is not None:
            if result.ok:
                self._loaded.append(module)
                raise StepFailed(f"loading {module} succeeded, but it was expected to fail "
                                 f"with {error!r}")
            self._log(result.stderr.strip())   # as upstream's load_failing_mod does
            text = load_error_text(error)
            if text not in result.stderr:
                raise StepFailed(f"loading {module} failed as expected, but with "
                                 f"{result.stderr.strip()!r}, not {text!r}")
            return
        if not result.ok:
            raise StepFailed(f"loading {module} failed: {result.stderr.strip()}")
        self._loaded.append(module)
        if wait:   # a patch still in transition; returns at once for other modules
            livepatch.wait_transition(self.guest, module, self._timeout)

    def _do_enable(self, name: str, wait: bool) -> None:
        self._write(f"{SYSFS}/{name}/enabled", "1")
        if wait:
            livepatch.wait_transition(self.guest, name, self._timeout)

    def _do_disable(self, name: str, wait: bool) -> None:
        self._write(f"{SYSFS}/{name}/enabled", "0")
        if wait:   # a disabled patch leaves sysfs once its transition is done
            livepatch.wait_gone(self.guest, name, self._timeout)

    def _do_force(self, name: str) -> None:
        self._write(f"{SYSFS}/{name}/force", "1")

    def _do_param(self, module: str, name: str, value: str) -> None:
        path = f"/sys/module/{module}/parameters/{name}"
        self._write(path, value)
        livepatch.wait_value(self.guest, path, value, self._timeout)

    def _write(self, path: str, value: str) -> None:
        self._log(f"% echo {value} > {path}")
        result = self.guest.run(f"echo {shlex.quote(value)} > {shlex.quote(path)}")
        if not result.ok:
            raise StepFailed(f"writing {value} to {path} failed: {result.stderr.strip()}")

    def _do_unload(self, name: str) -> None:
        enabled = self.guest.run(f"cat {SYSFS}/{name}/enabled 2>/dev/null").stdout.strip()
        if enabled == "1":   # the kernel holds an enabled livepatch's module: no wait ends
            raise StepFailed(f"livepatch {name} is still enabled, and the kernel keeps an "
                             f"enabled livepatch's module loaded: disable it first "
                             f"(`- disable: {name}` before this step)")
        livepatch.wait_unused(self.guest, name, self._timeout)
        self._log(f"% rmmod {name}")
        result = livepatch.unload(self.guest, name, check=False)
        if not result.ok:
            raise StepFailed(f"rmmod {name} failed: {result.stderr.strip()}")
        if name in self._loaded:
            self._loaded.remove(name)

    def _do_wait_transition(self, name: str) -> None:
        livepatch.wait_transition(self.guest, name, self._timeout)

    def _do_wait_for(self, path: str, value: str) -> None:
        path = path if path.startswith("/") else f"{SYSFS}/{path}"
        if value == "absent":
            livepatch.wait_absent(self.guest, path, self._timeout)
        else:
            livepatch.wait_value(self.guest, path, value, self._timeout)

    def _do_run(self, command: str, status, stdout: Optional[str], contains: List[str],
                absent: List[str], stderr_contains: List[str], save: Optional[str]) -> None:
        result = self.guest.run(command, timeout=self._timeout)
        if status != "any" and result.status != status:
            raise StepFailed(f"'{command}' exited {result.status}, expected {status}; "
                             f"stdout: {result.stdout.strip()[-300:]!r}, "
                             f"stderr: {result.stderr.strip()[-300:]!r}")
        if stdout is not None and result.stdout.rstrip("\n") != stdout.rstrip("\n"):
            raise StepFailed(f"'{command}' printed {result.stdout!r}, expected {stdout!r}")
        for text in contains:
            if text not in result.stdout:
                raise StepFailed(f"'{command}' output lacks {text!r}: {result.stdout!r}")
        for text in absent:
            if text in result.stdout:
                raise StepFailed(f"'{command}' output shows {text!r}, which must not appear: "
                                 f"{result.stdout!r}")
        for text in stderr_contains:
            if text not in result.stderr:
                raise StepFailed(f"'{command}' stderr lacks {text!r}: {result.stderr!r}")
        if save:
            self._vars[save] = result.stdout.strip()

    def _do_sysfs(self, expected: Dict[str, Dict[str, Optional[str]]]) -> None:
        patches = livepatch.read_all(self.guest)
        wanted_modes = [f"{SYSFS}/{p}" for p, e in expected.items() if e["mode"]]
        shown_modes = livepatch.modes(self.guest, wanted_modes) if wanted_modes else {}
        problems = []
        for path, want in expected.items():
            name, _, rest = path.partition("/")
            patch = patches.get(name)
            if want["value"] == "absent":
                got = None if patch is None else (patch.get(rest) if rest else "present")
                if got is not None:
                    problems.append(f"{path}: expected absent, guest shows {got!r}")
                continue
            if patch is None:
                problems.append(f"{path}: patch {name} is not in sysfs")
                continue
            # An attribute of an existing patch that this kernel does not have: skip.
            if rest and "/" not in rest and rest not in patch.attrs:
                if not self._exists(f"{SYSFS}/{path}"):
                    raise ScenarioSkipped(f"this kernel ({self._release()}) has no "
                                          f"{SYSFS}/<patch>/{rest} attribute",
                                          f"need a kernel with {SYSFS}/<patch>/{rest}")
            if want["value"] is not None:
                got = patch.get(rest)
                if got != want["value"]:
                    problems.append(f"{path}: expected {want['value']!r}, guest shows "
                                    + ("no such attribute" if got is None else repr(got)))
            if want["mode"] is not None:
                got = shown_modes.get(f"{SYSFS}/{path}")
                if got != want["mode"]:
                    problems.append(f"{path}: expected mode {want['mode']}, guest shows "
                                    + (got or "no such file"))
        if problems:
            raise StepFailed("; ".join(problems))

    def _exists(self, path: str) -> bool:
        return self.guest.run(f"[ -e {shlex.quote(path)} ]").ok

    def _release(self) -> str:
        return self.image.kernel_release if self.image is not None else "guest kernel"

    def _do_log(self) -> None:
        pass  # the step's `log` expectation is checked over the scenario so far

    def _do_shadow(self, expected: Dict) -> None:
        added = self.counter.read().minus(self._shadow_start)
        problems = shadow.check(expected, added, f"after {self._last_step}")
        if problems:
            raise StepFailed("; ".join(problems) + self._start_note())

    def _start_note(self) -> str:
        start = self._shadow_start
        return (f" (counts exclude the {start.total} live when the scenario began)"
                if start and start.total else "")

    # -- checks ---------------------------------------------------------------------------

    def _check_log(self, exp: LogExpectation, records: List[kmsg.Record]) -> None:
        lines = [r.message for r in records]
        keep, ignore = re.compile(exp.filter), re.compile(DEFAULT_LOG_IGNORE)
        filtered = [l for l in lines if keep.search(l) and not ignore.search(l)]
        if exp.transcript is not None and filtered != exp.transcript:
            raise StepFailed("kernel log differs from the expected transcript:\n"
                             + _diff(exp.transcript, filtered))
        for text in exp.contains:
            if not any(text in l for l in lines):
                raise StepFailed(f"kernel log lacks {text!r}; it shows:\n" + "\n".join(lines[-20:]))
        for pattern in exp.regex:
            if not any(re.search(pattern, l) for l in lines):
                raise StepFailed(f"no kernel log line matches /{pattern}/; it shows:\n"
                                 + "\n".join(lines[-20:]))
        for text in exp.absent:
            hits = [l for l in lines if text in l]
            if hits:
                raise StepFailed(f"kernel log shows {text!r}, which must not appear: {hits[0]!r}")

    def _leak_check(self, baseline: Dict[int, int], outcome: Outcome) -> None:
        """After clean-up, no more shadow variables may be live than when the scenario began,
        plus its declared `shadow-baseline`. Leaks are then freed (if none of that id were
        live at the start), so they cannot carry into the next scenario."""
        if self.counter is None:
            return
        end = self.counter.read()
        over = shadow.leaks(self._shadow_start, end, baseline)
        if not over:
            return
        problems = []
        for shadow_id, extra in over.items():
            allowed = end.of(shadow_id) - extra   # at the start, plus the baseline
            objects = self.counter.objects(shadow_id, 3)
            problems.append(f"shadow id {shadow_id:#x}: {end.of(shadow_id)} live after the "
                            f"scenario and its clean-up, {allowed} expected"
                            + (f" (objects {', '.join(objects)}, ...)" if objects else ""))
            if self._shadow_start.of(shadow_id) == 0:
                self.counter.free_all(shadow_id)
                outcome.cleanup.append(f"freed {end.of(shadow_id)} leaked shadow variables "
                                       f"of id {shadow_id:#x}")
        leak = "shadow variable leak: " + "; ".join(problems)
        if outcome.status == Status.PASS:
            outcome.fail(leak)
        else:
            outcome.message += f"\nalso {leak}"

    def check_no_splat(self, begin: int) -> None:
        records = self.guest.kmsg_since(begin)
        found = splat.find(records)
        if found:
            raise StepFailed(f"kernel splat during the scenario ({found.kind}; declare "
                             f"`expect-splat: true` if it is expected):\n"
                             f"{splat.context(records, found)}")

    # -- guest bookkeeping -----------------------------------------------------------------

    def _push(self, module: str) -> str:
        """Copy the module to the guest once per boot; its path relative to WORKDIR."""
        if module not in self._pushed:
            self._pushed[module] = push_module(self.guest, self.catalog, module)
        return self._pushed[module]

    def _cleanup(self) -> List[livepatch.CleanupNote]:
        done = []
        jobs = self.guest.run("j=$(jobs -p); [ -n \"$j\" ] && kill $j 2>/dev/null; echo $j").stdout
        if jobs.strip():
            done.append(livepatch.CleanupNote(f"stopped background jobs {jobs.strip()}"))
        done += livepatch.cleanup(self.guest, STEP_TIMEOUT)
        done += livepatch.unload_modules(self.guest, list(reversed(self._loaded)))
        self._loaded = []
        # What a scenario may have changed for the guest as a whole: ftrace on, no tracer,
        # no function filters.
        self.guest.run(f"cd {WORKDIR}; [ -w {FTRACE_ENABLED} ] && echo 1 > {FTRACE_ENABLED}; "
                       f"[ -w {TRACING}/current_tracer ] && echo nop > {TRACING}/current_tracer "
                       f"&& echo > {TRACING}/set_ftrace_filter; [ -w {TRACING}/set_graph_function ] "
                       f"&& echo > {TRACING}/set_graph_function; true")
        return done


def _diff(expected: List[str], got: List[str]) -> str:
    import difflib
    return "\n".join(difflib.unified_diff(expected, got, "expected", "guest", lineterm="", n=2))
