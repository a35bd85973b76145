"""Failures must be clear and fast: panics, SSH that never answers, broken scenarios."""
import logging
import re
import textwrap
import time
from pathlib import Path

import pytest

from harness import image as imagemod, livepatch
from harness.errors import GuestPanic, QemuStartError, WaitTimeout
from harness.guest import Guest
from harness.machine import Machine, MachineConfig
from harness.scenario import Scenario
from harness.options import Options
from harness.session import Session

pytestmark = pytest.mark.vm


def run_yaml(session, arch, path, text):
    """Write a scenario file and run it on the session's guest: (path, outcome)."""
    path.write_text(text)
    return path, session.run_scenario(Scenario.load(path), arch)


@pytest.fixture
def arch_state(klp_harness_session, klp_arch):
    return klp_harness_session.state(klp_arch)


def test_panic_during_boot_fails_at_once_with_the_console(arch_state, tmp_path):
    # Neither the initramfs's init nor the fallback init exist: the kernel panics at once.
    # (rdinit= alone is not enough: a kernel without block devices then runs /bin/sh.)
    config = MachineConfig(accel=arch_state.accel,
                           extra_cmdline="rdinit=/nonexistent init=/nonexistent")
    with pytest.raises(GuestPanic) as info:
        with Machine(arch_state.image, arch_state.profile, tmp_path, config):
            pass
    assert "Kernel panic - not syncing" in str(info.value)
    assert "console log:" in str(info.value)


def test_qemu_that_quits_while_starting_shows_its_stderr(arch_state, tmp_path):
    # 16 MiB cannot hold the initramfs: QEMU quits after the console connected, before QMP
    # answered. The error must carry QEMU's own reason, not a QMP connection error alone.
    config = MachineConfig(accel=arch_state.accel, memory_mb=16)
    machine = Machine(arch_state.image, arch_state.profile, tmp_path, config)
    try:
        with pytest.raises(QemuStartError) as info:
            machine.boot()
    finally:
        machine.shutdown()
    message = str(info.value)
    assert "QEMU" in message and "command: " in message
    stderr = (tmp_path / "qemu-stderr.log").read_text().strip()
    assert stderr and stderr.splitlines()[-1] in message


def test_an_arch_whose_guest_does_not_boot_fails_its_scenarios_at_once(klp_arch, tmp_path):
    """One boot failure marks the arch broken: its other scenarios fail at once quoting
    it, with no second boot, and the run still ends with every outcome (a summary)."""
    smoke = Scenario.load(imagemod.PROJECT / "scenarios" / "smoke" / "klp-cmdline.yaml")
    session = Session(Options(memory_mb=16, artifacts=tmp_path))   # QEMU cannot start
    try:
        outcomes = session.run_all([smoke, smoke, smoke], [klp_arch])
    finally:
        session.close()
    assert [o.status for o in outcomes] == ["fail"] * 3
    assert all(f"the {klp_arch} guest does not boot (its first failure in this run): QEMU "
               "did not start" in o.message for o in outcomes), outcomes[0].message
    assert session.state(klp_arch).boots == 1   # booted once, not once per scenario


def test_panic_during_a_test_ends_the_command_at_once(arch_state, tmp_path):
    config = MachineConfig(accel=arch_state.accel)
    with Machine(arch_state.image, arch_state.profile, tmp_path, config) as machine:
        start = time.monotonic()
        with pytest.raises(GuestPanic) as info:
            machine.guest.run("echo c > /proc/sysrq-trigger && sleep 600", timeout=600)
        assert time.monotonic() - start < 120, "the panic was not noticed before the timeout"
        assert "sysrq triggered crash" in str(info.value)
        assert not machine.alive()


def test_ssh_that_never_answers_times_out_saying_what_it_waited_for(arch_state, tmp_path):
    # The guest boots to init's ready marker, then its CPUs are stopped (QMP): its sshd
    # never writes a banner on the serial port.
    config = MachineConfig(accel=arch_state.accel, stage_timeouts={"ssh": 5})
    machine = Machine(arch_state.image, arch_state.profile, tmp_path, config)
    try:
        machine.boot(until="init")
        machine.qmp.cmd("stop")
        with pytest.raises(WaitTimeout) as info:
            Guest.connect(machine, timeout=machine.timeout("ssh"))
    finally:
        machine.shutdown()
    message = str(info.value)
    assert "SSH over the guest's virtio serial port" in message and "5.0s" in message
    assert "SSH protocol banner" in message   # what went wrong, from paramiko


def test_a_broken_expectation_fails_naming_the_step_and_cleans_up(klp_harness_session, klp_arch,
                                                                  tmp_path):
    path, outcome = run_yaml(klp_harness_session, klp_arch, tmp_path / "broken.yaml",
                             textwrap.dedent("""\
        steps:
          - load: test_klp_livepatch
          - sysfs:
              test_klp_livepatch/enabled: 0
        """))
    assert outcome.status == "fail"
    assert f"step 2, sysfs ({path}:3)" in outcome.message
    assert "test_klp_livepatch/enabled: expected '0', guest shows '1'" in outcome.message
    # Clean-up ran, so the next scenario finds a clean guest ...
    assert "disabled test_klp_livepatch" in outcome.cleanup
    guest = klp_harness_session.guest(klp_arch)
    assert "test_klp_livepatch" not in livepatch.read_all(guest)
    assert "test_klp_livepatch" not in livepatch.loaded_modules(guest)
    # ... and the evidence was kept.
    artifacts = Path(outcome.message.rsplit("\nartifacts: ", 1)[1])
    assert artifacts.parent == klp_harness_session.run_dir / "failed"
    assert artifacts.name.endswith(f"broken[{klp_arch}]")   # its id: the file's whole path
    for name in ("failure.txt", "kmsg.txt", "console.log", "commands.txt",
                 "sysfs-at-failure.txt", "sysfs-after-cleanup.txt"):
        assert (artifacts / name).stat().st_size > 0, name
    # The snapshot at the failure shows the patch the failing step looked at; after the
    # clean-up it is gone.
    assert "test_klp_livepatch: {" in (artifacts / "sysfs-at-failure.txt").read_text()
    assert "'enabled': '1'" in (artifacts / "sysfs-at-failure.txt").read_text()
    assert "no patches" in (artifacts / "sysfs-after-cleanup.txt").read_text()
    assert "insmod test_modules/test_klp_livepatch.ko" in (artifacts / "commands.txt").read_text()
    steps = (artifacts / "steps.txt").read_text().splitlines()   # each step with its time
    assert [re.sub(r"\d+\.\d+s$", "Ns", s) for s in steps] == [
        f"step 1, load ({path}:2): Ns", f"step 2, sysfs ({path}:3): Ns"]


def test_a_stalled_transition_names_exactly_the_task_holding_it(klp_harness_session,
                                                               klp_arch, tmp_path):
    """test_klp_callbacks_busy's kworker sleeps inside busymod_work_func, which
    test_klp_callbacks_demo patches: the transition cannot end. The report must list that
    task alone (not the tasks already switched) with a stack showing the function, and the
    clean-up must reverse the transition (no force: the reverse needs nothing of it)."""
    path, outcome = run_yaml(klp_harness_session, klp_arch, tmp_path / "stall.yaml",
                             textwrap.dedent("""\
        steps:
          - load: {module: test_klp_callbacks_busy, params: {block_transition: 1}}
          - load: test_klp_callbacks_demo
            timeout: 8
        """))
    assert outcome.status == "fail", outcome.message
    message = outcome.message
    assert "livepatch 'test_klp_callbacks_demo' to finish its transition" in message
    tasks = [line for line in message.splitlines() if line.startswith("== ")]
    assert len(tasks) == 1, message
    assert "kworker" in tasks[0] and tasks[0].endswith("patch_state=0 (target 1)"), message
    stack = message[message.index(tasks[0]):]
    assert "busymod_work_func" in stack, message
    assert ("disabled test_klp_callbacks_demo (its stalled patching transition reversed)"
            in outcome.cleanup), outcome.cleanup
    assert not any(c.startswith("forced") for c in outcome.cleanup), outcome.cleanup
    assert "test_klp_callbacks_demo" not in livepatch.read_all(
        klp_harness_session.guest(klp_arch))


def test_a_panic_in_a_scenario_names_the_step_and_its_time(klp_harness_session, klp_arch,
                                                           tmp_path):
    path, outcome = run_yaml(klp_harness_session, klp_arch, tmp_path / "crash.yaml",
                             "steps:\n  - run: 'true'\n  - run: echo c > /proc/sysrq-trigger\n")
    assert outcome.status == "fail"
    assert outcome.message.startswith(f"step 2, run ({path}:3): the guest died: kernel panic"), \
        outcome.message
    assert "sysrq triggered crash" in outcome.message
    assert outcome.seconds > 0
    # the next test gets a fresh guest
    assert klp_harness_session.guest(klp_arch).run("echo alive").stdout == "alive\n"


def test_unloading_an_enabled_livepatch_says_so_at_once(klp_harness_session, klp_arch,
                                                        tmp_path):
    path, outcome = run_yaml(klp_harness_session, klp_arch, tmp_path / "unload.yaml",
                             "steps:\n  - load: klp_cmdline\n  - unload: klp_cmdline\n")
    assert outcome.status == "fail"
    # said at once, not "timed out ... reference count" after the step's timeout
    assert outcome.message.startswith(
        f"step 2, unload ({path}:3): livepatch klp_cmdline is still enabled"), outcome.message
    assert "`- disable: klp_cmdline` before this step" in outcome.message


def test_a_load_expected_to_fail_that_succeeds_is_a_failure(klp_harness_session, klp_arch,
                                                           tmp_path):
    path, outcome = run_yaml(klp_harness_session, klp_arch, tmp_path / "wrong-error.yaml",
                             "steps:\n  - load: {module: klp_cmdline, expect-error: File exists}\n")
    assert outcome.status == "fail"
    assert "succeeded, but it was expected to fail" in outcome.message


def test_a_second_image_build_builds_nothing(arch_state, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="klp_harness")
    again = imagemod.build(arch_state.image.name, arch_state.profile.name)
    assert again.dir == arch_state.image.dir
    assert not [r.getMessage() for r in caplog.records if "building" in r.getMessage()]
    # the same check sees a build when there is one: the modules of a new source set
    caplog.clear()
    from harness import modules
    src = tmp_path / "new-module-set"
    src.mkdir()
    (src / "klp_probe_build_log.c").write_text(
        f"/* {time.time()} */\n#include <linux/module.h>\nMODULE_LICENSE(\"GPL\");\n")
    modules.build_set(arch_state.image, src, "probe")
    assert [r.getMessage() for r in caplog.records if "building" in r.getMessage()]


def test_a_timed_out_command_leaves_nothing_running(arch_state, tmp_path):
    """A command that times out takes its shell's background jobs with it (a scenario's
    workload would otherwise outlive it and slow every later scenario on the guest)."""
    config = MachineConfig(accel=arch_state.accel)
    with Machine(arch_state.image, arch_state.profile, tmp_path, config) as machine:
        guest = machine.guest
        guest.run("sleep 1001 & sleep 1002 &")
        with pytest.raises(WaitTimeout, match="guest command to finish: sleep 1003"):
            guest.run("sleep 1003", timeout=2)
        left = guest.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | "
                         "grep -o 'sleep 100[0-9]'", timeout=30).stdout
        assert left == "", left
        assert guest.run("echo still here").stdout == "still here\n"
