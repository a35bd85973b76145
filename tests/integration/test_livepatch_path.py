"""The whole path on a real guest: image -> QEMU -> SSH -> livepatch -> assertions."""
import pytest

from harness import kmsg, livepatch

pytestmark = pytest.mark.vm

PATCH = "test_klp_livepatch"
NOISE = "is running"   # transition retry notes: their presence depends on timing


def livepatch_lines(records):
    """The livepatch core's own lines (not "<module>: ... taints kernel" notices, whose
    module names may contain "livepatch:", nor the timing-dependent retry notes)."""
    return [r.message for r in records
            if r.message.startswith("livepatch:") and NOISE not in r.message]


def test_upstream_test_klp_livepatch_patches_and_unpatches_cmdline(klp_guest, klp_modules):
    guest = klp_guest
    original = guest.run("cat /proc/cmdline", check=True).stdout
    cursor = guest.kmsg_cursor()
    guest.push(klp_modules.path(PATCH), f"/tmp/{PATCH}.ko")
    livepatch.load(guest, f"/tmp/{PATCH}.ko")
    livepatch.wait_transition(guest, PATCH, timeout=30)

    patch = livepatch.read_all(guest)[PATCH]
    assert patch.get("enabled") == "1"
    assert patch.get("transition") == "0"
    assert patch.get("vmlinux/patched") == "1"
    assert guest.run("cat /proc/cmdline").stdout == f"{PATCH}: this has been live patched\n"
    assert livepatch_lines(guest.kmsg_since(cursor)) == [
        f"livepatch: enabling patch '{PATCH}'",
        f"livepatch: '{PATCH}': initializing patching transition",
        f"livepatch: '{PATCH}': starting patching transition",
        f"livepatch: '{PATCH}': completing patching transition",
        f"livepatch: '{PATCH}': patching complete",
    ]

    cursor = guest.kmsg_cursor()
    livepatch.set_enabled(guest, PATCH, False)
    livepatch.wait_gone(guest, PATCH, timeout=30)
    livepatch.unload(guest, PATCH)
    assert PATCH not in livepatch.read_all(guest)
    assert PATCH not in livepatch.loaded_modules(guest)
    assert guest.run("cat /proc/cmdline").stdout == original
    assert livepatch_lines(guest.kmsg_since(cursor)) == [
        f"livepatch: '{PATCH}': initializing unpatching transition",
        f"livepatch: '{PATCH}': starting unpatching transition",
        f"livepatch: '{PATCH}': completing unpatching transition",
        f"livepatch: '{PATCH}': unpatching complete",
    ]


def test_run_gives_status_stdout_and_stderr(klp_guest):
    result = klp_guest.run("echo out; echo err >&2; exit 3")
    assert (result.status, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert klp_guest.history[-1] is result


def test_push_then_read_back(klp_guest, tmp_path):
    local = tmp_path / "blob"
    local.write_bytes(bytes(range(256)) * 64)
    klp_guest.push(local, "/tmp/blob")
    assert klp_guest.run("md5sum /tmp/blob").stdout.split()[0] == \
        __import__("hashlib").md5(local.read_bytes()).hexdigest()


def test_kernel_log_since_a_cursor_holds_only_newer_lines(klp_guest):
    klp_guest.run("echo klp-harness-before > /dev/kmsg", check=True)
    cursor = klp_guest.kmsg_cursor()
    klp_guest.run("echo klp-harness-after > /dev/kmsg", check=True)
    messages = kmsg.text(klp_guest.kmsg_since(cursor))
    assert "klp-harness-after" in messages
    assert "klp-harness-before" not in messages
    # Nothing was cleared: the older line is still in the log.
    assert "klp-harness-before" in kmsg.text(klp_guest.kmsg_records())


def test_the_guest_has_the_cpus_asked_for(klp_guest):
    # The consistency model's tests need tasks on other CPUs; a firmware that describes
    # fewer CPUs than -smp (x86_64 without ACPI) must not go unnoticed.
    asked = klp_guest.machine.config.cpus
    assert klp_guest.run("cat /sys/devices/system/cpu/online").stdout.strip() == \
        ("0" if asked == 1 else f"0-{asked - 1}")
