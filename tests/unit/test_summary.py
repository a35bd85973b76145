"""The summary table at the end of a run: scenario x arch, result and time."""
from harness.outcome import Outcome
from harness.report import summary


def test_one_row_per_scenario_one_column_per_arch():
    table = summary([Outcome("parity/a", "x86_64", "pass", seconds=1.23),
                     Outcome("parity/a", "s390x", "fail", seconds=12.3),
                     Outcome("smoke/b", "x86_64", "skip", "no such attribute"),
                     Outcome("smoke/b", "s390x", "xfail", seconds=2.0)]).splitlines()
    assert table[0].split() == ["scenario", "x86_64", "s390x"]
    assert table[1].split() == ["parity/a", "pass", "1.2s", "fail", "12.3s"]
    assert table[2].split() == ["smoke/b", "skip", "0.0s", "xfail", "2.0s"]
    assert table[3] == ("1 passed, 1 failed, 1 skipped, 1 expected failures (known kernel "
                        "failures, negative controls caught)")


def test_a_scenario_not_run_on_an_arch_shows_a_dash():
    table = summary([Outcome("a", "x86_64", "pass"), Outcome("b", "s390x", "pass")])
    assert table.splitlines()[1].split() == ["a", "pass", "0.0s", "-"]


def test_xdist_schedules_by_the_arch_in_a_test_id():
    from harness.pytest_plugin import _ARCH_IN_ID
    scope = {nodeid: (m.group(1) if (m := _ARCH_IN_ID.search(nodeid)) else None) for nodeid in (
        "scenarios/smoke/klp-cmdline.yaml::klp-cmdline[s390x]",
        "tests/integration/test_failures.py::test_panic[x86_64]",
        "tests/integration/test_x.py::test_y[ppc64le-big]",
        "tests/unit/test_summary.py::test_one_row_per_scenario_one_column_per_arch")}
    assert list(scope.values()) == ["s390x", "x86_64", "ppc64le", None]


def test_the_table_names_the_kernel_each_arch_ran():
    table = summary([Outcome("a", "x86_64", "pass", kernel="7.3.4"),
                     Outcome("a", "arm64", "pass", kernel="7.3.4-dirty")]).splitlines()
    assert table[0] == "kernels: x86_64 7.3.4, arm64 7.3.4-dirty"
    assert table[1].split() == ["scenario", "x86_64", "arm64"]


def test_each_run_has_its_own_artifacts_dir_and_latest_points_to_the_newest(tmp_path):
    from harness.options import Options
    from harness.session import Session
    first = Session(Options(artifacts=tmp_path, run_id="run-1"))
    second = Session(Options(artifacts=tmp_path))
    assert first.run_dir == tmp_path / "run-1"
    assert second.run_dir.parent == tmp_path and second.run_id != "run-1"
    assert (tmp_path / "latest").resolve() == second.run_dir
    assert first.run_dir.is_dir() and second.run_dir.is_dir()
    # the caller's options stay as given: one Options can make several sessions
    assert first.options.artifacts == tmp_path and second.options.run_id == ""


def _repeated(scenario, arch, statuses, seconds=2.0):
    return [Outcome(scenario, arch, st, seconds=seconds, run=i + 1)
            for i, st in enumerate(statuses)]


def test_a_repeated_cell_gives_its_failed_runs_as_k_of_n_with_the_interval():
    outcomes = (_repeated("consistency/chain", "x86_64", ["xfail"] * 5 + ["pass"] * 15)
                + _repeated("consistency/chain", "s390x", ["pass"] * 20)
                + _repeated("smoke/a", "x86_64", ["pass", "fail"])   # stopped at run 2
                + _repeated("smoke/a", "s390x", ["skip"] * 20, seconds=0.0))
    table = summary(outcomes, 20).splitlines()
    assert table[0].split() == ["scenario", "x86_64", "s390x"]
    assert table[1] == ("consistency/chain  xfail 5/20 (95% CI 11%–47%) 2.0s  "
                        "pass  0/20 (95% CI 0%–16%) 2.0s")
    assert table[2] == "smoke/a            fail  1/2 (95% CI 9%–91%) 2.0s    skip    0.0s"
    assert table[3].startswith("36 passed, 1 failed, 20 skipped, 5 expected failures")
    assert table[4] == ("--repeat 20: a cell's failed runs (fail, xfail) of those that ran, "
                        "their 95% Wilson interval, the mean time")
    assert table[5] == "ran fewer than 20 times: smoke/a[x86_64] 2"


def test_one_run_per_cell_keeps_the_table_as_it_was():
    """N = 1: no rate, no --repeat line (the table of the first test above, unchanged);
    the control: the same outcomes numbered as runs do get them."""
    once = [Outcome("a", "x86_64", "pass", seconds=1.23), Outcome("a", "s390x", "fail")]
    assert summary(once, 1) == summary(once) == (
        "scenario  x86_64        s390x\n"
        "a         pass    1.2s  fail    0.0s\n"
        "1 passed, 1 failed, 0 skipped")
    for o in once:
        o.run = 1
    assert "(95% CI" in summary(once, 1) and "--repeat 1:" in summary(once, 1)
