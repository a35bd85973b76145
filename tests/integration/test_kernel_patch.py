"""--kernel-patch on a real guest: the image's own kernel source with a patch applied is
built (from a copy of the unpatched build: a few dozen steps), boots, and is the kernel the
guest runs (its /proc/version says so); the patch is named wherever the kernel is. A patch
that does not apply stops the run before anything builds, naming its hunk."""
import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

from harness import cli

pytestmark = pytest.mark.vm

ARCH = "x86_64"
MARK = "patched by the klp-harness test"

# /proc/version prints linux_proc_banner (init/version.c): the patch adds a mark to it.
PATCH = "\n".join([
    "Mark the kernel's /proc/version, so that a test can see which kernel booted.",
    "---",
    "--- a/init/version.c",
    "+++ b/init/version.c",
    '@@ -37,6 +37,6 @@ early_param("hostname", early_hostname);',
    " ",
    " const char linux_proc_banner[] =",
    '-\t"%s version %s"',
    f'+\t"%s version %s ({MARK})"',
    ' \t" (" LINUX_COMPILE_BY "@" LINUX_COMPILE_HOST ")"',
    ' \t" (" LINUX_COMPILER ") %s\\n";',
    " ",
    ""])

SCENARIO = textwrap.dedent(f"""\
    description: the guest runs the patched kernel
    steps:
      - run: cat /proc/version
        contains: ["{MARK}"]
    """)


def test_a_kernel_patch_reaches_the_guest_and_is_named(tmp_path, capsys):
    patch = tmp_path / "mark-proc-version.patch"
    patch.write_text(PATCH)
    scenario = tmp_path / "patched-kernel.yaml"
    scenario.write_text(SCENARIO)
    code = cli.main(["run", "--arch", ARCH, "--kernel-patch", str(patch),
                     "--artifacts", str(tmp_path / "art"), str(scenario)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    [kernels] = [line for line in out.out.splitlines() if line.startswith("kernels: ")]
    assert kernels.startswith(f"kernels: {ARCH} 7.") and kernels.endswith(f" + {patch.name}")
    assert "1 passed, 0 failed" in out.out
    run = (tmp_path / "art" / "latest").resolve()
    versions = json.loads((run / "versions.json").read_text())
    assert versions["images"][ARCH]["kernel_patches"] == [patch.name]
    cases = ET.parse(run / "junit.xml").getroot().iter("property")
    assert [p.get("value") for p in cases if p.get("name") == "kernel"][0].endswith(patch.name)


def test_the_unpatched_kernel_fails_the_same_scenario(tmp_path, capsys):
    """Negative control: without the patch, the mark is not in /proc/version."""
    scenario = tmp_path / "patched-kernel.yaml"
    scenario.write_text(SCENARIO)
    code = cli.main(["run", "--arch", ARCH, "--artifacts", str(tmp_path / "art"),
                     str(scenario)])
    out = capsys.readouterr().out
    assert code == 1 and "0 passed, 1 failed" in out and MARK in out


def test_a_patch_that_does_not_apply_stops_the_run_before_any_build(tmp_path, capsys):
    stale = tmp_path / "stale.patch"
    stale.write_text(PATCH.replace('-\t"%s version %s"', '-\t"%s Version %s"'))
    scenario = tmp_path / "patched-kernel.yaml"
    scenario.write_text(SCENARIO)
    code = cli.main(["run", "--arch", ARCH, "--kernel-patch", str(stale),
                     "--artifacts", str(tmp_path / "art"), str(scenario)])
    err = capsys.readouterr().err
    assert code == 2
    assert "stale.patch: hunk #1 of init/version.c (@@ -37,6 +37,6 @@" in err
    assert "building kernel" not in err and "booting" not in err
