"""Scenario files (scenarios/**/*.yaml): schema, loading and validation.

Validation happens before anything boots and names file, line and field: unknown keys,
wrong types, unknown modules, variables used before a step saves them, and steps that act
on a module no earlier step loaded. The language is documented in scenarios/README.md;
each step kind is one parser here.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

from . import arch as archmod
from .errors import HarnessError, ScenarioError, ScenarioErrors
from .klpbuild import NAME as LIVEPATCH_NAME, LivepatchSource, check_patches
from .kernelsource import version_tuple
from .paths import in_module_sources
from .shadow import COUNT_EXPECTATION
from .yamlsrc import Fields, Node, load

# Lines the kernel-log transcript keeps, as upstream's check_result filters dmesg
# (`grep -e 'livepatch:' -e 'test_klp'`), plus the runner's "% command" lines and the
# messages of our own modules (klp_*).
DEFAULT_LOG_FILTER = r"livepatch:|test_klp|^% |^klp_"
# Taint notices (upstream drops them too), and the transition's notes whose appearance
# depends on timing under emulation: a retry's (a task was running when it was tried), and
# the notice of fake signals, sent when a transition is still unfinished after 15 tries (a
# busy host makes a transition that a scenario holds while it loads and unloads last that
# long). `contains` and `absent` still see them.
DEFAULT_LOG_IGNORE = (r"tainting kernel|taints kernel|module verification failed|"
                      r"klp_try_switch_task: .* is running|livepatch: signaling remaining tasks$")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# kmod's insmod words some errors its own way (libkmod mod_strerror); others are strerror.
KMOD_ERRORS = {errno.ENOEXEC: "Invalid module format",
               errno.ENOENT: "Unknown symbol in module, or unknown parameter (see dmesg)",
               errno.ESRCH: "Module has wrong symbol version",
               errno.EINVAL: "Invalid parameters"}


# Every message insmod can print for a failed load: kmod's own wordings and strerror's.
LOAD_ERROR_TEXTS = set(KMOD_ERRORS.values()) | {os.strerror(c) for c in errno.errorcode}


def load_error_text(expected: str) -> str:
    """What kmod prints for an errno name (ENODEV -> 'No such device'); other text as is."""
    code = getattr(errno, expected, None) if re.fullmatch(r"E[A-Z0-9]+", expected) else None
    if code is None:
        return expected
    return KMOD_ERRORS.get(code, os.strerror(code))


@dataclass
class LogExpectation:
    """What the kernel log must (not) show for the span a step covers."""
    transcript: Optional[List[str]] = None   # exact, ordered, after filtering
    contains: List[str] = field(default_factory=list)
    regex: List[str] = field(default_factory=list)
    absent: List[str] = field(default_factory=list)
    filter: str = DEFAULT_LOG_FILTER
    since: str = "step"                      # "step" or "scenario"

    @classmethod
    def parse(cls, f: Fields, key: str, default_since: str) -> Optional["LogExpectation"]:
        if key not in f.node:
            return None
        value = f.node[key]
        if isinstance(value, list):
            return cls(transcript=f.strings(key), since=default_since)
        sub = f.sub(key)
        sub.only(["transcript", "contains", "regex", "absent", "filter", "since"])
        exp = cls(transcript=sub.strings("transcript", None),
                  contains=sub.strings("contains", []), regex=sub.strings("regex", []),
                  absent=sub.strings("absent", []),
                  filter=sub.get("filter", str, DEFAULT_LOG_FILTER),
                  since=sub.get("since", str, default_since))
        if exp.since not in ("step", "scenario"):
            sub.fail("since", f"expected 'step' or 'scenario', got {exp.since!r}")
        for p in exp.regex:
            _check_regex(sub, "regex", p)
        _check_regex(sub, "filter", exp.filter)
        return exp

    def with_variables(self, variables: Dict[str, str]) -> "LogExpectation":
        return dataclasses.replace(
            self, transcript=substitute(self.transcript, variables),
            contains=substitute(self.contains, variables),
            regex=[VARIABLE.sub(lambda m: re.escape(variables[m.group(1)]), p) for p in self.regex],
            absent=substitute(self.absent, variables))

    def strings(self) -> List[str]:
        return [*(self.transcript or []), *self.contains, *self.regex, *self.absent]


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
    timeout: Optional[float] = None

    def describe(self, path: Path) -> str:
        return f"{self.kind} ({path}:{self.line})"

    def summary(self) -> str:
        """'disable klp_x', 'load klp_y': the step as a short phrase."""
        target = next((self.args[k] for k in ("module", "name", "command", "path")
                       if isinstance(self.args.get(k), str)), "")
        target = target if len(target) <= 40 else target[:37] + "..."
        return f"{self.kind} {target}".strip()


def _scalar(f: Fields, key: str, value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        f.fail(key, f"expected a string or integer, got {value!r}")
    return str(value)


# -- step parsers: (Fields of the step, key of the kind) -> args ---------------------------

def _parse_load(f: Fields, key: str) -> Dict[str, Any]:
    """`load: name` or `load: {module, params, wait, expect-error}`."""
    if isinstance(f.node[key], str):
        return {"module": f.node[key], "params": {}, "wait": True, "error": None}
    sub = f.sub(key)
    sub.only(["module", "params", "wait", "expect-error"])
    params = sub.sub("params", Node())
    return {"module": sub.get("module", str, required=True),
            "params": {str(k): _scalar(params, k, v) for k, v in params.node.items()},
            "wait": sub.get("wait", bool, True),
            "error": _expected_load_error(sub)}


def _expected_load_error(f: Fields) -> Optional[str]:
    """An errno name (ENODEV) or the text kmod prints for one: a typo (EEXSIT) would
    otherwise wait for a message no kernel gives."""
    expected = f.get("expect-error", str, None)
    if expected is None or expected in LOAD_ERROR_TEXTS or (
            hasattr(errno, expected) and re.fullmatch(r"E[A-Z0-9]+", expected)):
        return expected
    f.fail("expect-error", f"{expected!r} is neither an errno name (EBUSY, ENODEV, ...) nor "
                           "a message kmod's insmod prints for one (\"Device or resource "
                           "busy\")")


def _parse_name(f: Fields, key: str) -> Dict[str, Any]:
    return {"name": f.get(key, str), "wait": f.get("wait", bool, True)}


def _parse_target(f: Fields, key: str) -> Dict[str, Any]:
    return {"name": f.get(key, str)}


def _parse_wait_for(f: Fields, key: str) -> Dict[str, Any]:
    sub = f.sub(key)
    sub.only(["path", "value"])
    return {"path": sub.get("path", str, required=True),
            "value": _scalar(sub, "value", sub.get("value", (str, int), required=True))}


def _parse_param(f: Fields, key: str) -> Dict[str, Any]:
    sub = f.sub(key)
    sub.only(["module", "name", "value"])
    return {"module": sub.get("module", str, required=True),
            "name": sub.get("name", str, required=True),
            "value": _scalar(sub, "value", sub.get("value", (str, int), required=True))}


def _parse_run(f: Fields, key: str) -> Dict[str, Any]:
    status = f.get("status", (int, str), 0)
    if isinstance(status, str) and status != "any":
        f.fail("status", f"expected an exit status or 'any', got {status!r}")
    save = f.get("save", str, None)
    if save is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", save):
        f.fail("save", f"a variable name is letters, digits and _, got {save!r}")
    return {"command": f.get(key, str), "status": status, "stdout": f.get("stdout", str, None),
            "contains": f.strings("contains", []), "absent": f.strings("absent", []),
            "stderr_contains": f.strings("stderr-contains", []), "save": save}


def _parse_sysfs(f: Fields, key: str) -> Dict[str, Any]:
    """{path: value | absent | {value, mode}} with paths under /sys/kernel/livepatch."""
    sub = f.sub(key)
    expected: Dict[str, Dict[str, Optional[str]]] = {}
    for path, value in sub.node.items():
        if len(str(path).split("/")) not in (1, 2, 3):
            sub.fail(path, "expected <patch>, <patch>/<attr> or <patch>/<object>/<attr>")
        if isinstance(value, dict):
            entry = Fields(value, f.path, sub._name(path))
            entry.only(["value", "mode"])
            mode = entry.get("mode", str, None)
            if mode is not None and not re.fullmatch(r"[-dl][-rwxsStT]{9}", mode):
                entry.fail("mode", f"expected a mode as ls shows it (-rw-r--r--), got {mode!r}")
            raw = entry.get("value", (str, int), None)
            expected[str(path)] = {"value": None if raw is None else _scalar(entry, "value", raw),
                                   "mode": mode}
            if raw is None and mode is None:
                entry.fail(None, "give 'value', 'mode' or both")
        else:
            expected[str(path)] = {"value": _scalar(sub, path, value), "mode": None}
    if not expected:
        f.fail(key, "expected at least one sysfs path")
    return {"expected": expected}


def _shadow_id(f: Fields, key: Any) -> Any:
    """'total', or a shadow variable id: an integer (0x5e551) or a string of one."""
    if key == "total":
        return key
    if isinstance(key, int) and not isinstance(key, bool) and key >= 0:
        return key
    if isinstance(key, str) and re.fullmatch(r"0x[0-9a-fA-F]+|[0-9]+", key):
        return int(key, 0)
    f.fail(key, f"expected 'total' or a shadow variable id (0x1234), got {key!r}")


def _parse_shadow_counts(f: Fields) -> Dict[Any, str]:
    """{total | id: N | "<op> N"} -> {"total" | int id: "N" | "<op> N"}."""
    counts: Dict[Any, str] = {}
    for key, value in f.node.items():
        want = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(want, str) or not COUNT_EXPECTATION.match(want.strip()):
            f.fail(key, f"expected a count (3) or a comparison ('>= 1', '< 5'), got {value!r}")
        counts[_shadow_id(f, key)] = want.strip()
    if not counts:
        f.fail(None, "expected at least one count: total or a shadow variable id")
    return counts


def _parse_shadow(f: Fields, key: str) -> Dict[str, Any]:
    """`shadow: {total: 0, 0x5e551: 20}`: live shadow variables the scenario has added."""
    return {"expected": _parse_shadow_counts(f.sub(key))}


# kind -> (fields it accepts besides `log` and `timeout`, parser, the module it acts on)
StepKind = Tuple[Tuple[str, ...], Callable[[Fields, str], Dict[str, Any]], Optional[str]]
STEP_KINDS: Dict[str, StepKind] = {
    "load": ((), _parse_load, None),
    "enable": (("wait",), _parse_name, "name"),
    "disable": (("wait",), _parse_name, "name"),
    "force": ((), _parse_target, "name"),
    "unload": ((), _parse_target, "name"),
    "wait-transition": ((), _parse_target, "name"),
    "wait-for": ((), _parse_wait_for, None),
    "param": ((), _parse_param, "module"),
    "run": (("status", "stdout", "contains", "absent", "stderr-contains", "save"), _parse_run,
            None),
    "sysfs": ((), _parse_sysfs, None),
    "shadow": ((), _parse_shadow, None),
    "log": ((), lambda f, k: {}, None),
}


@dataclass
class Requirements:
    arches: List[str]
    kernel: Optional[str] = None          # minimum version, as written
    config: List[str] = field(default_factory=list)
    shadow_counter: bool = False          # needs the guest's shadow variable counter
    # A guest command that must succeed for the scenario to run, and what its failure
    # means (the skip's reason): a kernel behaviour no version or config symbol tells.
    guest_check: Optional[Tuple[str, str]] = None


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    requires: Requirements
    expect_splat: bool
    steps: List[Step]
    known_failures: Dict[str, str] = field(default_factory=dict)   # arch -> why it fails
    known_intermittent: bool = False   # a race the kernel loses in some runs: a pass is no news
    known_match: Optional[str] = None  # the known failure's signature: other failures fail
    source: Optional[Path] = None     # the file the steps come from (differs with `extends`)
    expect_failure: Optional[str] = None   # a negative control: it must fail, matching this
    shadow_baseline: Dict[int, int] = field(default_factory=dict)  # id -> may be left live
    # The upstream selftest case this scenario is: (script, the name its start_test gives).
    upstream: Optional[Tuple[str, str]] = None
    # Livepatch modules klp-build makes of source patches, by the name the steps use.
    livepatches: Dict[str, LivepatchSource] = field(default_factory=dict)

    def __post_init__(self):
        if self.source is None:
            self.source = self.path

    @property
    def counts_shadow(self) -> bool:
        """Needs the shadow counter: it has `shadow` steps, or says so in `requires`."""
        return self.requires.shadow_counter or any(s.kind == "shadow" for s in self.steps)

    @property
    def id(self) -> str:
        """The file's path without .yaml: under scenarios/ from there (names repeat across
        topics), elsewhere from the current directory (or whole, outside it), so that two
        files of one name never share a summary row or an artifacts dir."""
        path = self.path.resolve().with_suffix("")
        parts = path.parts
        if "scenarios" in parts:
            return "/".join(parts[len(parts) - parts[::-1].index("scenarios"):])
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    @property
    def arches(self) -> List[str]:
        return self.requires.arches

    @property
    def modules(self) -> List[str]:
        """Every module a load step names (what must be built and pushed)."""
        return sorted({s.args["module"] for s in self.steps if s.kind == "load"})

    @classmethod
    def load(cls, path: Path, modules: Optional[Collection[str]] = None) -> "Scenario":
        """Parse and validate; with ``modules`` (the names that exist), unknown ones are errors.

        A scenario may `extends: other.yaml`: it runs the other's steps with its own
        `vars`, and may set any top-level field but `steps` (a negative control is the
        scenario it breaks, with a wrong module and `expect-failure`)."""
        path = Path(path)
        own, base = cls._files(path)

        def field(key: str) -> Fields:   # the file that sets a top-level field
            return own if key in own.node else base

        variables = cls._merged_variables(own, base)
        requires = cls._requirements(field("requires"))
        known_arches, reason, intermittent, known_match = \
            cls._known_failure(field("known-failure"))
        expect_failure = field("expect-failure").get("expect-failure", str, None)
        if expect_failure is not None:
            _check_regex(field("expect-failure"), "expect-failure", expect_failure)
        baseline = cls._baseline(field("shadow-baseline"))
        up = field("upstream").sub("upstream", Node())
        up.only(["script", "test"])
        upstream = ((up.get("script", str, required=True), up.get("test", str, required=True))
                    if up.node else None)
        livepatches = cls._livepatches(field("livepatches"))
        steps = cls._steps(base, variables)
        scenario = cls(path=path, name=path.stem,
                       description=field("description").get("description", str, ""),
                       requires=requires,
                       expect_splat=field("expect-splat").get("expect-splat", bool, False),
                       steps=steps, known_failures={a: reason for a in known_arches},
                       known_intermittent=intermittent, known_match=known_match,
                       source=base.path, expect_failure=expect_failure,
                       shadow_baseline={k: int(v) for k, v in baseline.items()},
                       upstream=upstream, livepatches=livepatches)
        if modules is not None:
            scenario._check_livepatch_names(modules)
        scenario._check_order(modules)
        return scenario

    @staticmethod
    def _files(path: Path) -> Tuple[Fields, Fields]:
        """The scenario's own file and the one whose steps it runs (itself, or what it
        `extends`)."""
        own = Fields(load(path), path)
        base = own
        if "extends" in own.node:
            own.only(EXTENDS_FIELDS)
            base_path = path.parent / own.get("extends", str)
            if not base_path.is_file():
                own.fail("extends", f"no scenario file {base_path}")
            base = Fields(load(base_path), base_path)
            if "extends" in base.node:
                base.fail("extends", f"{path} extends this file, which extends another: "
                                     f"extend that one instead")
        base.only(TOP_FIELDS)
        return own, base

    @classmethod
    def _merged_variables(cls, own: Fields, base: Fields) -> Dict[str, Any]:
        """The base's `vars`, with the values an extending scenario sets (only those)."""
        variables = cls._variables(base)
        if own is not base:
            for name, value in cls._variables(own).items():
                if name not in variables:
                    own.fail("vars", f"'{name}' is not a variable of {base.path.name}; it has: "
                                      f"{', '.join(variables) or 'none'}")
                variables[name] = value
        return variables

    @staticmethod
    def _known_failure(f: Fields) -> Tuple[List[str], Optional[str], bool, Optional[str]]:
        """`known-failure`: its arches, reason, whether intermittent, and match pattern."""
        known = f.sub("known-failure", Node())
        known.only(["arches", "reason", "intermittent", "match"])
        arches = known.strings("arches", [])
        reason = known.get("reason", str, None)
        intermittent = known.get("intermittent", bool, False)
        match = known.get("match", str, None)
        if arches and not reason:
            known.fail(None, "a known failure needs a 'reason' (what in the kernel makes it fail)")
        if match is not None:
            _check_regex(known, "match", match)
        return arches, reason, intermittent, match

    @staticmethod
    def _baseline(f: Fields) -> Dict[str, str]:
        if "shadow-baseline" not in f.node:
            return {}
        baseline = _parse_shadow_counts(f.sub("shadow-baseline"))
        for key, want in baseline.items():
            if key == "total" or not want.isdigit():
                f.fail("shadow-baseline", "a baseline is a number of variables per id: "
                                          "{0x1234: 2}")
        return baseline

    @classmethod
    def _steps(cls, base: Fields, variables: Dict[str, Any]) -> List["Step"]:
        """The steps, each validated; every step's error, not only the first."""
        raw_steps = base.get("steps", list, required=True)
        if not raw_steps:
            base.fail("steps", "a scenario needs at least one step")
        lines = getattr(raw_steps, "item_lines", [base.line("steps")] * len(raw_steps))
        steps, problems = [], []
        for i, item in enumerate(raw_steps):
            try:
                steps.append(cls._step(base.path, _with_variables(item, variables), lines[i], i))
            except ScenarioError as e:
                problems.append(e)
        if problems:
            raise ScenarioErrors(problems)
        return steps

    @staticmethod
    def _variables(f: Fields) -> Dict[str, str]:
        v = f.sub("vars", Node())
        for name in v.node:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
                v.fail(name, f"a variable name is letters, digits and _, got {name!r}")
        return {str(k): _scalar(v, k, value) for k, value in v.node.items()}

    @staticmethod
    def _livepatches(f: Fields) -> Dict[str, LivepatchSource]:
        """`livepatches: {name: PATCH | [PATCH...] | {patches: [...], replace: false}}`,
        patch paths relative to the file that says so; each must be a unified diff."""
        lp = f.sub("livepatches", Node())
        found: Dict[str, LivepatchSource] = {}
        for name, value in lp.node.items():
            if not isinstance(name, str) or not LIVEPATCH_NAME.fullmatch(name):
                lp.fail(name, f"a livepatch's name is its module's: lower-case letters, digits "
                              f"and _, at most 55 (got {name!r})")
            replace = True
            if isinstance(value, dict):
                entry = Fields(value, f.path, lp._name(name))
                entry.only(["patches", "replace"])
                patches = entry.strings("patches")
                replace = entry.get("replace", bool, True)
            elif isinstance(value, str):
                patches = [value]
            else:
                patches = lp.strings(name)
            if not patches:
                lp.fail(name, "expected a patch file, a list of them, or {patches: [...]}")
            paths = tuple(Path(os.path.normpath(f.path.parent / p)) for p in patches)
            try:
                check_patches(paths)
            except HarnessError as e:   # where a missing patch was looked for
                missing = not all(p.is_file() for p in paths)
                lp.fail(name, f"{e}" + (f" (patch paths are relative to {f.path.parent})"
                                        if missing else ""))
            found[name] = LivepatchSource(name, paths, replace, declared=(f.path, lp.line(name)))
        return found

    @staticmethod
    def _requirements(f: Fields) -> Requirements:
        req = f.sub("requires", Node())
        req.only(["arches", "kernel", "config", "shadow-counter", "guest"])
        arches = req.strings("arches", list(archmod.NAMES))
        for a in arches:
            if a not in archmod.NAMES:
                req.fail("arches", f"unknown architecture '{a}'; known: {', '.join(archmod.NAMES)}")
        kernel = req.get("kernel", (str, int, float), None)
        version = None if kernel is None else str(kernel)
        if kernel is not None:
            try:
                version_tuple(version)
            except ValueError:
                req.fail("kernel", f"expected a kernel version such as \"6.13\", got {kernel!r}")
        config = req.strings("config", [])
        for symbol in config:
            if not re.fullmatch(r"CONFIG_[A-Z0-9_]+", symbol):
                req.fail("config", f"expected CONFIG_<SYMBOL>, got {symbol!r}")
        guest = req.sub("guest", Node())
        guest.only(["run", "else-skip"])
        check = ((guest.get("run", str, required=True), guest.get("else-skip", str, required=True))
                 if guest.node else None)
        return Requirements(arches, version, config, req.get("shadow-counter", bool, False),
                            check)

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
        extra, parser, _ = STEP_KINDS[kind]
        f.only([kind, "log", "timeout", *extra])
        timeout = f.get("timeout", (int, float), None)
        if timeout is not None and timeout <= 0:
            f.fail("timeout", f"expected a positive number of seconds, got {timeout!r}")
        # A `log` step of its own looks at the whole scenario so far; on a step, at that step.
        log = LogExpectation.parse(f, "log", "scenario" if kind == "log" else "step")
        return Step(kind=kind, line=f.line(kind) or line, log=log, args=parser(f, kind),
                    timeout=timeout)

    def check_modules(self, modules: Collection[str]) -> None:
        """Every module a load step names exists (ScenarioError naming the step if not), and
        no livepatch takes a module's name (naming the `livepatches` entry)."""
        self._check_livepatch_names(modules)
        self._check_order(modules)

    def _check_livepatch_names(self, modules: Collection[str]) -> None:
        # A livepatch named like a module of the image would shadow it in the catalog:
        # which of the two a load step means could not be told.
        for name, source in self.livepatches.items():
            if name in modules:
                path, line = source.declared or (self.path, None)
                raise ScenarioError(path, line, f"livepatches.{name}", taken_name_message(
                    name, "this image"))

    def _check_order(self, modules: Optional[Collection[str]]) -> None:
        """Steps that act on a module need an earlier load; variables an earlier save."""
        loaded: set = set()
        saved: set = set()
        for i, step in enumerate(self.steps):
            where = f"steps[{i}].{step.kind}"

            def fail(message: str) -> None:
                raise ScenarioError(self.source, step.line, where, message)

            for text in _strings(step.args) + (step.log.strings() if step.log else []):
                for var in VARIABLE.findall(text):
                    if var not in saved:
                        fail(f"variable ${{{var}}} is not in the scenario's `vars` and is "
                             f"used before a run step saves it (`save: {var}`)")
            target = STEP_KINDS[step.kind][2]
            if step.kind == "load":
                module = step.args["module"]
                if modules is not None and module not in modules \
                        and module not in self.livepatches:
                    fail(f"unknown module '{module}'; modules of this image: "
                         f"{', '.join(sorted(modules))}")
                if step.args["error"] is None:
                    loaded.add(module)
            elif target is not None:
                name = step.args[target]
                if name not in loaded:
                    fail(f"'{name}' is not loaded at this point: no earlier step loads it"
                         + (" (it was unloaded before)" if step.kind != "unload" and
                            any(s.kind == "unload" and s.args["name"] == name
                                for s in self.steps[:i]) else ""))
                if step.kind == "unload":
                    loaded.discard(name)
            if step.kind == "run" and step.args["save"]:
                saved.add(step.args["save"])


def taken_name_message(name: str, image: str) -> str:
    """Why a livepatch may not be called ``name``: a module of ``image`` has that name."""
    return (f"'{name}' is already the name of a module of {image}: give the livepatch "
            "another name")


# Top-level fields of a scenario file; one that `extends` another may set all but steps.
TOP_FIELDS = ["description", "requires", "vars", "steps", "expect-splat", "known-failure",
              "expect-failure", "shadow-baseline", "upstream", "livepatches"]
EXTENDS_FIELDS = ["extends"] + [k for k in TOP_FIELDS if k != "steps"]


def _with_variables(node: Any, variables: Dict[str, str]) -> Any:
    """``node`` with the scenario's own `vars` put in, keys included (others are left for
    run steps' `save`), keeping the line numbers yamlsrc recorded."""
    if isinstance(node, str):
        return VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), node)
    if isinstance(node, list):
        copy = type(node)(_with_variables(v, variables) for v in node)
    elif isinstance(node, dict):
        copy = type(node)((_with_variables(k, variables), _with_variables(v, variables))
                          for k, v in node.items())
    else:
        return node
    copy.__dict__.update(getattr(node, "__dict__", {}))
    if hasattr(copy, "key_lines"):
        copy.key_lines = {_with_variables(k, variables): n for k, n in node.key_lines.items()}
    return copy


def _strings(value: Any) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def substitute(value: Any, variables: Dict[str, str]) -> Any:
    """``${name}`` replaced in every string of ``value`` (validation ensured they exist)."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: variables[m.group(1)], value)
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def discover(paths: List[Path]) -> List[Path]:
    """Scenario files under ``paths`` (files or directories); module sources are skipped."""
    found: List[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            here = sorted(x for x in p.rglob("*.yaml") if not in_module_sources(x))
            if not here:   # a typo'd or empty dir must not pass as "0 failed"
                raise ScenarioError(p, None, None, "no scenario files (*.yaml) in this "
                                    "directory: check the path")
            found.extend(here)
        elif p.is_file():
            found.append(p)
        else:
            raise ScenarioError(p, None, None, "no such scenario file or directory")
    return found


def upstream_cases(paths: List[Path]) -> Dict[Tuple[str, str], List["Scenario"]]:
    """The scenarios under ``paths`` that name an upstream selftest case, by (script, test);
    a case may have variants (for kernels that behave differently, told by requires)."""
    found: Dict[Tuple[str, str], List[Scenario]] = {}
    for path in discover(paths):
        scenario = Scenario.load(path)
        if scenario.upstream is not None:
            found.setdefault(scenario.upstream, []).append(scenario)
    return found


def known_upstream_failures(arch: str, paths: List[Path]) -> Dict[Tuple[str, str], str]:
    """(script, test) -> reason for each upstream case a scenario declares a known kernel
    failure on ``arch``: the verbatim scripts are judged by the same declarations."""
    return {case: sc.known_failures[arch] for case, variants in upstream_cases(paths).items()
            for sc in variants if arch in sc.known_failures}
