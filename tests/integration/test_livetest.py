"""Python tests (livetest.LiveTest, the klp_livetest fixture) end as scenarios do: a failed
step names the test's line, a splat and a shadow variable leak fail the test after its
last line, and the clean-up runs whatever happened."""
import re

import pytest

from harness import livepatch
from harness.runner import StepFailed

pytestmark = pytest.mark.vm


def test_a_failed_step_names_the_line_and_the_block_still_cleans_up(klp_livetest,
                                                                     klp_harness_session,
                                                                     klp_arch):
    with pytest.raises(StepFailed) as info:
        with klp_livetest() as t:
            t.load("klp_cmdline")
            t.unload("klp_cmdline")
    assert re.match(rf"step 2, unload \({re.escape(__file__)}:\d+\): livepatch klp_cmdline "
                    r"is still enabled", str(info.value)), str(info.value)
    guest = klp_harness_session.guest(klp_arch)
    assert "klp_cmdline" not in livepatch.read_all(guest)
    assert "klp_cmdline" not in livepatch.loaded_modules(guest)
    assert t.outcome.cleanup == ["disabled klp_cmdline", "unloaded klp_cmdline"]


def test_a_splat_fails_the_test_after_its_last_line(klp_livetest):
    with pytest.raises(StepFailed, match="kernel splat during the scenario"):
        with klp_livetest() as t:
            t.load("klp_splat")          # a target module that warns in its init
            t.unload("klp_splat")
    with klp_livetest(expect_splat=True) as t:   # unless the test says it expects one
        t.load("klp_splat")
        t.unload("klp_splat")


def test_a_shadow_variable_leak_fails_the_test(klp_livetest, klp_harness_session, klp_arch):
    if klp_harness_session.state(klp_arch).counter is None:
        pytest.skip("no shadow variable counter on this guest")
    with pytest.raises(StepFailed, match=r"^shadow variable leak: shadow id 0x5e551: 10 live"):
        with klp_livetest() as t:
            t.load("klp_sessions")
            t.load("klp_sessions_bad_leak")
            t.run("echo create 10 > /proc/klp_sessions; cat /proc/klp_sessions", check=True)
            t.shadow({0x5e551: 10})
            t.disable("klp_sessions_bad_leak")
            t.unload("klp_sessions_bad_leak")
            t.unload("klp_sessions")
