"""--repeat and --until-fail (harness/repeat.py): the expansion, the ids and duration keys,
what a cell's runs add up to, and run_all with both, its scenario runs faked
(tests/integration/test_repeat.py runs real guests)."""
import threading
import time
from types import SimpleNamespace

import pytest

from harness import pool, repeat
from harness.options import Options
from harness.outcome import Outcome, Status
from harness.session import Session


def test_a_cell_run_once_is_unnumbered_and_n_runs_go_round_by_round():
    assert repeat.runs(1) == [0] and repeat.runs(3) == [1, 2, 3]
    assert repeat.expand(["a", "b"], 1) == [("a", 0), ("b", 0)]
    assert repeat.expand(["a", "b"], 3) == [("a", 1), ("b", 1), ("a", 2), ("b", 2),
                                            ("a", 3), ("b", 3)]


def test_repeats_get_a_suffix_and_share_the_plain_ids_duration_key():
    ids = [repeat.item_id("smoke/x", "s390x", run) for run in (0, 1, 2, 20)]
    assert ids == ["smoke/x[s390x]", "smoke/x[s390x]", "smoke/x[s390x-run2]",
                   "smoke/x[s390x-run20]"]
    assert {repeat.duration_key(i) for i in ids} == {"smoke/x[s390x]"}
    nodeid = "scenarios/smoke/x.yaml::x[x86_64-run7]"
    assert repeat.duration_key(nodeid) == "scenarios/smoke/x.yaml::x[x86_64]"
    # a test id of pytest's own, with a dash, is not a repeat's
    assert repeat.duration_key("t.py::test_y[ppc64le-big]") == "t.py::test_y[ppc64le-big]"


def test_the_arch_in_a_repeats_id_is_where_xdist_finds_it():
    from harness.pytest_plugin import _ARCH_IN_ID
    assert _ARCH_IN_ID.search("s.yaml::x[arm64-run3]").group(1) == "arm64"


def test_a_repeated_tests_duration_is_its_median():
    times = [("x[a]", 1.0), ("x[a-run2]", 9.0), ("x[a-run3]", 2.0), ("y[a]", 4.0)]
    assert sorted(repeat.median_times(times)) == [("x[a]", 2.0), ("y[a]", 4.0)]


def _cell(*statuses):
    return repeat.Cell("s", "x86_64", [Outcome("s", "x86_64", st, seconds=float(i + 1), run=i + 1)
                                       for i, st in enumerate(statuses)])


@pytest.mark.parametrize("statuses, status, failures, ran", [
    (["pass", "xfail", "pass", "skip"], Status.XFAIL, 1, 3),
    (["pass", "xfail", "fail"], Status.FAIL, 2, 3),
    (["pass", "pass"], Status.PASS, 0, 2),
    (["skip", "skip"], Status.SKIP, 0, 0)])
def test_a_cells_failures_count_fails_and_xfails_of_the_runs_that_ran(statuses, status,
                                                                       failures, ran):
    cell = _cell(*statuses)
    assert (cell.status, cell.failures, len(cell.ran)) == (status, failures, ran)


def test_a_cells_text_is_its_status_rate_and_mean_time():
    cell = _cell(*(["xfail"] * 5 + ["pass"] * 15))
    assert cell.text() == "xfail 5/20 (95% CI 11%–47%) 10.5s"
    assert _cell("skip", "skip").text() == "skip    1.5s"
    assert cell.repeated and not repeat.Cell("s", "a", [Outcome("s", "a", "pass")]).repeated


def test_until_fail_keeps_the_first_failed_run_of_each_cell(tmp_path):
    until = repeat.UntilFail(tmp_path)
    until.mark(Outcome("smoke/x", "x86_64", "pass", run=1))
    assert until.stopped("smoke/x", "x86_64") is None          # a pass stops nothing
    until.mark(Outcome("smoke/x", "x86_64", "xfail", run=2, artifacts="/a/x[x86_64]"))
    until.mark(Outcome("smoke/x", "x86_64", "fail", run=3))     # a later one: not recorded
    assert until.stopped("smoke/x", "x86_64") == (
        "--until-fail: smoke/x[x86_64] already failed (xfail) in run 2; its later runs are "
        "not run (artifacts: /a/x[x86_64])")
    assert until.stopped("smoke/x", "s390x") is None            # per cell
    assert repeat.UntilFail(tmp_path).stopped("smoke/x", "x86_64")   # another process's view


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    return Session(Options(artifacts=tmp_path / "artifacts"))


def fake_runs(session, monkeypatch, fails=()):
    """run_scenario answers at once; it fails the (scenario, arch, n)th call of that cell
    for each of ``fails``; notes which guest ran what."""
    ran, lock, calls = [], threading.Lock(), {}

    def run_scenario(sc, arch, slot=0):
        time.sleep(0.01)
        with lock:
            calls[(sc.id, arch)] = n = calls.get((sc.id, arch), 0) + 1
            ran.append((sc.id, arch, slot))
        status = Status.FAIL if (sc.id, arch, n) in fails else Status.PASS
        return Outcome(sc.id, arch, status, seconds=float(n))

    monkeypatch.setattr(session, "run_scenario", run_scenario)
    return ran


def test_run_all_runs_each_cell_n_times_over_the_pool(session, monkeypatch):
    session.options.repeat = 4
    scenarios = [SimpleNamespace(id="a"), SimpleNamespace(id="b")]
    ran = fake_runs(session, monkeypatch, fails={("b", "x86_64", 2)})
    outcomes = session.run_all(scenarios, ["x86_64", "s390x"], pool=2)
    assert len(outcomes) == len(ran) == 16
    cells = repeat.cells(outcomes)
    assert {key: sorted(o.run for o in c.runs) for key, c in cells.items()} == \
        {(s, a): [1, 2, 3, 4] for s in "ab" for a in ("x86_64", "s390x")}
    assert cells[("b", "x86_64")].text() == "fail  1/4 (95% CI 5%–70%) 2.5s"
    assert {slot for s, a, slot in ran if a == "x86_64"} == {0, 1}   # over the pool
    # durations.json keeps the plain key, with the median of the cell's runs
    assert pool.Durations(session.options.image).expected() == \
        {f"{s}[{a}]": 2.5 for s in "ab" for a in ("x86_64", "s390x")}


@pytest.mark.parametrize("until_fail", [True, False])
def test_until_fail_stops_a_cell_at_its_first_failure(session, monkeypatch, until_fail):
    """With --until-fail the failing cell stops after its 2nd run, the others run 5 times;
    without it (the control) the failing cell runs all 5."""
    session.options.repeat, session.options.until_fail = 5, until_fail
    scenarios = [SimpleNamespace(id="a"), SimpleNamespace(id="b")]
    fake_runs(session, monkeypatch, fails={("b", "x86_64", 2)})
    cells = repeat.cells(session.run_all(scenarios, ["x86_64"], pool=1))
    assert len(cells[("a", "x86_64")].runs) == 5
    assert len(cells[("b", "x86_64")].runs) == (2 if until_fail else 5)
    assert cells[("b", "x86_64")].failures == 1
    marker = session.run_dir / "until-fail" / "b_x86_64_"
    assert marker.exists() == until_fail
