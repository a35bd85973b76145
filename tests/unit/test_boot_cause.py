"""The cause a boot failure names (harness/bootcause.py): only what a console line shows,
quoted; no guess without one. Console texts as guests print them (linux-7.3, x86_64)."""
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import arch, bootcause
from harness.bootcause import ImageFiles, likely_cause
from harness.errors import WaitTimeout
from harness.machine import Machine

IMAGE = ImageFiles(Path("/cache/images/linux-7.3-x86_64-abc/initrd.cpio"),
                   Path("/cache/images/linux-7.3-x86_64-abc"))

BOOT = """\
[    0.000000] Linux version 7.3.4 (root@host) (gcc (Debian 14.2.0-19) 14.2.0) #1 SMP
[    0.412345] Freeing initrd memory: 20480K
[    0.812345] Run /init as init process
"""
# A truncated initrd.cpio: the kernel says so, and init then lacks our files.
TRUNCATED = BOOT.replace(
    "[    0.412345] Freeing", "[    0.401234] Initramfs unpacking failed: read error\n"
    "[    0.412345] Freeing") + """\
/etc/klp-harness/rc.sh: line 18: can't create /root/.ssh/authorized_keys: nonexistent directory
chmod: /root/.ssh/authorized_keys: No such file or directory
cat: can't open '/etc/klp-harness/boot-modules': No such file or directory
klp-harness: no virtio serial ports at all (no /sys/class/virtio-ports) for SSH
"""


def test_a_truncated_initramfs_is_named_with_the_kernels_line_not_a_virtio_guess():
    found = likely_cause(TRUNCATED, IMAGE)
    assert found.line == "Initramfs unpacking failed: read error"
    assert str(found) == (
        "the initramfs is broken (the console shows: Initramfs unpacking failed: read "
        "error): the image's initrd.cpio /cache/images/linux-7.3-x86_64-abc/initrd.cpio may "
        "be truncated; remove the image dir /cache/images/linux-7.3-x86_64-abc from the "
        "cache to rebuild it")
    assert "VIRTIO" not in str(found)


def test_files_of_ours_missing_in_the_guest_show_a_broken_initramfs_on_their_own():
    console = BOOT + "chmod: /root/.ssh/authorized_keys: No such file or directory\n"
    found = likely_cause(console, IMAGE)
    assert found.line == "chmod: /root/.ssh/authorized_keys: No such file or directory"
    assert str(found).startswith("the initramfs is broken (the console shows: chmod: ")


def test_no_virtio_ports_at_all_is_the_missing_driver():
    line = "klp-harness: no virtio serial ports at all (no /sys/class/virtio-ports) for SSH"
    found = likely_cause(BOOT + line + "\n", IMAGE)
    assert found.line == line
    assert "CONFIG_VIRTIO_CONSOLE=y" in str(found) and "initramfs" not in str(found)


@pytest.mark.parametrize("tail", [
    "",   # the kernel booted and init said nothing: a timeout, no evidence of why
    # Ports there, just not ours: not the driver's absence.
    "klp-harness: no virtio serial port named klp-harness.ssh; the guest's ports: other \n",
    # Images made before rc.sh reported what it saw printed this guess on any missing port:
    # it is no evidence of its own.
    "klp-harness: no virtio serial port named klp-harness.ssh: the kernel needs "
    "CONFIG_VIRTIO_CONSOLE (or the virtio_console module) to serve SSH\n",
    # Something missing, but no file of our initramfs: a distribution's boot module.
    "modprobe: module virtio_pci not found in modules.dep\n",
])
def test_no_cause_is_named_without_evidence(tail):
    assert likely_cause(BOOT + tail, IMAGE) is None


def test_a_boot_failure_carries_the_cause_after_its_first_line(tmp_path):
    image = SimpleNamespace(initrd=IMAGE.initrd, dir=IMAGE.dir)
    machine = Machine(image=image, profile=arch.get("x86_64"), workdir=tmp_path)
    machine.console = SimpleNamespace(text=lambda: TRUNCATED,
                                      excerpt=lambda: TRUNCATED.splitlines()[-1])
    error = machine._boot_failed(WaitTimeout("init's ready marker 'KLP-HARNESS-READY'", 90.0))
    machine.console = None
    machine.shutdown()
    assert isinstance(error.cause, bootcause.BootCause)
    assert error.cause.line == "Initramfs unpacking failed: read error"
    lines = str(error).splitlines()
    assert lines[0] == ("x86_64 guest did not boot: timed out after 90.0s waiting for init's "
                        "ready marker 'KLP-HARNESS-READY'")
    assert lines[1].startswith("the initramfs is broken (the console shows: Initramfs")
    assert lines[2] == f"console log: {machine.console_log}"


def test_a_boot_failure_without_evidence_names_no_cause(tmp_path):
    image = SimpleNamespace(initrd=IMAGE.initrd, dir=IMAGE.dir)
    machine = Machine(image=image, profile=arch.get("x86_64"), workdir=tmp_path)
    machine.console = SimpleNamespace(text=lambda: BOOT, excerpt=lambda: BOOT)
    error = machine._boot_failed(WaitTimeout("the kernel banner ('Linux version')", 20.0))
    machine.console = None
    machine.shutdown()
    assert error.cause is None
    assert str(error).splitlines()[1] == f"console log: {machine.console_log}"
