"""A pool of guests per arch gives the same per-scenario results as one guest: two topic
directories (one of them changes ftrace's global state) on two arches, once on one guest
per arch and once on a pool of two, on real guests. Each guest of the pool has its own
machine dir (sockets, run key, console log)."""
import pytest

from harness import image as imagemod
from harness.pytest_plugin import selected_arches
from harness.scenario import Scenario, discover
from harness.options import Options
from harness.session import Session

PARITY = imagemod.PROJECT / "scenarios" / "parity"
pytestmark = pytest.mark.vm


def test_a_pool_gives_the_same_results_as_one_guest(request, tmp_path):
    arches = selected_arches(request.config)[:2]
    scenarios = [Scenario.load(p) for p in discover([PARITY / "livepatch", PARITY / "ftrace"])]
    results, runs = {}, {}
    for guests in (1, 2):
        session = Session(Options(image=request.config.getoption("klp_image"),
                                  accel=request.config.getoption("klp_accel"),
                                  artifacts=tmp_path / f"pool-{guests}"))
        try:
            outcomes = session.run_all(scenarios, arches, pool=guests)
        finally:
            session.close()
        results[guests] = {(o.scenario, o.arch): o.status for o in outcomes}
        runs[guests] = session.run_dir
    assert len(results[1]) == len(scenarios) * len(arches)
    assert results[2] == results[1]
    assert "fail" not in results[1].values(), results[1]
    for a in arches:   # each guest of the pool booted in a dir of its own
        assert len(list((runs[2] / "machines").glob(f"{a}-*/console.log"))) == 2
        assert len(list((runs[1] / "machines").glob(f"{a}-*/console.log"))) == 1
