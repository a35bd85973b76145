"""A livepatch test written in Python with klp-harness's pytest fixtures: what a scenario
file does, as code. Runs on every architecture of the image (one test id per arch):

    ./klp test examples/                      # or: pytest examples/ --arch x86_64

`klp_livetest()` gives a block on the arch's booted guest. Each call is the scenario step of
the same name (scenarios/README.md), and leaving the block does what ends every scenario:
kernel splats fail the test, patches are disabled and modules unloaded, and shadow
variables left live are a leak. A failing test keeps its artifacts (kernel log, console,
commands, sysfs) under artifacts/failed/<test>[<arch>]/.
"""
from pathlib import Path

import pytest

PATCHED = "klp_cmdline: patched by klp-harness\n"


def test_klp_cmdline_patches_and_unpatches_proc_cmdline(klp_livetest):
    with klp_livetest() as t:
        t.load("klp_cmdline")                       # insmod, then waits for the transition
        t.sysfs({"klp_cmdline/enabled": 1, "klp_cmdline/transition": 0,
                 "klp_cmdline/vmlinux/patched": 1})
        assert t.run("cat /proc/cmdline").stdout == PATCHED
        t.shadow({"total": 0})                      # it adds no shadow variables
        t.disable("klp_cmdline")                    # waits until it leaves sysfs
        t.sysfs({"klp_cmdline": "absent"})
        t.unload("klp_cmdline")
        assert "klp_harness.boot=" in t.run("cat /proc/cmdline").stdout
        t.log({"contains": ["livepatch: 'klp_cmdline': patching complete",
                            "livepatch: 'klp_cmdline': unpatching complete"]})
        assert "% rmmod klp_cmdline" in t.kernel_log()


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="the failing variant: shows the message a user gets")
def test_unloading_a_patch_still_enabled_fails_naming_the_line(klp_livetest):
    """Fails, on purpose: the patch is never disabled. The failure reads
    `step 2, unload (examples/test_livepatch_cmdline.py:<line>): livepatch klp_cmdline is
    still enabled, ...: disable it first` and the block's end still cleans up."""
    with klp_livetest() as t:
        t.load("klp_cmdline")
        t.unload("klp_cmdline")


MY_FIX = Path(__file__).parent / "my-livepatches" / "cmdline-fix.patch"


def test_a_livepatch_built_from_a_source_patch(klp_livetest):
    """`livepatches=` builds a livepatch from patches with the kernel's klp-build (x86_64;
    other arches skip, saying why), named as the steps use it."""
    with klp_livetest(livepatches={"my_cmdline_fix": MY_FIX}) as t:
        t.load("my_cmdline_fix")
        assert t.run("cat /proc/cmdline").stdout.endswith(" my_fix=applied\n")
        t.disable("my_cmdline_fix")
        t.unload("my_cmdline_fix")
        assert "my_fix=applied" not in t.run("cat /proc/cmdline").stdout
