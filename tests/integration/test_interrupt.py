"""Ctrl-C stops a run within seconds: the guests are shut down, the interrupted scenario's
artifacts are kept, a partial summary is printed, and the exit status is 130."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from harness import image as imagemod
from harness.pytest_plugin import selected_arches

pytestmark = pytest.mark.vm

MARK = "klp-harness-interrupt-me"
LONG = f"""\
description: a step that runs for minutes, to be interrupted
steps:
  - run: echo {MARK} > /dev/kmsg; sleep 300
    timeout: 400
"""


# A pool of two guests on one arch, three times: the interrupted scenarios' outcomes once
# went missing from the summary in about one run of three (a killed guest's error was
# taken for the arch's trouble, not the scenario's end).
@pytest.mark.parametrize("how_many,pool", [(1, 1), (2, 1), (1, 2), (1, 2), (1, 2)],
                         ids=["one-arch", "arches-in-parallel", "pool-of-2-a", "pool-of-2-b",
                              "pool-of-2-c"])
def test_ctrl_c_stops_the_run_at_once_with_a_partial_summary(request, tmp_path, how_many,
                                                             pool):
    arches = selected_arches(request.config)[:how_many]
    if len(arches) < how_many:
        pytest.skip(f"needs {how_many} architectures selected")
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG)
    artifacts = tmp_path / "artifacts"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", *(f"--arch={a}" for a in arches),
         "--accel", request.config.getoption("klp_accel"), "--artifacts", str(artifacts),
         "--pool", str(pool), str(scenario), str(scenario)],
        cwd=imagemod.PROJECT, stdout=open(tmp_path / "out", "w"),
        stderr=open(tmp_path / "err", "w"), env=dict(os.environ, PYTHONPATH=str(imagemod.PROJECT)),
        # As from a terminal: a suite started in the background (`cmd &` in a script) has
        # SIGINT ignored, which its children inherit, and Python then installs no handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # Wait until every guest is in the step: its kernel log line reaches the console.
        deadline = time.monotonic() + 300
        consoles = artifacts / "latest" / "machines"
        while time.monotonic() < deadline:
            assert proc.poll() is None, "klp-harness ended before the step began"
            seen = [c for c in consoles.glob("*/console.log") if MARK in c.read_text()]
            if len(seen) == len(arches) * pool:   # each guest runs one of the two
                break
            time.sleep(0.5)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert took < 60, f"took {took:.1f}s to stop"   # not the step's 400 s timeout
    assert "# interrupted (Ctrl-C): a partial summary" in out, out
    # one arch: the step caught it; in parallel: the step whose guest was stopped
    assert re.search(r"interrupted \(Ctrl-C\)(:| during) step 1, run", out), out
    rows = [line for line in out.splitlines() if line.split()[:1] == [str(scenario)[:-5]]]
    assert rows and all("fail" in r for r in rows), out
    if pool > 1:   # both guests were in the step: both scenario runs are in the summary
        assert re.search(r"^0 passed, 2 failed,", out, re.M), out
    failed = artifacts / "latest" / "failed"
    kept = sorted(p.name for p in failed.iterdir())
    assert any(name.endswith(f"[{arches[0]}]") for name in kept), kept
    assert all((failed / name / "console.log").exists() for name in kept), kept
