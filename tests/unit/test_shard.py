"""Shards (harness/shard.py): K/N and the CI engines' variables, and the split itself over
the real scenario tree: for every N from 1 to 7 the shards add up to exactly the unsharded
selection, each cell in one shard, the same split whatever order the cells come in, and
balanced by the shipped durations; the check the merge makes catches a split that is not."""
import argparse
import json
import re

import pytest

from harness import arch as archmod, cli, shard
from harness.outcome import Outcome
from harness.paths import SCENARIOS, SHARD_DURATIONS
from harness.runrecord import write_outcomes
from harness.scenario import Scenario, discover
from harness.shard import Shard, ShardError


@pytest.mark.parametrize("text, want", [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3)),
                                        ("7/7", Shard(7, 7)), (" 3/12 ", Shard(3, 12))])
def test_k_of_n(text, want):
    assert shard.parse(text) == want and str(want) == text.strip()


@pytest.mark.parametrize("text", ["0/3", "4/3", "x", "3", "1/0", "-1/3", "1/3/5", "", "a/b"])
def test_a_bad_k_of_n_is_a_usage_error(text, capsys):
    with pytest.raises(ShardError, match=r"takes K/N"):
        shard.parse(text)
    with pytest.raises(SystemExit) as exit:   # the command line: exit 2, naming the value
        cli.parser().parse_args(["run", f"--shard={text}"])
    assert exit.value.code == 2 and f"got {text!r}" in capsys.readouterr().err


@pytest.mark.parametrize("environ, total, want", [
    ({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}, None, Shard(2, 3)),    # GitLab parallel: 3
    ({"CI_NODE_TOTAL": "1"}, None, None),                # GitLab, a job not parallel
    ({}, None, None),
    ({"JOB_COMPLETION_INDEX": "0"}, 4, Shard(1, 4)),     # Kubernetes: 0-based
    ({"JOB_COMPLETION_INDEX": "3", shard.TOTAL_ENV: "4"}, None, Shard(4, 4)),
    ({"JOB_COMPLETION_INDEX": "3", shard.TOTAL_ENV: "9"}, 4, Shard(4, 4)),   # the flag first
])
def test_the_engines_variables_name_the_shard(environ, total, want):
    assert shard.from_environment(total, environ) == want


@pytest.mark.parametrize("environ, total, message", [
    ({"CI_NODE_INDEX": "2"}, None, r"CI_NODE_INDEX is set without \$CI_NODE_TOTAL"),
    ({"CI_NODE_INDEX": "x", "CI_NODE_TOTAL": "3"}, None, r"\$CI_NODE_INDEX='x'"),
    ({"CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "3"}, None, r"got '4/3'"),
    ({"JOB_COMPLETION_INDEX": "1"}, None, r"give --shard-total N"),
    ({"JOB_COMPLETION_INDEX": "4"}, 4, r"got '5/4'"),
    ({"JOB_COMPLETION_INDEX": "-1"}, 4, r"JOB_COMPLETION_INDEX='-1'"),
    ({}, 3, r"--shard-total 3 without a shard index"),   # else every job runs everything
])
def test_wrong_engine_variables_are_errors_naming_them(environ, total, message):
    with pytest.raises(ShardError, match=message):
        shard.from_environment(total, environ)


def test_the_flag_wins_over_the_engine_and_must_agree_with_shard_total():
    gitlab = {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"}
    assert shard.plan(Shard(3, 5), None, None, gitlab).shard == Shard(3, 5)
    assert shard.plan(None, None, None, gitlab).shard == Shard(1, 2)
    with pytest.raises(ShardError, match="disagree"):
        shard.plan(Shard(3, 5), 4, None, {})


def real_cells():
    """Every scenario of the tree on every arch: the selection of `klp-harness run`."""
    ids = [Scenario.load(path).id for path in discover([SCENARIOS])]
    return [shard.cell(i, a) for i in ids for a in archmod.NAMES]


@pytest.mark.parametrize("n", range(1, 8))
def test_the_shards_of_the_real_tree_add_up_to_the_selection(n):
    cells = real_cells()
    plan = shard.plan(Shard(1, n), None, None, {})
    parts = plan.split(cells)
    assert len(parts) == n and all(parts)           # no shard empty: N <= cells
    assert sorted(c for p in parts for c in p) == sorted(set(cells))   # each cell once
    shard.check_partition(cells, {f"{k + 1}/{n}": p for k, p in enumerate(parts)})
    assert plan.split(list(reversed(cells))) == parts == plan.split(cells)   # deterministic
    assert [shard.plan(Shard(k, n), None, None, {}).mine(cells) for k in range(1, n + 1)] \
        == parts
    cost = {c: max(shard.MIN_SECONDS, plan.durations.get(c, 0)) for c in cells}
    loads = [sum(cost[c] for c in p) for p in parts]
    assert max(loads) - min(loads) <= max(cost.values())   # greedy LPT's bound


def test_the_shipped_durations_cover_the_tree_from_a_real_run():
    shipped = shard.read_durations(SHARD_DURATIONS)
    cells = set(real_cells())
    known = cells & set(shipped)
    assert len(known) >= 0.9 * len(cells), sorted(cells - known)[:10]
    assert max(shipped.values()) > 30 and min(shipped.values()) >= 0


def test_the_check_catches_a_split_that_does_not_add_up():
    """The negative control of the test above, and what merge refuses: a cell in two
    shards, a cell in none, a cell not selected."""
    cells = real_cells()
    parts = shard.split(cells, 3, {})
    twice = {"1/3": parts[0] + parts[1][:1], "2/3": parts[1], "3/3": parts[2]}
    with pytest.raises(ShardError, match=re.escape(f"cell {parts[1][0]} is in shard 1/3 "
                                                   "and in shard 2/3")):
        shard.check_partition(cells, twice)
    with pytest.raises(ShardError, match=r"1 cell\(s\) of the selection are in no shard"):
        shard.check_partition(cells, {"1/3": parts[0][1:], "2/3": parts[1], "3/3": parts[2]})
    with pytest.raises(ShardError, match=r"cell nope\[x86_64\] of shard 3/3 is not in"):
        shard.check_partition(cells, {"1/3": parts[0], "2/3": parts[1],
                                      "3/3": parts[2] + ["nope[x86_64]"]})
    # Jobs that split by other durations: the shards overlap, or leave cells out.
    other = shard.split(cells, 3, {c: float(len(c)) for c in cells})
    with pytest.raises(ShardError):
        shard.check_partition(cells, {"1/3": parts[0], "2/3": other[1], "3/3": parts[2]})


def test_more_shards_than_cells_leave_the_last_ones_empty():
    parts = shard.split(["a[x86_64]", "b[x86_64]", "c[s390x]"], 5, {"a[x86_64]": 9.0})
    assert parts == [["a[x86_64]"], ["b[x86_64]"], ["c[s390x]"], [], []]


def test_longest_first_onto_the_least_loaded_ties_by_name():
    d = {"a": 10.0, "b": 6.0, "c": 5.0, "d": 4.0, "e": 0.0}   # e counts as MIN_SECONDS
    assert shard.split("edcba", 2, d) == [["a", "d"], ["b", "c", "e"]]
    # unknown cells count as the median of the known ones (5.0 here); b's tie: shard 1
    assert shard.split(["y", "x", "b", "a"], 2, {"a": 10.0, "b": 0.0}) == [["a", "b"],
                                                                          ["x", "y"]]


def test_durations_from_a_file_or_a_previous_runs_outcomes(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"cells": {"a[x86_64]": 3}}))
    assert shard.read_durations(tmp_path / "d.json") == {"a[x86_64]": 3.0}
    run = tmp_path / "run"
    run.mkdir()
    write_outcomes(run, [Outcome("a", "x86_64", "pass", seconds=s, run=r)
                         for r, s in ((1, 2.0), (2, 4.0), (3, 9.0))]
                   + [Outcome("b", "s390x", "skip", seconds=0.0)], "linux-7.3")
    want = {"a[x86_64]": 4.0, "b[s390x]": 0.0}   # a repeated cell's median
    assert shard.read_durations(run / "outcomes.json") == want == shard.read_durations(run)
    plan = shard.plan(Shard(1, 2), None, run, {})
    assert plan.durations["a[x86_64]"] == 4.0 and len(plan.durations) > 2   # over the shipped
    for bad, message in (("[1, 2]", "expected"), ("{", "not readable"),
                         ('{"cells": {"a": "x"}}', "'a' has no number")):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ShardError, match=message):
            shard.read_durations(tmp_path / "bad.json")


def test_the_table_gives_every_front_end_the_shard_options():
    from harness import options
    p = argparse.ArgumentParser()
    options.add_to_parser(p, options.SHARDS)
    args = p.parse_args(["--shard", "2/4", "--shard-total", "4"])
    assert options.shard_plan(lambda d: getattr(args, d)).shard == Shard(2, 4)
