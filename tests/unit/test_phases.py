"""Where a run's time goes (harness/phases.py): a phase's wall time is when any thread was
in it and not in a phase nested in it; its CPU time is its threads' own and the processes
they waited for, so phases that run side by side are not counted twice."""
import json
import sys
import threading
import time

import pytest

from harness import phases

BURN = [sys.executable, "-c", "import time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass"]


@pytest.fixture(autouse=True)
def fresh():
    phases.reset()
    yield
    phases.reset()


def by_name():
    return {p.name: p for p in phases.totals()}


def test_a_child_process_cpu_goes_to_the_phase_of_the_thread_that_waited_for_it():
    with phases.phase("kernel x86_64"):
        proc = phases.Popen(BURN)
        assert proc.wait() == 0
    with phases.phase("image x86_64"):
        phases.run(BURN, check=True)
    found = by_name()
    assert found["kernel x86_64"].cpu >= 0.25 and found["image x86_64"].cpu >= 0.25
    assert proc.cpu >= 0.25


def test_a_process_found_ended_by_poll_counts_for_the_phase_it_is_named_for():
    """A guest's QEMU: whichever thread's poll() sees it end, its CPU is its arch's."""
    proc = phases.Popen(BURN, phase="scenarios x86_64")
    while proc.poll() is None:
        time.sleep(0.05)
    assert proc.cpu >= 0.25 and by_name()["scenarios x86_64"].cpu >= 0.25


def test_a_nested_phase_is_taken_out_of_the_outer_one():
    with phases.phase("image s390x"):
        time.sleep(0.1)
        with phases.phase("kernel s390x"):
            time.sleep(0.3)
            phases.run(BURN, check=True)
    found = by_name()
    assert found["kernel s390x"].wall >= 0.3 and found["kernel s390x"].cpu >= 0.25
    assert 0.1 <= found["image s390x"].wall < found["kernel s390x"].wall
    assert found["image s390x"].cpu < found["kernel s390x"].cpu   # the child was the kernel's


def test_one_phase_in_two_threads_at_once_is_its_union_not_its_sum():
    took = []
    started = threading.Barrier(2)

    def guest():
        started.wait()
        t = time.monotonic()
        with phases.phase("scenarios arm64"):
            time.sleep(0.4)
        took.append(time.monotonic() - t)
    threads = [threading.Thread(target=guest) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(took) <= by_name()["scenarios arm64"].wall + 0.01 < sum(took)


def test_a_failed_command_is_an_error_and_its_cpu_still_counts():
    with phases.phase("modules x86_64"):
        with pytest.raises(Exception):
            phases.run([sys.executable, "-c", "raise SystemExit(3)"], check=True)
        assert phases.run([sys.executable, "-c", "raise SystemExit(3)"]).returncode == 3


def test_phases_of_earlier_processes_reach_the_run_and_the_table(tmp_path, monkeypatch):
    shared = tmp_path / "klp-phases"
    shared.write_text(json.dumps({"name": "Python environment", "wall": 12.0, "cpu": 9.5})
                      + "\n")
    monkeypatch.setenv(phases.ENV, str(shared))
    phases.record_external("host packages", 20.0, 3.0)
    with phases.phase("kernel x86_64"):
        phases.run(BURN, check=True)
    table = phases.finish(tmp_path / "run", time.monotonic() - 1.0, cores=2)
    lines = table.splitlines()
    assert lines[1].split()[:4] == ["Python", "environment", "12.0s", "9.5s"]
    assert lines[2].split()[:4] == ["host", "packages", "20.0s", "3.0s"]
    assert lines[3].startswith("kernel x86_64")
    whole = next(l for l in lines if l.startswith("the whole run")).split()
    assert float(whole[3].rstrip("s")) >= 33.0   # 12 + 20 + this process's second
    assert "a floor of" in lines[-1]
    written = json.loads((tmp_path / "run" / "phases.json").read_text())
    assert [p["name"] for p in written["phases"]] == [
        "Python environment", "host packages", "kernel x86_64"]
    assert not shared.exists()   # ./klp made it for this one run
