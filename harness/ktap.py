"""KTAP, the test output format of the kernel's selftests (as kselftest's runner.sh prints it).

    TAP version 13
    1..2
    # selftests: livepatch: test-livepatch.sh
    # TEST: basic function loading ... ok
    ok 1 selftests: livepatch: test-livepatch.sh
    not ok 2 selftests: livepatch: test-state.sh # exit=1

A test's own output goes before its result line, each line prefixed with "# ".
Directives after the name: "# SKIP reason", "# TIMEOUT N seconds"; runner.sh marks other
failures "# exit=N".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, List

VERSION_LINE = "TAP version 13"   # as kselftest's runner.sh prints it
KTAP_V1 = "KTAP version 1"        # the kernel's KTAP specification, version 1


@dataclass
class TestLine:
    name: str
    ok: bool
    directive: str = ""                                   # e.g. "SKIP no ftrace", "exit=1"
    diagnostics: List[str] = field(default_factory=list)  # lines shown before the result


def diagnostic(line: str) -> str:
    return f"# {line}".rstrip()


def result_line(number: int, test: TestLine) -> str:
    line = f"{'ok' if test.ok else 'not ok'} {number} {test.name}"
    return f"{line} # {test.directive}" if test.directive else line


def render(tests: Iterable[TestLine], header: Iterable[str] = (),
           version: str = VERSION_LINE) -> str:
    """A KTAP document; ``header`` lines are diagnostics after the plan (e.g. the machine)."""
    tests = list(tests)
    lines = [version, f"1..{len(tests)}", *(diagnostic(h) for h in header)]
    for number, test in enumerate(tests, 1):
        lines.extend(diagnostic(d) for d in test.diagnostics)
        lines.append(result_line(number, test))
    return "\n".join(lines) + "\n"
