"""The Debian distribution-kernel image stays usable for distribution QA (--image NAME):
built from bookworm's amd64 kernel package, booted, and livepatched by the parity scenario
for upstream's "basic function patching"."""
import pytest

from harness import image as imagemod
from harness.pytest_plugin import selected_arches
from harness.scenario import Scenario
from harness.session import Options, Session

pytestmark = pytest.mark.vm

IMAGE = "debian-bookworm"


def test_the_distribution_kernel_livepatches_cmdline(request, tmp_path):
    if "x86_64" not in selected_arches(request.config):
        pytest.skip(f"{IMAGE} is an x86_64 image and x86_64 is not selected")
    session = Session(Options(image=IMAGE, accel=request.config.getoption("klp_accel"),
                              artifacts=tmp_path))
    try:
        image = session.state("x86_64").image
        assert image.kernel_release.endswith("-amd64")   # Debian's own kernel, not ours
        scenario = Scenario.load(imagemod.PROJECT / "scenarios/parity/livepatch/basic-function-patching.yaml")
        outcome = session.run_scenario(scenario, "x86_64")
        assert outcome.status == "pass", outcome.message
    finally:
        session.close()
