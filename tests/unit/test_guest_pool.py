"""The pool of guests per arch (harness/pool.py, Session.run_all): its size, the spread of
tests over guests by expected duration, and run_all's sharing of an arch's queue, with the
scenario runs faked (tests/integration/test_pool.py runs real guests)."""
import threading
import time
from types import SimpleNamespace

import pytest

from harness import pool
from harness.outcome import Outcome
from harness.options import Options
from harness.session import Session


def test_spread_puts_the_longest_first_onto_the_least_loaded_guest():
    expected = {"a": 10, "b": 8, "c": 5, "d": 4, "e": 3}
    where = pool.spread(list(expected), 2, expected)
    loads = [sum(expected[k] for k, g in where.items() if g == n) for n in (0, 1)]
    assert where["a"] != where["b"] and sorted(loads) == [14, 16]


def test_tests_never_timed_count_as_the_median():
    where = pool.spread(["new1", "new2", "old1", "old2"], 2, {"old1": 1.0, "old2": 3.0})
    assert sorted(where.values()) == [0, 0, 1, 1]
    assert pool.longest_first(["x", "y", "z", "y"], {"y": 5, "z": 1}) == [0, 1, 3, 2]


def test_size_follows_cores_and_memory(monkeypatch):
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(pool, "available_mb", lambda: 100_000)
    assert pool.size(4, 512) == 2                  # one per core
    monkeypatch.setattr(pool, "available_mb", lambda: 3000)
    assert pool.size(4, 512) == 1                  # 4 arches x 712 MiB fill 3/4 of 3000
    assert pool.size(4, 512, requested=3) == 3     # --pool decides


def test_durations_are_kept_per_image(tmp_path):
    first = pool.Durations("linux-7.3", tmp_path / "durations.json")
    first.record([("a[x86_64]", 1.234), ("b[x86_64]", 2.0)])
    pool.Durations("other", tmp_path / "durations.json").record([("a[x86_64]", 9.0)])
    assert pool.Durations("linux-7.3", tmp_path / "durations.json").expected() == \
        {"a[x86_64]": 1.23, "b[x86_64]": 2.0}


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    return Session(Options(artifacts=tmp_path / "artifacts"))


def fake_runs(session, monkeypatch, seconds):
    """run_scenario answers at once (after a short sleep), noting which guest ran what."""
    ran, lock = [], threading.Lock()

    def run_scenario(sc, arch, slot=0):
        time.sleep(0.01)
        with lock:
            ran.append((sc.id, arch, slot))
        return Outcome(sc.id, arch, "pass", seconds=seconds.get(sc.id, 1.0))

    monkeypatch.setattr(session, "run_scenario", run_scenario)
    return ran


def test_run_all_shares_each_arch_among_its_guests_and_keeps_the_order(session, monkeypatch):
    scenarios = [SimpleNamespace(id=f"s{i}") for i in range(12)]
    ran = fake_runs(session, monkeypatch, {})
    outcomes = session.run_all(scenarios, ["x86_64", "s390x"], pool=3)
    assert [(o.scenario, o.arch) for o in outcomes] == \
        [(f"s{i}", a) for a in ("x86_64", "s390x") for i in range(12)]
    assert len(ran) == 24 and {slot for _, _, slot in ran} == {0, 1, 2}
    assert all({s for _, a, s in ran if a == arch} == {0, 1, 2} for arch in ("x86_64", "s390x"))


def test_run_all_runs_a_scenario_given_twice_twice(session, monkeypatch):
    twice = SimpleNamespace(id="same")
    ran = fake_runs(session, monkeypatch, {})
    assert len(session.run_all([twice, twice, twice], ["x86_64"], pool=2)) == 3
    assert len(ran) == 3


def test_run_all_starts_the_longest_expected_and_remembers_the_times(session, monkeypatch):
    scenarios = [SimpleNamespace(id=n) for n in ("short", "long", "middle")]
    pool.Durations(session.options.image).record(
        [("short[x86_64]", 1.0), ("long[x86_64]", 30.0), ("middle[x86_64]", 5.0)])
    ran = fake_runs(session, monkeypatch, {"short": 2.0, "long": 20.0, "middle": 4.0})
    session.run_all(scenarios, ["x86_64"], pool=1)
    assert [r[0] for r in ran] == ["long", "middle", "short"]
    assert pool.Durations(session.options.image).expected()["long[x86_64]"] == 20.0
