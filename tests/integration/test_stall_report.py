"""A stalled transition's timeout names exactly the tasks not yet switched, each with its
stack: here the one task a hold keeps asleep in klp_chain_outer() (scenarios/modules/
klp_chain.c), on every architecture."""
import re

import pytest

from harness.runner import StepFailed

pytestmark = pytest.mark.vm


def test_a_stall_report_lists_exactly_the_unswitched_task_with_its_stack(klp_livetest):
    with klp_livetest() as t:
        t.load("klp_chain")
        t.run("echo uninterruptible > /sys/kernel/klp_chain/hold", check=True)
        pid = t.run("echo 1 > /sys/kernel/klp_chain/call & echo $!", check=True).stdout.strip()
        t.step({"run": "until grep -q '^1 ' /sys/kernel/klp_chain/held; do sleep 0.1; done",
                "timeout": 30})
        t.load("klp_chain_v1", wait=False)
        with pytest.raises(StepFailed) as info:
            t.step({"wait-transition": "klp_chain_v1", "timeout": 5})
        t.run("echo release > /sys/kernel/klp_chain/hold", check=True)
        t.wait_transition("klp_chain_v1")   # released, it completes without force
        t.disable("klp_chain_v1")
        t.unload("klp_chain_v1")
        t.unload("klp_chain")
    report = str(info.value)
    assert "livepatch 'klp_chain_v1' to finish its transition" in report, report
    listed = re.findall(r"^== (\d+)/task/(\d+) (\S+) patch_state=(\d) \(target (\d)\)$",
                        report, re.M)
    assert listed == [(pid, pid, "sh", "0", "1")], report   # that task, and no other
    stack = report.split(f"== {pid}/task/{pid} ", 1)[1]
    assert "klp_chain_hold" in stack and "klp_chain_outer" in stack, report
