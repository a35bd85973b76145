"""--repeat and --until-fail under pytest: N items per scenario x arch, and under
pytest-xdist a cell's failure on one worker stops its runs on the others. Guests are faked
(a plugin that replaces Session.run_scenario), pytest runs in a subprocess;
tests/integration/test_repeat.py runs real ones."""
import os
import subprocess
import sys
import textwrap

import pytest

from harness import image as imagemod

FAKE = textwrap.dedent("""\
    import time
    from harness.outcome import Outcome, Status
    from harness.session import Session

    def pytest_configure(config):
        Session.prepare = lambda self, *args, **kw: None

        def run_scenario(self, scenario, arch, slot=0):
            time.sleep(0.2)   # the workers' first runs overlap; their later ones do not
            failed = "always-fails" in scenario.id
            return Outcome(scenario.id, arch, Status.FAIL if failed else Status.PASS,
                           "it failed" if failed else "", seconds=0.2)
        Session.run_scenario = run_scenario
    """)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "fakeguests.py").write_text(FAKE)
    scenarios = tmp_path / "scenarios" / "mine"
    scenarios.mkdir(parents=True)
    for name in ("always-fails", "passes"):
        (scenarios / f"{name}.yaml").write_text("steps:\n  - run: 'true'\n")
    return tmp_path


def _pytest(tree, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(imagemod.PROJECT), str(tree)]),
               KLP_HARNESS_CACHE=str(tree / "cache"))   # durations.json of its own
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "fakeguests", "-p",
                           "no:cacheprovider", "--arch", "x86_64", "--klp-artifacts",
                           str(tree / "artifacts"), "-rs", *args, "scenarios"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def test_repeat_makes_n_items_per_cell_named_by_their_run(tree):
    result = _pytest(tree, "--repeat", "3", "--collect-only", "-q")
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert ids == [f"scenarios/mine/{name}.yaml::{name}[x86_64{run}]"
                   for name in ("always-fails", "passes") for run in ("", "-run2", "-run3")]


@pytest.mark.parametrize("until_fail", [True, False])
def test_until_fail_stops_a_cell_across_xdist_workers(tree, until_fail):
    """Six runs of a cell that always fails, on two workers (two guests of x86_64): with
    --until-fail only the runs that began before the first failure was recorded run (one
    per worker at most), the rest are skipped saying why; without it (the control) all six
    run and fail."""
    result = _pytest(tree, "-n", "2", "--repeat", "6", *(["--until-fail"] * until_fail))
    out = result.stdout
    table = next(line for line in out.splitlines() if line.startswith("mine/always-fails"))
    assert "pass  0/6 (95% CI 0%–39%)" in next(
        line for line in out.splitlines() if line.startswith("mine/passes"))
    if until_fail:
        k = int(table.split()[2].split("/")[0])
        assert 1 <= k <= 2 and f"{k}/{k} (95% CI" in table, out
        assert f"SKIPPED [{6 - k}] " in out and f"{6 - k} skipped" in out, out
        assert "--until-fail: mine/always-fails[x86_64] already failed (fail) in run " in out
        assert f"ran fewer than 6 times: mine/always-fails[x86_64] {k}" in out
    else:
        assert "fail  6/6 (95% CI 61%–100%) 0.2s" in table, out
        assert "already failed" not in out and "skipped" not in out.splitlines()[-1]
