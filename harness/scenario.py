"""Scenario files (scenarios/**/*.yaml): schema, loading and validation.

Validation happens before anything boots and names file, line and field. The language is
documented in scenarios/README.md; each step kind is one class here with ``parse``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import arch as archmod
from .errors import ScenarioError
from .yamlsrc import Fields, Node, load

# Lines the kernel-log transcript keeps, as upstream's check_result filters dmesg.
DEFAULT_LOG_FILTER = r"livepatch:|test_klp|^klp_"
# Taint notices, and the transition's retry notes (a task was running when it was tried):
# whether those appear depends on timing, which differs under emulation.
DEFAULT_LOG_IGNORE = (r"tainting kernel|taints kernel|module verification failed|"
                      r"klp_try_switch_task: .* is running")


@dataclass
class LogExpectation:
    """What the kernel log must (not) show for the span a step covers."""
    transcript: Optional[List[str]] = None   # exact, ordered, after filtering
    contains: List[str] = field(default_factory=list)
    regex: List[str] = field(default_factory=list)
    absent: List[str] = field(default_factory=list)
    filter: str = DEFAULT_LOG_FILTER

    @classmethod
    def parse(cls, f: Fields, key: str) -> Optional["LogExpectation"]:
        if key not in f.node:
            return None
        value = f.node[key]
        if isinstance(value, list):
            return cls(transcript=f.strings(key))
        sub = f.sub(key)
        sub.only(["transcript", "contains", "regex", "absent", "filter"])
        exp = cls(transcript=sub.strings("transcript", None),
                  contains=sub.strings("contains", []), regex=sub.strings("regex", []),
                  absent=sub.strings("absent", []), filter=sub.get("filter", str, DEFAULT_LOG_FILTER))
        for pattern_key in ("regex",):
            for p in getattr(exp, pattern_key):
                _check_regex(sub, pattern_key, p)
        _check_regex(sub, "filter", exp.filter)
        return exp


def _check_regex(f: Fields, key: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        f.fail(key, f"invalid regular expression {pattern!r}: {e}")


@dataclass
class Step:
    kind: str
    line: int
    log: Optional[LogExpectation] = None
    args: Dict[str, Any] = field(default_factory=dict)

    def describe(self, path: Path) -> str:
        return f"{self.kind} ({path}:{self.line})"


def _module_arg(f: Fields, key: str) -> Dict[str, Any]:
    """`load: name` or `load: {module: name, params: {...}, wait: bool, expect-error: ...}`."""
    value = f.node[key]
    if isinstance(value, str):
        return {"module": value, "params": {}, "wait": True, "error": None}
    sub = f.sub(key)
    sub.only(["module", "params", "wait", "expect-error"])
    params = sub.get("params", dict, {})
    for name, v in params.items():
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            sub.fail("params", f"parameter '{name}' must be a string or integer, got {v!r}")
    return {"module": sub.get("module", str, required=True), "params": params,
            "wait": sub.get("wait", bool, True), "error": sub.get("expect-error", str, None)}


# Step kind -> (fields it accepts besides `log`, parser of its arguments)
def _parse_load(f: Fields, key: str) -> Dict[str, Any]:
    return _module_arg(f, key)


def _parse_name(f: Fields, key: str) -> Dict[str, Any]:
    return {"name": f.get(key, str), "wait": f.get("wait", bool, True)}


def _parse_run(f: Fields, key: str) -> Dict[str, Any]:
    return {"command": f.get(key, str), "status": f.get("status", int, 0),
            "stdout": f.get("stdout", str, None), "contains": f.strings("contains", [])}


def _parse_sysfs(f: Fields, key: str) -> Dict[str, Any]:
    sub = f.sub(key)
    expected = {}
    for path, value in sub.node.items():
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            sub.fail(path, f"expected a value (string or integer) or 'absent', got {value!r}")
        if len(str(path).split("/")) not in (1, 2, 3):
            sub.fail(path, "expected <patch>, <patch>/<attr> or <patch>/<object>/<attr>")
        expected[str(path)] = str(value)
    return {"expected": expected}


def _parse_wait(f: Fields, key: str) -> Dict[str, Any]:
    return {"name": f.get(key, str)}


STEP_KINDS = {
    # kind: (extra fields allowed, parser)
    "load": ((), _parse_load),
    "enable": (("wait",), _parse_name),
    "disable": (("wait",), _parse_name),
    "unload": ((), lambda f, k: {"name": f.get(k, str)}),
    "wait-transition": ((), _parse_wait),
    "run": (("status", "stdout", "contains"), _parse_run),
    "sysfs": ((), _parse_sysfs),
    "log": ((), lambda f, k: {}),
}


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    arches: List[str]
    expect_splat: bool
    steps: List[Step]

    def skip_reason(self, arch: str) -> Optional[str]:
        """Why this scenario does not run on ``arch``, or None if it does."""
        if arch not in self.arches:
            return f"scenario requires {', '.join(self.arches)}"
        return None

    @classmethod
    def load(cls, path: Path) -> "Scenario":
        path = Path(path)
        f = Fields(load(path), path)
        f.only(["description", "requires", "steps", "expect-splat"])
        req = f.sub("requires", Node())
        req.only(["arches"])
        arches = req.strings("arches", list(archmod.NAMES))
        for a in arches:
            if a not in archmod.NAMES:
                req.fail("arches", f"unknown architecture '{a}'; known: {', '.join(archmod.NAMES)}")
        raw_steps = f.get("steps", list, required=True)
        if not raw_steps:
            f.fail("steps", "a scenario needs at least one step")
        lines = getattr(raw_steps, "item_lines", [f.line("steps")] * len(raw_steps))
        steps = [cls._step(path, item, lines[i], i) for i, item in enumerate(raw_steps)]
        return cls(path=path, name=path.stem, description=f.get("description", str, ""),
                   arches=arches, expect_splat=f.get("expect-splat", bool, False), steps=steps)

    @staticmethod
    def _step(path: Path, node: Any, line: int, index: int) -> Step:
        where = f"steps[{index}]"
        if not isinstance(node, dict):
            raise ScenarioError(path, line, where, f"expected a mapping with one of "
                                f"{', '.join(STEP_KINDS)}, got {node!r}")
        f = Fields(node, path, where)
        kinds = [k for k in node if k in STEP_KINDS and k != "log"] or \
                [k for k in node if k == "log"]
        if len(kinds) != 1:
            f.fail(None, f"a step has exactly one kind ({', '.join(STEP_KINDS)}); "
                         f"found: {', '.join(map(str, node)) or 'nothing'}")
        kind = kinds[0]
        extra, parser = STEP_KINDS[kind]
        f.only([kind, "log", *extra])
        return Step(kind=kind, line=f.line(kind) or line, log=LogExpectation.parse(f, "log"),
                    args=parser(f, kind))


def discover(paths: List[Path]) -> List[Path]:
    """Scenario files under ``paths`` (files or directories); module sources are skipped."""
    found: List[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found.extend(sorted(x for x in p.rglob("*.yaml") if "modules" not in x.parts))
        else:
            found.append(p)
    return found
