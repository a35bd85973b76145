"""Distribution QA on Debian's own kernel packages (--image NAME): the bookworm amd64 image
boots and livepatches; a QA run (pytest, as a CI would run it) of the parity scenarios and
of livepatch modules built outside the harness (--ko-dir) passes what applies to 6.1 and
writes JUnit and the artifacts of failures. (Trixie's kernels, whose compiler a Debian 12 host
lacks, are in test_distribution_qa.py.)"""
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from harness import image as imagemod, modules
from harness.errors import HarnessError
from harness.pytest_plugin import selected_arches
from harness.scenario import Scenario
from harness.options import Options
from harness.session import Session

IMAGE = "debian-bookworm"
pytestmark = [pytest.mark.vm, pytest.mark.klp_image(IMAGE, arch="x86_64")]

# A livepatch that warns once it is applied: the generic scenario must fail it (splat).
WARNING_LIVEPATCH = textwrap.dedent("""\
    // SPDX-License-Identifier: GPL-2.0
    #include <linux/module.h>
    #include <linux/kernel.h>
    #include <linux/livepatch.h>
    #include <linux/seq_file.h>

    static int qa_cmdline_proc_show(struct seq_file *m, void *v)
    {
    	seq_puts(m, "patched\\n");
    	return 0;
    }

    static void qa_post_patch(struct klp_object *obj)
    {
    	WARN(1, "klp_qa_warns: a deliberate warning after patching\\n");
    }

    static struct klp_func funcs[] = {
    	{ .old_name = "cmdline_proc_show", .new_func = qa_cmdline_proc_show, }, { }
    };
    static struct klp_object objs[] = {
    	{ .funcs = funcs, .callbacks = { .post_patch = qa_post_patch } }, { }
    };
    static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs, };

    static int qa_init(void) { return klp_enable_patch(&patch); }
    static void qa_exit(void) { }
    module_init(qa_init);
    module_exit(qa_exit);
    MODULE_LICENSE("GPL");
    MODULE_INFO(livepatch, "Y");
    """)


@pytest.fixture
def x86_64(request):
    if "x86_64" not in selected_arches(request.config):
        pytest.skip(f"{IMAGE} is an x86_64 image and x86_64 is not selected")


def test_the_distribution_kernel_livepatches_cmdline(x86_64, request, tmp_path):
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


def test_a_qa_run_passes_what_applies_to_6_1_and_writes_junit_and_artifacts(x86_64, request,
                                                                          tmp_path):
    image = imagemod.build(IMAGE, "x86_64")
    # Livepatch modules built outside the harness's catalog, as a distribution ships them.
    sources = tmp_path / "src"
    sources.mkdir()
    shutil.copy(imagemod.PROJECT / "scenarios/modules/klp_cmdline.c", sources / "klp_qa_cmdline.c")
    (sources / "klp_qa_warns.c").write_text(WARNING_LIVEPATCH)
    ko_dir = tmp_path / "ko"
    ko_dir.mkdir()
    for ko in modules.build_set(image, sources, "qa").values():
        shutil.copy(ko, ko_dir)
    junit, artifacts = tmp_path / "junit.xml", tmp_path / "artifacts"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--image", IMAGE,
         "--arch", "x86_64", "--accel", request.config.getoption("klp_accel"),
         "--ko-dir", str(ko_dir), "--klp-artifacts", str(artifacts), f"--junitxml={junit}",
         "scenarios/parity", "scenarios/generic"],
        cwd=imagemod.PROJECT, capture_output=True, text=True, timeout=1800,
        env=dict(os.environ, PYTHONPATH=str(imagemod.PROJECT)))
    output = result.stdout[-5000:] + result.stderr[-3000:]
    assert result.returncode == 1, output   # exactly the warning livepatch fails

    cases = {}   # test id -> passed/failure/error/skipped (ids repeat across topics)
    for case in ET.parse(junit).iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        cases[(case.get("classname"), case.get("name"))] = kind
    failed = sorted(name for (_, name), kind in cases.items() if kind in ("failure", "error"))
    assert failed == ["klp_qa_warns[x86_64]"], output
    assert [k for (_, name), k in cases.items() if name == "klp_qa_cmdline[x86_64]"] == ["passed"]
    parity = [key for key in cases if key[0].startswith("scenarios.parity.")]
    assert len(parity) == len(list((imagemod.PROJECT / "scenarios/parity").rglob("*.yaml")))
    passed = [key for key in parity if cases[key] == "passed"]
    assert len(passed) >= 20, cases   # 26 of 32 on 6.1.0: the rest skip, with the reason
    skipped_for = [c.find("skipped").get("message", "") for c in ET.parse(junit).iter("testcase")
                   if c.find("skipped") is not None]
    assert all(skipped_for), "every skip says why"

    evidence = artifacts / "latest" / "failed" / "external_klp_qa_warns[x86_64]"
    for name in ("failure.txt", "kmsg.txt", "console.log", "commands.txt",
                 "sysfs-at-failure.txt", "sysfs-after-cleanup.txt"):
        assert (evidence / name).stat().st_size > 0, name
    assert "kernel splat" in (evidence / "failure.txt").read_text()
    assert "klp_qa_warns: a deliberate warning" in (evidence / "kmsg.txt").read_text()
    # The summary table: scenario x arch, result and time.
    assert "klp-harness scenarios" in result.stdout
    assert any(line.startswith("external/klp_qa_cmdline") and "pass" in line
               for line in result.stdout.splitlines()), output


def test_a_module_built_for_another_kernel_is_refused_naming_both(x86_64, tmp_path):
    sources = tmp_path / "src"
    sources.mkdir()
    shutil.copy(imagemod.PROJECT / "scenarios/modules/klp_cmdline.c", sources / "klp_qa_cmdline.c")
    bookworm = imagemod.build(IMAGE, "x86_64")
    ko_dir = tmp_path / "ko"
    ko_dir.mkdir()
    shutil.copy(modules.build_set(bookworm, sources, "qa")["klp_qa_cmdline"], ko_dir)
    assert [i.name for i in modules.prebuilt(bookworm, ko_dir)] == ["klp_qa_cmdline"]
    other = imagemod.build(imagemod.DEFAULT_IMAGE, "x86_64")
    with pytest.raises(HarnessError) as info:
        modules.prebuilt(other, ko_dir)
    assert f"klp_qa_cmdline.ko: built for kernel {bookworm.kernel_release}, but image " \
        f"{other.name} (x86_64) runs {other.kernel_release}" in str(info.value)
