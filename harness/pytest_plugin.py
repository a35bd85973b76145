"""pytest plugin: scenario files as test items, and fixtures that give a booted guest.

Thin on purpose: everything it does is the plain library's (session.Session) work.
Each scenario x architecture is one item: ``scenarios/smoke/x.yaml::x[x86_64]``.

Under pytest-xdist (``-n N``) every worker is a process with its own Session (its own
guests, machine dirs named after the worker); the tests of one architecture are spread
over N / arches workers by expected duration, each a guest of the arch's pool (xdist's
"load", the default with ``-n``, and "loadgroup" are scheduled so); ``-n auto`` starts a
pool of pool.size guests per arch (``--pool K`` to choose).
Scenario results travel to the controller as report properties (also in the JUnit XML)
for the summary table.

``--repeat N`` makes N items of each scenario x arch (``x[x86_64]``, ``x[x86_64-run2]``, ...:
repeat.py), spread over the arch's pool like any others; ``--until-fail`` skips the items of
a cell that has failed, wherever (whichever worker) it failed. Python tests run once:
pytest-repeat (not installed) repeats Python functions by parametrizing them, which
scenario items are not; and a Python test reports no scenario outcome to count.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from . import arch as archmod, external, image as imagemod, klpbuild, options
from . import artifacts, pool as poolmod, repeat, report, runrecord, shard
from .errors import HarnessError, InputError
from .livetest import LiveTest
from .log import LOG, LOG_FORMAT
from .outcome import Outcome, Status
from .paths import in_module_sources, topics as scenario_topics
from .scenario import Scenario
from .report import summary
from .session import Session

_SESSION = pytest.StashKey[Session]()
_OUTCOMES = pytest.StashKey[list]()
_DURATIONS = pytest.StashKey[list]()
_RUN_ID = pytest.StashKey[str]()
_HANDLER = pytest.StashKey[logging.Handler]()
_EXIT = pytest.StashKey[int]()


def pytest_addoption(parser):
    options.add_to_pytest(parser.getgroup("klp-harness"))   # the table the CLI uses too


# The arch in a test id: "name[x86_64]", "test_x[s390x-foo]".
_ARCH_IN_ID = re.compile(r"\[(?:[^\]]*-)?(" + "|".join(archmod.NAMES) + r")(?:-[^\]]*)?\]$")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """-n N (xdist's default "load") or --dist loadgroup: xdist's scope scheduling, a scope
    being one guest of an arch's pool: an arch's tests are spread over N / arches workers
    by expected duration (pool.spread), and each worker boots one guest. (xdist's own
    loadgroup tags test ids with their xdist_group, which pytest 9's read-only ids no
    longer allow.) Other --dist modes stay xdist's. Decided here, not by changing --dist:
    xdist turns -n's "no" into "load" before an in-tree conftest could."""
    if config.option.dist not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByGuest(LoadScopeScheduling):
        guest_of = None

        def _split_scope(self, nodeid: str) -> str:
            m = _ARCH_IN_ID.search(nodeid)
            if not m:
                return nodeid
            if self.guest_of is None:   # the whole collection is known by now
                self.guest_of = _spread(config, self.collection, len(self.nodes))
            return f"{m.group(1)}#{self.guest_of.get(nodeid, 0)}"

    return ByGuest(config, log)


def _spread(config, nodeids, workers: int):
    """nodeid -> guest of its arch's pool: the workers shared evenly among the arches."""
    by_arch = {}
    for nodeid in nodeids:
        m = _ARCH_IN_ID.search(nodeid)
        if m:
            by_arch.setdefault(m.group(1), []).append(nodeid)
    guests = max(1, workers // max(1, len(by_arch)))
    known = poolmod.Durations(config.getoption("klp_image")).expected()
    expected = {nodeid: known[repeat.duration_key(nodeid)] for nodeid in nodeids
                if repeat.duration_key(nodeid) in known}   # a repeat as its plain id
    return {nodeid: guest for ids in by_arch.values()
            for nodeid, guest in poolmod.spread(ids, guests, expected).items()}


@pytest.hookimpl(optionalhook=True, tryfirst=True)   # before xdist's own (CPU count)
def pytest_xdist_auto_num_workers(config):
    """-n auto: a pool of guests for each selected arch (pool.size, or --pool K)."""
    arches = selected_arches(config)
    return len(arches) * poolmod.size(len(arches), config.getoption("klp_memory"),
                                      config.getoption("klp_pool"))


def selected_arches(config) -> List[str]:
    return imagemod.arches_for(config.getoption("klp_image"), config.getoption("klp_arch"))


def pytest_configure(config):
    # Under -n pytest-xdist's controller collects nothing: a mistyped path would end as "no
    # tests ran" (exit 5) without naming it. Refuse it here, as pytest alone does.
    for arg in config.args:
        path = Path(arg.split("::")[0])
        if not (config.invocation_params.dir / path).exists():
            raise pytest.UsageError(f"file or directory not found: {arg} (check the path; "
                                    f"scenarios are under scenarios/)")
    config.addinivalue_line("markers", "vm: boots a real QEMU guest")
    config.addinivalue_line("markers", "klp_image(name, arch=A): the test builds image `name` "
                            "for A itself; built with the session's images, in parallel")
    for a in archmod.NAMES:
        config.addinivalue_line("markers", f"{a}: runs on the {a} guest")
    for topic in sorted(scenario_topics()):
        config.addinivalue_line("markers", f"{_marker(topic)}: scenarios under a {topic}/ directory")
    config.addinivalue_line("markers", "external: the generic check of livepatch modules given "
                            "with --ko-dir, or built from patches")
    config.addinivalue_line("markers", "from_patches: the generic check of livepatches that "
                            "scenarios build from patches")
    # One artifacts dir for the run, also across xdist workers (see pytest_configure_node).
    config.stash[_RUN_ID] = (getattr(config, "workerinput", {}).get("klp_run_id")
                             or artifacts.new_run_id())
    plan = _shard_plan(config)
    results = _Results()
    config.pluginmanager.register(results, "klp-harness-results")
    config.pluginmanager.register(_Sharding(plan), "klp-harness-shards")
    config.stash[_OUTCOMES] = results.outcomes
    config.stash[_DURATIONS] = results.durations
    handler = _TerminalHandler(config)
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    config.stash[_HANDLER] = handler


_SHOW_LOCK = threading.Lock()


class _TerminalHandler(logging.Handler):
    """The harness's log records on pytest's terminal, past its output capture: a build's
    progress must show while it runs (pytest's own live log sees them too)."""

    def __init__(self, config):
        super().__init__(logging.INFO)
        self.config = config
        self.setFormatter(LOG_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        _show(self.config, self.format(record))


def _show(config, line: str) -> None:
    """Progress of long work (kernel builds) on the terminal even while output is captured."""
    capture = config.pluginmanager.getplugin("capturemanager")
    terminal = config.pluginmanager.getplugin("terminalreporter")
    if _worker(config):   # an xdist worker's terminal is not shown; its stderr (fd 2) is
        print(f"[{_worker(config)}] {line}", file=sys.__stderr__, flush=True)
        return
    if capture is None or terminal is None:
        print(line, file=sys.stderr, flush=True)
        return
    with _SHOW_LOCK, capture.global_and_fixture_disabled():   # builds report from a thread
        terminal.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: each worker writes its artifacts into the controller's run dir, and runs
    its part of the controller's shard."""
    node.workerinput["klp_run_id"] = node.config.stash[_RUN_ID]
    plan = node.config.pluginmanager.get_plugin("klp-harness-shards").plan
    node.workerinput["klp_shard"] = str(plan.shard) if plan.shard else ""


def _shard_plan(config) -> shard.Plan:
    """The shard this run is, decided before collection (a wrong one is refused before
    anything builds). The CI engine's variables are read once, here, and taken out of
    the environment: a test that starts klp-harness or pytest itself (as the harness's
    own tests do) must run its whole selection, not a shard of it. An xdist worker has
    its controller's shard."""
    worker = getattr(config, "workerinput", None)
    try:
        if worker is not None:
            flag = shard.parse(worker["klp_shard"]) if worker.get("klp_shard") else None
            return shard.plan(flag, None, config.getoption("klp_shard_durations"), {})
        plan = options.shard_plan(lambda dest: config.getoption(f"klp_{dest}"))
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from None
    for name in shard.ENGINE_VARIABLES:
        os.environ.pop(name, None)
    return plan


def klp_session(config) -> Session:
    if _SESSION not in config.stash:
        config.stash[_SESSION] = Session(options.session_options(
            lambda dest: config.getoption(f"klp_{dest}"), worker=_worker(config),
            run_id=config.stash[_RUN_ID]))
    return config.stash[_SESSION]


def _worker(config) -> str:
    """pytest-xdist's worker id ("gw0", ...) in a worker process, else ""."""
    return getattr(config, "workerinput", {}).get("workerid", "")


def pytest_sessionfinish(session, exitstatus):
    """The controller (or a run without xdist) keeps the run's test durations; a shard
    that got no test because there are more shards than cells ends with 0, not pytest's
    "no tests ran" (the merge checks that the shards add up to the selection)."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    config.stash[_EXIT] = exitstatus
    if _DURATIONS in config.stash:
        poolmod.Durations(config.getoption("klp_image")).record(
            repeat.median_times(config.stash[_DURATIONS]))
    record = _run_record(config)
    if record is not None and record.shard and not record.cells \
            and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK


def _run_dir(config) -> Path:
    return Path(config.getoption("klp_artifacts")).resolve() / config.stash[_RUN_ID]


def _run_record(config) -> Optional[runrecord.RunRecord]:
    """This run's run.json (written where the tests were collected: here, or in the
    xdist workers), if it has one."""
    try:
        return runrecord.RunRecord.read(_run_dir(config))
    except runrecord.RunDirError:
        return None


def pytest_unconfigure(config):
    if _HANDLER in config.stash:
        LOG.removeHandler(config.stash[_HANDLER])
    if _SESSION in config.stash:
        config.stash[_SESSION].close()


# -- scenario files -----------------------------------------------------------------------

def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".yaml" and "scenarios" in file_path.parts \
            and not in_module_sources(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def __init__(self, *, scenario: Optional[Scenario] = None, **kw):
        super().__init__(**kw)
        self.scenario = scenario   # loaded already (a generated check), else loaded here

    def collect(self):
        try:
            scenario = self.scenario or Scenario.load(self.path)
        except InputError as e:
            raise self.CollectError(str(e)) from None
        parts = self.path.resolve().parent.parts
        topics = parts[len(parts) - parts[::-1].index("scenarios"):]   # dirs below scenarios/
        for a in selected_arches(self.config):
            for run in repeat.runs(self.config.getoption("klp_repeat")):
                item = ScenarioItem.from_parent(self, name=repeat.item_id(scenario.name, a, run),
                                                scenario=scenario, arch=a, run=run)
                item.add_marker(a)
                item.add_marker("vm")
                for topic in topics:
                    item.add_marker(_marker(topic))
                yield item


def _marker(topic: str) -> str:
    return topic.replace("-", "_")


class ScenarioFailure(Exception):
    pass


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, arch: str, run: int = 0, **kw):
        super().__init__(**kw)
        self.scenario, self.arch, self.run = scenario, arch, run   # run: of --repeat's

    def runtest(self):
        session = klp_session(self.config)
        until_fail = repeat.UntilFail(session.run_dir) if session.options.until_fail else None
        stopped = until_fail and until_fail.stopped(self.scenario.id, self.arch)
        if stopped:   # its cell failed, maybe on another worker: this run is not run
            pytest.skip(stopped)
        outcome = session.run_scenario(self.scenario, self.arch)
        outcome.run = self.run
        if until_fail:
            until_fail.mark(outcome)
        # For the summary table, also from xdist workers (see pytest_runtest_logreport).
        self.user_properties += outcome.to_properties(self.config.getoption("klp_image"))
        if outcome.status == Status.SKIP:
            pytest.skip(outcome.message)
        if outcome.status == Status.XFAIL:
            pytest.xfail(outcome.message)
        if outcome.status != Status.PASS:
            raise ScenarioFailure(outcome.message)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ScenarioFailure):
            return f"{repeat.item_id(str(self.scenario.path), self.arch, self.run)}:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, self.scenario.steps[0].line, f"scenario {self.name}"


@pytest.hookimpl(tryfirst=True)   # before -k/-m deselect: they apply to these items too
def pytest_collection_modifyitems(session, config, items):
    ko_dirs = config.getoption("klp_ko_dir")
    if ko_dirs:
        try:
            paths = external.write_scenarios(ko_dirs, Path(config.getoption("klp_artifacts")))
        except HarnessError as e:
            raise pytest.UsageError(str(e)) from None
        for path in paths:
            items.extend(ScenarioFile.from_parent(session, path=path).collect())
    # The generic check of each livepatch that a collected scenario builds from patches.
    scenarios = {i.scenario.path: i.scenario for i in items if isinstance(i, ScenarioItem)}
    try:
        checks = external.livepatch_checks(list(scenarios.values()),
                                           Path(config.getoption("klp_artifacts")))
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from None
    for check in checks:
        items.extend(ScenarioFile.from_parent(session, path=check.path, scenario=check).collect())
    # Tests that run an image of their own (a whole run of it, in a subprocess) are the
    # longest: first, so that under -n they overlap everything else instead of ending last.
    items.sort(key=lambda item: item.get_closest_marker("klp_image") is None)


def pytest_collection_finish(session):
    """Before the first test: build what the selected tests need, every arch at once (a
    cold run builds a kernel per arch; see Session.prepare)."""
    config = session.config
    if config.option.collectonly or not session.items:
        return
    arches, images, scenarios = set(), set(), {}
    for item in session.items:
        if isinstance(item, ScenarioItem) and item.scenario.livepatches:
            scenarios.setdefault(item.scenario.path, item.scenario)
        if item.get_closest_marker("vm") is None:
            continue
        arch = getattr(item, "arch", None) or getattr(
            getattr(item, "callspec", None), "params", {}).get("klp_arch")
        if arch:
            arches.add(arch)
        for mark in item.iter_markers("klp_image"):
            images.add((mark.args[0], mark.kwargs["arch"]))
    if arches or images:
        try:   # a --kernel-patch that does not apply: said before anything builds
            imagemod.patched_source(config.getoption("klp_image"),
                                    config.getoption("klp_kernel_patch"),
                                    config.getoption("klp_mirror"))
        except HarnessError as e:
            raise pytest.UsageError(str(e)) from None
        order = [a for a in selected_arches(config) if a in arches]
        klp_session(config).prepare(order, sorted(images), list(scenarios.values()))


class _Sharding:
    """--shard K/N (or the CI engine's variables): after -k/-m have deselected (trylast),
    this process keeps its shard's cells of the selection (shard.py, the rule `klp-harness
    run` splits by too) and deselects the others; and writes run.json for a merge. Each
    xdist worker collects, and splits, alike."""

    def __init__(self, plan: shard.Plan):
        self.plan = plan

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        plan = self.plan
        scenario_items = [i for i in items if isinstance(i, ScenarioItem)]
        if config.option.collectonly or (plan.shard is None and not scenario_items):
            return   # a run of Python tests alone leaves no run dir, as before
        cell_of = {i.nodeid: _cell(i) for i in items}
        selection = list(cell_of.values())
        mine = set(plan.mine(selection))
        if plan.shard is not None:
            dropped = [i for i in items if cell_of[i.nodeid] not in mine]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
                items[:] = [i for i in items if cell_of[i.nodeid] in mine]
        runrecord.RunRecord(
            report.harness_version(), imagemod.recipe_path(config.getoption("klp_image")).stem,
            selected_arches(config), selection, mine,
            {_cell(i) for i in scenario_items} & mine, plan.shard, plan.durations_sha256,
            config.getoption("klp_repeat"), "pytest", config.stash[_RUN_ID],
        ).write(artifacts.open_run(Path(config.getoption("klp_artifacts")),
                                   config.stash[_RUN_ID]))


def _cell(item) -> str:
    """An item's cell (shard.py): a scenario's on its arch, else its id (every --repeat run
    of a cell in one)."""
    if isinstance(item, ScenarioItem):
        return shard.cell(item.scenario.id, item.arch)
    return repeat.duration_key(item.nodeid)


class _Results:
    """Collects scenario outcomes from test reports: this process's, or the workers'; and
    how long each test of a guest took, for the next run's spread over the pool."""

    def __init__(self):
        self.outcomes: List[Outcome] = []
        self.durations: List[Tuple[str, float]] = []

    def pytest_runtest_logreport(self, report):
        timed = not report.skipped or hasattr(report, "wasxfail")   # xfails ran too
        if report.when == "call" and timed and _ARCH_IN_ID.search(report.nodeid):
            self.durations.append((repeat.duration_key(report.nodeid), report.duration))
        outcome = Outcome.from_properties(dict(report.user_properties))
        if report.when == "call" and outcome is not None:
            self.outcomes.append(outcome)


def pytest_terminal_summary(terminalreporter):
    """The summary table, and the run dir's report (the controller's, under xdist): also
    for a shard without a scenario outcome, whose run dir a merge reads too."""
    config = terminalreporter.config
    outcomes = config.stash.get(_OUTCOMES, [])
    record = _run_record(config)
    if not outcomes and record is None:
        return
    terminalreporter.write_sep("=", "klp-harness scenarios")
    if record is not None and record.shard:
        terminalreporter.write_line(
            f"shard {record.shard}: {len(record.cells)} of the selection's "
            f"{len(record.selection)} cells" + ("" if record.cells else
                                                 " (more shards than cells: nothing to run)"))
    table = summary(outcomes, config.getoption("klp_repeat"))
    terminalreporter.write_line(table)
    run_dir = _run_dir(config)
    if run_dir.is_dir():
        interrupted = config.stash.get(_EXIT, 0) == pytest.ExitCode.INTERRUPTED
        terminalreporter.write_line(f"artifacts of this run: {run_dir}")
        terminalreporter.write_line(
            f"report: {report.write(run_dir, outcomes, table, interrupted)}")


# -- fixtures for Python tests ------------------------------------------------------------

def pytest_generate_tests(metafunc):
    if "klp_arch" in metafunc.fixturenames:
        metafunc.parametrize("klp_arch", selected_arches(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def klp_harness_session(request) -> Session:
    return klp_session(request.config)


@pytest.fixture
def klp_machine(klp_harness_session, klp_arch):
    """The running Machine for this arch (one boot per session and arch, reused)."""
    return klp_harness_session.machine(klp_arch)


@pytest.fixture
def klp_guest(klp_machine):
    """A booted guest over SSH for this arch."""
    return klp_machine.guest


@pytest.fixture
def klp_modules(klp_harness_session, klp_arch):
    """The module catalog (upstream selftest modules and ours) for this arch's image."""
    return klp_harness_session.state(klp_arch).catalog


@pytest.fixture
def klp_livetest(klp_harness_session, klp_arch, request):
    """Makes a ``livetest.LiveTest`` on this arch's guest, named after the test:
    ``with klp_livetest() as t: t.load(...); ...`` (keyword arguments: expect_splat,
    shadow_baseline, livepatches={name: patch file(s)}: built by klp-build, skipped where
    it cannot). Leaving the block runs the scenarios' end checks."""
    def make(**kw) -> LiveTest:
        try:
            return LiveTest(klp_harness_session, klp_arch, request.node.name, **kw)
        except klpbuild.Unsupported as e:   # livepatches= on an image klp-build cannot serve
            pytest.skip(f"its livepatches are built from patches by klp-build: {e}")
    return make


@pytest.fixture
def klp_shadow(klp_harness_session, klp_arch, klp_guest):
    """The guest's shadow variable counter (``shadow.ShadowCounter``: ``read()``,
    ``objects(id)``); the test is skipped, with the reason, where the kernel has none."""
    st = klp_harness_session.state(klp_arch)
    if st.counter is None:
        pytest.skip(f"no shadow variable counter: {st.counter_unavailable}")
    return st.counter
