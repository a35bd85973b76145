"""Shards under both front ends, with faked guests (Session.run_scenario replaced; the
commands run in subprocesses): pytest (under xdist too) and `klp-harness run` give each
shard the same cells, from --shard or the CI engine's variables; the shards add up to the
selection; pytest's shard dirs merge into what the unsharded run found; a shard left
without a cell exits 0 saying so; a wrong shard is a usage error.
tests/integration/test_shards.py runs real guests."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness import image as imagemod, shard
from harness.runrecord import RunRecord, read_outcomes

FAKE = textwrap.dedent("""\
    import time
    from harness.outcome import Outcome, Status
    from harness.session import Session

    def run_scenario(self, scenario, arch, slot=0):
        time.sleep(0.05)
        failed = scenario.id.endswith("c") and arch == "s390x"
        return Outcome(scenario.id, arch, Status.FAIL if failed else Status.PASS,
                       "it failed" if failed else "", seconds=0.05)
    Session.run_scenario = run_scenario
    Session.prepare = lambda self, *args, **kw: None
    """)
NAMES = "abcde"
ARCHES = ["--arch", "x86_64", "--arch", "s390x"]
SELECTION = sorted(shard.cell(f"mine/{n}", a) for n in NAMES for a in ("x86_64", "s390x"))


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "fakeguests.py").write_text(FAKE)
    scenarios = tmp_path / "scenarios" / "mine"
    scenarios.mkdir(parents=True)
    for name in NAMES:
        (scenarios / f"{name}.yaml").write_text("steps:\n  - run: 'true'\n")
    return tmp_path


def _env(tree, **extra):
    env = {k: v for k, v in os.environ.items() if k not in shard.ENGINE_VARIABLES}
    return dict(env, PYTHONPATH=os.pathsep.join([str(imagemod.PROJECT), str(tree)]),
                KLP_HARNESS_CACHE=str(tree / "cache"), **extra)


def pytest_run(tree, artifacts, *args, paths=("scenarios",), **env):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "fakeguests", "-p",
                           "no:cacheprovider", *ARCHES, "--klp-artifacts",
                           str(tree / artifacts), *args, *paths], cwd=tree,
                          env=_env(tree, **env), capture_output=True, text=True, timeout=120)


def klp_run(tree, artifacts, *args, **env):
    code = ("import sys, fakeguests; from harness import cli; "
            "sys.exit(cli.main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "run", *ARCHES, "--artifacts",
                           str(tree / artifacts), *args, "scenarios"], cwd=tree,
                          env=_env(tree, **env), capture_output=True, text=True, timeout=120)


def record(tree, artifacts) -> RunRecord:
    return RunRecord.read((tree / artifacts / "latest").resolve())


def test_both_front_ends_split_alike_and_pytests_shards_merge(tree):
    """Shard 2 learns its place from GitLab's variables, the others from --shard; pytest's
    shards run under xdist (-n 2), whose controller writes the run dir."""
    for k in (1, 2, 3):
        how = {"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": "3"} if k == 2 else {}
        flag = [] if k == 2 else ["--shard", f"{k}/3"]
        ran = pytest_run(tree, f"p{k}", "-n", "2", *flag, **how)
        assert ran.returncode in (0, 1), ran.stdout[-3000:] + ran.stderr[-3000:]
        assert f"shard {k}/3: " in ran.stdout
        ran = klp_run(tree, f"r{k}", *flag, **how)
        assert ran.returncode in (0, 1), ran.stdout[-3000:] + ran.stderr[-3000:]
        assert record(tree, f"p{k}").cells == record(tree, f"r{k}").cells   # one rule
    parts = [record(tree, f"p{k}").cells for k in (1, 2, 3)]
    assert all(parts) and sorted(sum(parts, [])) == SELECTION
    assert record(tree, "p1").selection == SELECTION == record(tree, "r3").selection
    whole = pytest_run(tree, "whole", "-n", "0")
    assert whole.returncode == 1, whole.stdout[-3000:]
    dirs = [str((tree / f"p{k}" / "latest").resolve()) for k in (1, 2, 3)]
    merged = subprocess.run([sys.executable, "-m", "harness.cli", "merge", *dirs, "-o",
                             str(tree / "merged")], cwd=tree, env=_env(tree),
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 1, merged.stderr   # mine/c failed on s390x

    def statuses(d):
        return sorted((shard.cell(o.scenario, o.arch), str(o.status))
                      for o in read_outcomes(d)[0])
    assert statuses(tree / "merged") == statuses((tree / "whole" / "latest").resolve())
    assert len(statuses(tree / "merged")) == len(SELECTION)


def test_a_shard_without_a_cell_exits_0_saying_so(tree):
    """Eleven shards of ten cells: the eleventh has nothing to run, which is no failure of
    the CI job; its run dir says so, and a merge still needs it."""
    ran = pytest_run(tree, "p", "--shard", "11/11", "-n", "0")
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert "shard 11/11: 0 of the selection's 10 cells (more shards than cells: nothing " \
        "to run)" in ran.stdout
    assert record(tree, "p").cells == [] and record(tree, "p").selection == SELECTION
    ran = klp_run(tree, "r", "--shard", "11/11")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "shard 11/11 has no cell to run: the selection has 10 cell(s) for 11 shards" \
        in ran.stdout
    assert json.loads(((tree / "r" / "latest").resolve() / "outcomes.json").read_text())[
        "outcomes"] == []
    control = pytest_run(tree, "q", "--shard", "10/11", "-n", "0")   # it has a cell
    assert control.returncode == 0 and "1 passed" in control.stdout, control.stdout


@pytest.mark.parametrize("args, env, message", [
    (["--shard", "4/3"], {}, "got '4/3'"),
    ([], {"JOB_COMPLETION_INDEX": "1"}, "give --shard-total N"),
    ([], {"CI_NODE_INDEX": "x", "CI_NODE_TOTAL": "3"}, "$CI_NODE_INDEX='x'"),
])
def test_a_wrong_shard_is_a_usage_error_in_both(tree, args, env, message):
    ran = pytest_run(tree, "p", *args, "-n", "0", **env)
    assert ran.returncode == pytest.ExitCode.USAGE_ERROR and message in ran.stderr, ran.stderr
    ran = klp_run(tree, "r", *args, **env)
    assert ran.returncode == 2 and message in ran.stderr, ran.stderr
    assert not list((tree / "r").glob("run-*")) and not (tree / "p").exists()   # no run


def test_a_test_that_starts_pytest_itself_does_not_inherit_the_shard(tree):
    """The engine's variables are taken out of the environment once read: the harness's
    own tests start klp-harness and pytest, which must run their whole selections."""
    (tree / "test_nested.py").write_text(
        "import os\n\ndef test_no_shard_variables_here():\n"
        "    assert not {'CI_NODE_INDEX', 'CI_NODE_TOTAL'} & set(os.environ)\n")
    for workers in ("0", "2"):
        ran = pytest_run(tree, f"p{workers}", "-n", workers, paths=("test_nested.py",),
                         CI_NODE_INDEX="1", CI_NODE_TOTAL="1")
        assert ran.returncode == 0 and "1 passed" in ran.stdout, ran.stdout[-3000:]
        assert "shard 1/1: 1 of the selection's 1 cells" in ran.stdout
