"""The version range stays honest: the oldest recipe the harness supports (Linux 6.1, from
Debian bookworm's source) still configures with the shared fragments, builds, boots and
passes the smoke scenarios, and the results name the kernel that ran."""
import pytest

from harness import image as imagemod
from harness.pytest_plugin import selected_arches
from harness.scenario import Scenario, discover
from harness.options import Options
from harness.report import summary
from harness.session import Session

OLDEST = "linux-6.1"
ARCH = "x86_64"
pytestmark = [pytest.mark.vm, pytest.mark.klp_image(OLDEST, arch=ARCH)]


def test_the_oldest_recipe_boots_and_passes_the_smoke_scenarios(request, tmp_path):
    if ARCH not in selected_arches(request.config):
        pytest.skip(f"{ARCH} is not among the selected arches")
    scenarios = [Scenario.load(p) for p in discover([imagemod.PROJECT / "scenarios" / "smoke"])]
    session = Session(Options(image=OLDEST, artifacts=tmp_path))
    try:
        outcomes = session.run_all(scenarios, [ARCH])
    finally:
        session.close()
    table = summary(outcomes)
    assert len(outcomes) == len(scenarios) >= 1, table
    assert all(o.status == "pass" for o in outcomes), table
    assert table.startswith(f"kernels: {ARCH} 6.1."), table
