"""A scenario's result on one arch, as data: its status, what it saw, and the rules that turn
a raw pass or failure into the verdict (known failures, negative controls).

Status and Cause are string-valued enums, so JSON, JUnit, the HTML report and every
comparison with "pass" keep their values. An Outcome crosses pytest-xdist's process
boundary as report properties (strings): ``to_properties``/``from_properties`` write and read
every field but the big ones kept in the artifacts instead, so a new field travels without
a line more here.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from .skips import Skip

if TYPE_CHECKING:
    from .scenario import Scenario


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    XFAIL = "xfail"     # a known kernel failure, or a negative control that was caught

    @property
    def failed(self) -> bool:
        """Failed, expectedly or not: the artifacts are kept."""
        return self in (Status.FAIL, Status.XFAIL)


class Cause(StrEnum):
    """What a failure came from, where a caller decides by it (bisect's verdict; KCIDB's
    ERROR, a test that could not judge the kernel)."""
    NONE = ""
    LIVEPATCH_BUILD = "livepatch build"   # klp-build made no livepatch of the patches
    BOOT = "boot"                         # the arch's guest did not boot for it
    GUEST = "guest"                       # the guest stopped answering, or its QEMU died

    @property
    def infrastructure(self) -> bool:
        """A build's or the guest's failure: the test did not get to judge the kernel."""
        return self != Cause.NONE


class Expected(StrEnum):
    """Why an expected failure (xfail) was expected."""
    NONE = ""
    KNOWN = "known failure"           # the scenario declares it a known kernel failure
    CAUGHT = "negative control"       # a negative control, caught as it must be


_LOCAL = {"local": True}   # kept in the artifacts (kmsg.txt, ...), too big for JUnit


@dataclass
class Outcome:
    scenario: str
    arch: str
    status: Status
    message: str = ""
    seconds: float = 0.0
    kmsg: str = field(default="", metadata=_LOCAL)
    cleanup: List[str] = field(default_factory=list)
    sysfs: str = field(default="", metadata=_LOCAL)   # livepatch sysfs at the failed step
    kernel: str = ""             # the guest kernel's release (empty if no image was made)
    interrupted: bool = False    # Ctrl-C stopped it; its guest's shell may still be busy
    steps: List[str] = field(default_factory=list, metadata=_LOCAL)   # "step N, kind: 1.2s"
    cause: Cause = Cause.NONE
    artifacts: str = ""          # where a failure's artifacts were kept
    unclean: str = ""            # what the clean-up could not undo: the guest is replaced
    skip: Optional[Skip] = None  # a skip's cause (its reason is the message)
    run: int = 0                 # which of --repeat's runs of its scenario x arch (0: one run)
    expected: Expected = Expected.NONE   # an xfail's kind

    def __post_init__(self):
        self.status, self.cause = Status(self.status), Cause(self.cause)
        self.expected = Expected(self.expected)

    @classmethod
    def skipped(cls, scenario: str, arch: str, skip: Skip, **kw) -> "Outcome":
        return cls(scenario, arch, Status.SKIP, skip.reason, skip=skip, **kw)

    @property
    def headline(self) -> str:
        """The message's first line (what a one-line report shows), or ""."""
        return (self.message.splitlines() or [""])[0]

    def fail(self, message: str) -> "Outcome":
        self.status, self.message = Status.FAIL, message
        return self

    def to_properties(self, image: str) -> List[Tuple[str, str]]:
        """As pytest report properties (klp_<field>): under xdist they are what reaches the
        controller, and they are in the JUnit XML."""
        props = [("klp_image", image)]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("local") or f.name == "skip":
                continue
            if isinstance(value, bool):
                value = "1" if value else ""
            elif isinstance(value, float):
                value = f"{value:.1f}"
            elif isinstance(value, list):
                value = json.dumps(value)
            props.append((f"klp_{f.name}", str(value)))
        if self.skip is not None:   # its cause, for the summary's skips by cause
            props += self.skip.properties()
        return props

    @classmethod
    def from_properties(cls, props: Dict[str, str]) -> Optional["Outcome"]:
        """The outcome to_properties wrote; None if the report is not a scenario's."""
        if "klp_status" not in props:
            return None
        values = {}
        for f in dataclasses.fields(cls):
            text = props.get(f"klp_{f.name}")
            if text is None or f.metadata.get("local") or f.name == "skip":
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            if isinstance(default, bool):
                values[f.name] = text == "1"
            elif isinstance(default, float):
                values[f.name] = float(text)
            elif isinstance(default, int):
                values[f.name] = int(text)
            elif isinstance(default, list):
                values[f.name] = json.loads(text)
            else:
                values[f.name] = text
        outcome = cls(**values)
        outcome.skip = Skip.from_properties(props, outcome.message)
        return outcome


def verdict(scenario: "Scenario", outcome: Outcome) -> Outcome:
    """The verdict on a scenario's raw outcome: its known failures, then its negative
    control."""
    return expected_failure(scenario, known_failure(scenario, outcome))


def known_failure(scenario: "Scenario", outcome: Outcome) -> Outcome:
    """A failure the scenario declares known on this arch is 'xfail' (still reported, with
    the step that failed); a pass there is a 'fail': the declaration is out of date. An
    intermittent one (a race the kernel loses in some runs) may pass. A declaration with
    a `match` pattern excuses only failures whose message matches it."""
    reason = scenario.known_failures.get(outcome.arch)
    if reason is None:
        return outcome
    if outcome.status == Status.FAIL and scenario.known_match is not None \
            and not re.search(scenario.known_match, outcome.message):
        outcome.message += (f"\n(not the known failure declared on {outcome.arch}: the "
                            f"message does not match {scenario.known_match!r})")
    elif outcome.status == Status.FAIL:
        outcome.status, outcome.expected = Status.XFAIL, Expected.KNOWN
        outcome.message = f"known failure: {reason}\n{outcome.message}"
    elif outcome.status == Status.PASS and scenario.known_intermittent:
        outcome.message = f"passed this time (a known intermittent failure: {reason})"
    elif outcome.status == Status.PASS:
        outcome.fail(f"passed, but the scenario declares a known failure on {outcome.arch} "
                     f"({reason}); remove the declaration if it is fixed")
    return outcome


def expected_failure(scenario: "Scenario", outcome: Outcome) -> Outcome:
    """A negative control (`expect-failure: pattern`) must fail, with a message matching
    the pattern: then it is 'xfail'. A pass, or a failure of another kind, is a 'fail'."""
    pattern = scenario.expect_failure
    if pattern is None or outcome.status == Status.SKIP:
        return outcome
    if outcome.status == Status.PASS:
        outcome.fail(f"negative control not caught: the scenario passed, but it must fail "
                     f"with a message matching /{pattern}/")
    elif outcome.status == Status.FAIL and re.search(pattern, outcome.message):
        outcome.status, outcome.expected = Status.XFAIL, Expected.CAUGHT
        outcome.message = f"negative control caught: {outcome.message}"
    elif outcome.status == Status.FAIL:
        outcome.message = (f"negative control failed, but not with a message matching "
                           f"/{pattern}/:\n{outcome.message}")
    return outcome
