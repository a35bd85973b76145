"""A scenario whose expectation is wrong must fail, with a message that points at the step.

Each case is an upstream parity case with one expectation broken on purpose, run on a real
guest: a harness that stops catching any of them goes red here. (A wrong sysfs value and a
load that should fail but succeeds are in test_failures.py.)
"""
import textwrap

import pytest

from harness.scenario import Scenario

pytestmark = pytest.mark.vm

BASIC = """\
    description: broken on purpose
    steps:
      - load: test_klp_livepatch
      - sysfs:
          test_klp_livepatch/enabled: {enabled}
      - disable: test_klp_livepatch
      - unload: test_klp_livepatch
      - log:
          - "% insmod test_modules/test_klp_livepatch.ko"
          - "livepatch: enabling patch 'test_klp_livepatch'"
          - "livepatch: 'test_klp_livepatch': initializing patching transition"
          - "livepatch: 'test_klp_livepatch': starting patching transition"
          - "livepatch: 'test_klp_livepatch': completing patching transition"
          - "livepatch: '{name}': patching complete"
          - "% echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled"
          - "livepatch: 'test_klp_livepatch': initializing unpatching transition"
          - "livepatch: 'test_klp_livepatch': starting unpatching transition"
          - "livepatch: 'test_klp_livepatch': completing unpatching transition"
          - "livepatch: 'test_klp_livepatch': unpatching complete"
          - "% rmmod test_klp_livepatch"
    """


def run(session, arch, tmp_path, text, name="broken"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return session.run_scenario(Scenario.load(path), arch)


def test_the_unbroken_case_passes(klp_harness_session, klp_arch, tmp_path):
    outcome = run(klp_harness_session, klp_arch, tmp_path,
                  BASIC.format(enabled=1, name="test_klp_livepatch"))
    assert outcome.status == "pass", outcome.message


def test_a_wrong_kernel_log_line_fails_at_the_log_step(klp_harness_session, klp_arch, tmp_path):
    outcome = run(klp_harness_session, klp_arch, tmp_path,
                  BASIC.format(enabled=1, name="test_klp_livepatc"))
    assert outcome.status == "fail"
    assert "step 5, log (" in outcome.message and "broken.yaml:8)" in outcome.message
    assert "-livepatch: 'test_klp_livepatc': patching complete" in outcome.message
    assert "+livepatch: 'test_klp_livepatch': patching complete" in outcome.message


def test_a_kernel_warning_fails_the_scenario_unless_expected(klp_harness_session, klp_arch,
                                                             tmp_path):
    steps = "steps:\n  - load: klp_splat\n  - unload: klp_splat\n"
    outcome = run(klp_harness_session, klp_arch, tmp_path, steps)
    assert outcome.status == "fail"
    assert "kernel splat during the scenario" in outcome.message
    assert "klp_splat: a deliberate warning" in outcome.message
    outcome = run(klp_harness_session, klp_arch, tmp_path, "expect-splat: true\n" + steps,
                  name="expected")
    assert outcome.status == "pass", outcome.message
