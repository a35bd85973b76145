"""Livepatch tests written in Python: a scenario's steps as method calls, with the runner's
own checks at the end (kernel splats, clean-up, the shadow variable leak check).

    with LiveTest(session, "x86_64", "my-test") as t:
        t.load("klp_cmdline")
        assert t.run("cat /proc/cmdline").stdout == "klp_cmdline: patched by klp-harness\\n"
        t.sysfs({"klp_cmdline/enabled": 1, "klp_cmdline/transition": 0})
        t.disable("klp_cmdline")
        t.unload("klp_cmdline")
        t.log({"contains": ["livepatch: 'klp_cmdline': unpatching complete"]})

Each call is parsed as the scenario step of the same name (the same validation, the same
handler in runner.Runner), and a failure is a runner.StepFailed (an AssertionError) that
names the step and the line of the test that called it. Leaving the block checks the
kernel log for splats, cleans up (patches disabled, modules unloaded) and checks for leaked
shadow variables, as after every scenario; a failure there fails the test too, and the
artifacts of a failed test are kept as a scenario's are. The pytest fixture
``klp_livetest`` (pytest_plugin) makes these for the arch of the test.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import klpbuild, kmsg
from .guest import Result
from .outcome import Outcome, Status
from .runner import Runner, StepFailed
from .errors import ScenarioError
from .scenario import Scenario

SCENARIO_STEP_PARSER = Scenario._step    # one parser for YAML steps and these calls


class LiveTest:
    def __init__(self, session, arch: str, name: str, expect_splat: bool = False,
                 shadow_baseline: Optional[Dict[int, int]] = None,
                 livepatches: Optional[Dict[str, Any]] = None):
        self.session, self.arch, self.name = session, arch, name
        self.expect_splat = expect_splat
        self.shadow_baseline = shadow_baseline or {}
        # Livepatches built from source patches ({name: patch or [patches]}), built now:
        # klpbuild.Unsupported on an image klp-build cannot serve, Refused with its reason.
        self.catalog = None
        if livepatches:
            self.catalog = session.catalog_with(arch, {
                name: klpbuild.LivepatchSource(name, tuple(
                    Path(p) for p in ([v] if isinstance(v, (str, Path)) else v)))
                for name, v in livepatches.items()})
        self.runner: Optional[Runner] = None
        self.outcome = Outcome(name, arch, Status.PASS)
        self._steps = 0

    # -- the block ------------------------------------------------------------------------

    def __enter__(self) -> "LiveTest":
        self._machine = self.session.machine(self.arch)   # its console is the artifact
        self.runner = self.session.runner(self.arch, self.catalog)
        self._first_command = len(self.runner.guest.history)
        self._begin = self.runner.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        failure: Optional[str] = str(exc) if exc is not None else None
        if failure is None and not self.expect_splat:
            try:
                self.runner.check_no_splat(self._begin)
            except StepFailed as e:
                failure = str(e)
        if failure is not None:
            self.outcome.fail(failure)
        self.runner.end(self.outcome, self._begin, self.shadow_baseline)
        # This block's machine, not session.machine(): after a panic that would boot a
        # fresh guest and keep its console instead.
        self.session.finish(self.outcome, machine=self._machine,
                            first_command=self._first_command)
        if self.outcome.status == Status.FAIL and exc is None:
            # a leak or a splat: the test's own failure would come first
            raise StepFailed(self.outcome.message)

    # -- steps ----------------------------------------------------------------------------

    def step(self, spec: Dict[str, Any]) -> None:
        """Any scenario step, written as in YAML: ``t.step({"wait-for": {...}})``."""
        caller = _caller()
        try:
            step = SCENARIO_STEP_PARSER(Path(caller.filename), spec, caller.lineno, self._steps)
        except ScenarioError as e:   # name the test's line, not only the file
            raise ScenarioError(caller.filename, caller.lineno, e.field, e.message) from None
        self.runner.run_step(step, self._steps, Path(caller.filename), self._begin)
        self._steps += 1

    def load(self, module: str, wait: bool = True, expect_error: Optional[str] = None,
             **params) -> None:
        spec: Dict[str, Any] = {"module": module, "params": params, "wait": wait}
        if expect_error is not None:
            spec["expect-error"] = expect_error
        self.step({"load": spec})

    def enable(self, patch: str, wait: bool = True) -> None:
        self.step({"enable": patch, "wait": wait})

    def disable(self, patch: str, wait: bool = True) -> None:
        self.step({"disable": patch, "wait": wait})

    def force(self, patch: str) -> None:
        self.step({"force": patch})

    def unload(self, module: str) -> None:
        self.step({"unload": module})

    def wait_transition(self, patch: str) -> None:
        self.step({"wait-transition": patch})

    def sysfs(self, expected: Dict[str, Any]) -> None:
        """Values (and modes) under /sys/kernel/livepatch, as a `sysfs` step."""
        self.step({"sysfs": expected})

    def shadow(self, expected: Dict[Any, Any]) -> None:
        """Live shadow variables added since the block began, as a `shadow` step."""
        self.step({"shadow": expected})

    def log(self, expected: Any) -> None:
        """The kernel log since the block began, as a `log` step (a transcript list, or
        {contains, regex, absent, transcript, filter})."""
        self.step({"log": expected})

    # -- looking without asserting ----------------------------------------------------------

    def run(self, command: str, check: bool = False) -> Result:
        """A guest command (status, stdout, stderr) for the test's own asserts."""
        return self.runner.guest.run(command, check=check)

    def kernel_log(self) -> List[str]:
        """The kernel log since the block began, one message a line."""
        return kmsg.text(self.runner.guest.kmsg_since(self._begin)).splitlines()


def _caller() -> inspect.FrameInfo:
    """The frame of the test code that called a step method (outside this module)."""
    here = Path(__file__).resolve()
    for frame in inspect.stack()[1:]:
        if Path(frame.filename).resolve() != here:
            return frame
    raise RuntimeError("no caller outside livetest")
