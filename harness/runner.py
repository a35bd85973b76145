"""Running a scenario against a booted guest; usable with or without pytest.

Each step runs, then its own checks; the kernel log of the whole scenario is checked for
splats at the end; clean-up (disable patches, unload modules) always runs, so a failure
does not cascade into the next scenario on the same guest.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from . import kmsg, livepatch
from .errors import BootError, HarnessError, WaitTimeout
from .guest import Guest
from .modules import ModuleCatalog
from .scenario import DEFAULT_LOG_IGNORE, LogExpectation, Scenario, Step

TRANSITION_TIMEOUT = 30.0   # seconds at x86_64 TCG speed; scaled per machine
SPLAT = re.compile(r"^(WARNING:|BUG:|kernel BUG|Oops|general protection fault|Call Trace:|"
                   r"UBSAN:|KASAN:|(possible|inconsistent) .*lock|INFO: task .* blocked)")
DYNDBG = "/sys/kernel/debug/dynamic_debug/control"


class StepFailed(AssertionError):
    """A step's expectation did not hold; the message names the step and the difference."""


@dataclass
class Outcome:
    scenario: str
    arch: str
    status: str                  # "pass", "fail", "skip", "error"
    message: str = ""
    seconds: float = 0.0
    kmsg: str = ""
    cleanup: List[str] = field(default_factory=list)


def prepare(guest: Guest) -> None:
    """Once per boot: make livepatch's debug messages visible, as upstream's tests do."""
    guest.run(f"[ -w {DYNDBG} ] && echo 'file kernel/livepatch/* +p' > {DYNDBG}; true")


class Runner:
    def __init__(self, guest: Guest, catalog: ModuleCatalog, arch: str):
        self.guest, self.catalog, self.arch = guest, catalog, arch
        self._loaded: List[str] = []
        self._pushed: Dict[str, str] = {}

    def run(self, scenario: Scenario) -> Outcome:
        start = time.monotonic()
        reason = scenario.skip_reason(self.arch)
        if reason:
            return Outcome(scenario.name, self.arch, "skip", reason)
        self._loaded = []
        begin = self.guest.kmsg_cursor()
        outcome = Outcome(scenario.name, self.arch, "pass")
        try:
            for index, step in enumerate(scenario.steps):
                try:
                    self._step(step, begin)
                except (StepFailed, WaitTimeout, HarnessError) as e:
                    if isinstance(e, BootError):  # panic or QEMU gone: not a step's fault
                        raise
                    raise StepFailed(f"step {index + 1}, {step.describe(scenario.path)}: {e}") \
                        from None
            if not scenario.expect_splat:
                self._no_splat(begin)
        except StepFailed as e:
            outcome.status, outcome.message = "fail", str(e)
        finally:
            if not (self.guest.machine.console and self.guest.machine.console.panic):
                try:
                    outcome.kmsg = kmsg.text(self.guest.kmsg_since(begin))
                    outcome.cleanup = self._cleanup()
                except HarnessError:
                    pass
            outcome.seconds = time.monotonic() - start
        return outcome

    # -- steps ----------------------------------------------------------------------------

    def _step(self, step: Step, scenario_begin: int) -> None:
        begin = self.guest.kmsg_cursor() if step.log and step.kind != "log" else scenario_begin
        getattr(self, "_do_" + step.kind.replace("-", "_"))(**step.args)
        if step.log:
            self._check_log(step.log, self.guest.kmsg_since(begin))

    def _timeout(self) -> float:
        return TRANSITION_TIMEOUT

    def _do_load(self, module: str, params, wait: bool, error: Optional[str]) -> None:
        remote = self._push(module)
        result = livepatch.load(self.guest, remote, params, check=False)
        if error is not None:
            if result.ok:
                self._loaded.append(module)
                raise StepFailed(f"loading {module} succeeded, but it was expected to fail "
                                 f"with '{error}'")
            if error not in result.stderr:
                raise StepFailed(f"loading {module} failed as expected, but with "
                                 f"{result.stderr.strip()!r}, not {error!r}")
            return
        if not result.ok:
            raise StepFailed(f"loading {module} failed: {result.stderr.strip()}")
        self._loaded.append(module)
        if wait and module in livepatch.read_all(self.guest):
            livepatch.wait_transition(self.guest, module, self._timeout())

    def _do_enable(self, name: str, wait: bool) -> None:
        self._set(name, True, wait)

    def _do_disable(self, name: str, wait: bool) -> None:
        self._set(name, False, wait)

    def _set(self, name: str, enabled: bool, wait: bool) -> None:
        result = livepatch.set_enabled(self.guest, name, enabled, check=False)
        if not result.ok:
            raise StepFailed(f"writing {int(enabled)} to {name}/enabled failed: "
                             f"{result.stderr.strip()}")
        if wait:
            livepatch.wait_transition(self.guest, name, self._timeout())

    def _do_unload(self, name: str) -> None:
        result = livepatch.unload(self.guest, name, check=False)
        if not result.ok:
            raise StepFailed(f"rmmod {name} failed: {result.stderr.strip()}")
        if name in self._loaded:
            self._loaded.remove(name)

    def _do_wait_transition(self, name: str) -> None:
        livepatch.wait_transition(self.guest, name, self._timeout())

    def _do_run(self, command: str, status: int, stdout: Optional[str], contains: List[str]) -> None:
        result = self.guest.run(command)
        if result.status != status:
            raise StepFailed(f"'{command}' exited {result.status}, expected {status}; "
                             f"stderr: {result.stderr.strip()!r}")
        if stdout is not None and result.stdout.rstrip("\n") != stdout.rstrip("\n"):
            raise StepFailed(f"'{command}' printed {result.stdout!r}, expected {stdout!r}")
        for text in contains:
            if text not in result.stdout:
                raise StepFailed(f"'{command}' output lacks {text!r}: {result.stdout!r}")

    def _do_sysfs(self, expected: Dict[str, str]) -> None:
        patches = livepatch.read_all(self.guest)
        problems = []
        for path, want in expected.items():
            name, _, rest = path.partition("/")
            patch = patches.get(name)
            if want == "absent":
                got = None if patch is None else (patch.get(rest) if rest else "present")
                if got is not None:
                    problems.append(f"{path}: expected absent, guest shows {got!r}")
                continue
            if patch is None:
                problems.append(f"{path}: expected {want!r}, but patch {name} is not in sysfs")
                continue
            got = patch.get(rest)
            if got != want:
                problems.append(f"{path}: expected {want!r}, guest shows "
                                + ("no such attribute" if got is None else repr(got)))
        if problems:
            raise StepFailed("; ".join(problems))

    def _do_log(self) -> None:
        pass  # the step's `log` expectation is checked over the scenario so far

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

    def _no_splat(self, begin: int) -> None:
        records = self.guest.kmsg_since(begin)
        for i, r in enumerate(records):
            if SPLAT.search(r.message):
                context = "\n".join(x.message for x in records[i:i + 15])
                raise StepFailed(f"kernel splat during the scenario (declare `expect-splat: true` "
                                 f"if it is expected):\n{context}")

    # -- guest bookkeeping -----------------------------------------------------------------

    def _push(self, module: str) -> str:
        if module not in self._pushed:
            remote = f"/tmp/{module}.ko"
            self.guest.push(self.catalog.path(module), remote)
            self._pushed[module] = remote
        return self._pushed[module]

    def _cleanup(self) -> List[str]:
        done = livepatch.cleanup(self.guest, self._timeout())
        loaded = set(livepatch.loaded_modules(self.guest))
        for module in reversed(self._loaded):
            if module in loaded:
                result = livepatch.unload(self.guest, module, check=False)
                done.append(f"unloaded {module}" if result.ok
                            else f"could not unload {module}: {result.stderr.strip()}")
        self._loaded = []
        return done


def _diff(expected: List[str], got: List[str]) -> str:
    import difflib
    return "\n".join(difflib.unified_diff(expected, got, "expected", "guest", lineterm="", n=2))
