"""Every command a user can type, run once on real parts (x86_64, the warm cache), each
asserting what it printed. Small parameters keep each to seconds or a minute; where a
command's full work is long (every upstream script, every parity scenario, five
klp-build patches, a cold kernel build), the test runs the command's own code in-process
on a smaller real workload, and says which. tests/unit/test_cli_coverage.py checks that
every subcommand of `klp-harness` is in SMOKE_TESTS."""
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import types

import pytest

from harness import bench, cache, cli, image as imagemod, kernelbuild, kselftest, log
from harness.pytest_plugin import selected_arches
from harness.scenario import discover

ARCH = "x86_64"
PROJECT = imagemod.PROJECT
OLDEST = "linux-6.1"   # its x86_64 kernel has a kept O= build dir (bench build seeds from it)
pytestmark = [pytest.mark.vm, pytest.mark.klp_image(imagemod.DEFAULT_IMAGE, arch=ARCH)]

HERE = "tests/integration/test_commands.py"
# Each subcommand, as typed, and the test that runs it end to end (here, or elsewhere
# where a test of its own already does).
SMOKE_TESTS = {
    "setup": f"{HERE}::test_setup_installs_what_is_missing_then_nothing",
    "images build": f"{HERE}::test_images_build_names_the_cached_image",
    "images figures": f"{HERE}::test_images_figures_writes_the_measured_figures",
    "validate": f"{HERE}::test_validate_counts_valid_and_invalid_scenario_files",
    "run": f"{HERE}::test_run_prints_each_outcome_the_summary_and_the_report",
    "kselftest": f"{HERE}::test_kselftest_prints_ktap_and_the_wall_times",
    "bisect-run": "tests/integration/test_bisect.py::"
                  "test_git_bisect_run_names_the_planted_commit",
    "livepatch build": "tests/integration/test_klp_build.py::"
                       "test_livepatch_build_makes_a_livepatch_for_the_images_kernel",
    "bench boot": f"{HERE}::test_bench_boot_prints_the_median_boot",
    "bench build": f"{HERE}::test_bench_build_prints_the_cold_build_and_the_rebuild",
    "bench parity": f"{HERE}::test_bench_parity_prints_every_figure",
    "bench klp-build": f"{HERE}::test_bench_klp_build_prints_copy_first_and_next",
    "bench transition": f"{HERE}::test_bench_transition_prints_idle_busy_and_the_chain",
    "bench shadow": f"{HERE}::test_bench_shadow_prints_both_figures",
    "bundle export": "tests/integration/test_bundle.py::"
                     "test_a_bundle_runs_on_a_machine_that_cannot_build",
    "bundle import": "tests/integration/test_bundle.py::"
                     "test_a_bundle_runs_on_a_machine_that_cannot_build",
    "merge": "tests/integration/test_shards.py::"
             "test_three_shards_of_a_bundle_merge_into_the_unsharded_run",
}

SECONDS = r"\d+\.\d"   # a figure: seconds with one decimal


@pytest.fixture(autouse=True)
def _x86_64_selected(request):
    if ARCH not in selected_arches(request.config):
        pytest.skip(f"the commands' smoke tests run on {ARCH}, which is not selected")


def klp_harness(*args, timeout=600):
    """`klp-harness ARGS` as a user runs it, from this checkout."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=PROJECT,
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def in_process(capsys):
    """cli.main(ARGS) in this process, for a test that shrinks the command's work with
    monkeypatch: (exit status, stdout, stderr). The stderr log handler main() adds is
    removed after, so it does not outlive the captured stream."""
    before = list(log.LOG.handlers), log.LOG.level

    def run(*args):
        status = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err
    yield run
    for handler in log.LOG.handlers[:]:
        if handler not in before[0]:
            log.LOG.removeHandler(handler)
    log.LOG.setLevel(before[1])


def lines_match(out, *patterns):
    """stdout's lines are these patterns, in order, each matching the whole line."""
    lines = out.splitlines()
    assert len(lines) == len(patterns), out
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}\n{out}"


def test_setup_installs_what_is_missing_then_nothing():
    first = klp_harness("setup", "--arch", ARCH)
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"host packages installed: (none needed|\S+( \S+)*)\n", first.stdout)
    again = klp_harness("setup", "--arch", ARCH)   # what it installed is found now
    assert (again.returncode, again.stdout) == (0, "host packages installed: none needed\n")


def test_images_build_names_the_cached_image():
    image = imagemod.build(imagemod.DEFAULT_IMAGE, ARCH)
    result = klp_harness("images", "build", "--arch", ARCH)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{image.name} {ARCH}: {image.dir} (kernel {image.kernel_release})\n"


def test_images_figures_writes_the_measured_figures(in_process, monkeypatch, tmp_path):
    """Into a copy of the shipped figures: the command would otherwise rewrite
    images/build-figures.json of this checkout with this machine's CPU seconds."""
    shipped = imagemod.BUILD_FIGURES.read_bytes()
    copy = tmp_path / "build-figures.json"
    copy.write_bytes(shipped)
    monkeypatch.setattr(imagemod, "BUILD_FIGURES", copy)
    status, out, err = in_process("images", "figures", "--arch", ARCH)
    assert status == 0, err
    name = imagemod.DEFAULT_IMAGE
    lines_match(out, rf"{name} {ARCH}: \d+ steps, \d+ CPU seconds",
                f"written: {re.escape(str(copy))}")
    steps, cpu = map(int, re.findall(r"\d+", out.splitlines()[0].split(": ", 1)[1]))
    written = json.loads(copy.read_text())[name][ARCH]
    assert (written["steps"], round(written["cpu_seconds"])) == (steps, cpu)
    assert (PROJECT / "images" / "build-figures.json").read_bytes() == shipped


def test_validate_counts_valid_and_invalid_scenario_files(tmp_path):
    every = discover([PROJECT / "scenarios"])
    result = klp_harness("validate")
    assert (result.returncode, result.stdout) == (0, f"{len(every)} valid, 0 invalid "
                                                     "scenario file(s)\n"), result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps:\n  - frobnicate: klp_cmdline\n")
    result = klp_harness("validate", broken)
    assert (result.returncode, result.stdout) == (2, "0 valid, 1 invalid scenario file(s)\n")
    assert str(broken) in result.stderr


def test_run_prints_each_outcome_the_summary_and_the_report(tmp_path):
    result = klp_harness("run", "--arch", ARCH, "--artifacts", tmp_path, "scenarios/smoke")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    release = imagemod.build(imagemod.DEFAULT_IMAGE, ARCH).kernel_release
    run_dir = re.escape(str(tmp_path)) + r"/run-[\w-]+"
    lines_match(result.stdout, rf"PASS smoke/klp-cmdline\[{ARCH}\] \({SECONDS}s\)",
                f"kernels: {ARCH} {re.escape(release)}", rf"scenario\s+{ARCH}",
                rf"smoke/klp-cmdline\s+pass\s+{SECONDS}s", "1 passed, 0 failed, 0 skipped",
                f"artifacts of this run: {run_dir}", f"report: {run_dir}/report.html")
    assert (tmp_path / "latest" / "report.html").is_file()
    assert re.search(rf"# wall time {SECONDS}s for 1 arch\(es\)", result.stderr)


# The shortest upstream script, and its one parity scenario: the commands that run every
# script (about 200 s on x86_64; tests/integration/test_kselftest.py runs them all) and
# every parity scenario run these.
SHORT_SCRIPT = "test-shadow-vars.sh"
SHORT_PARITY = PROJECT / "scenarios" / "parity" / "shadow-vars"


@pytest.fixture
def short_kselftest(monkeypatch):
    monkeypatch.setattr(kselftest, "run", functools.partial(kselftest.run,
                                                            scripts=[SHORT_SCRIPT]))


def test_kselftest_prints_ktap_and_the_wall_times(in_process, short_kselftest, tmp_path):
    status, out, err = in_process("kselftest", "--arch", ARCH, "--artifacts", tmp_path)
    assert status == 0, out + err[-3000:]
    assert out.startswith("TAP version 13\n1..1\n"), out
    assert f"\nok 1 selftests: livepatch: {SHORT_SCRIPT}\n" in out, out
    saved = list((tmp_path / "latest" / "kselftest").glob(f"{ARCH}/ktap.txt"))
    assert [p.read_text() for p in saved] == [out]
    assert re.search(rf"kselftest {ARCH}: {SECONDS}s wall \(guest ready {SECONDS}s, install "
                     rf"{SECONDS}s, scripts {SECONDS}s\); output in \S+/kselftest/{ARCH}", err)


def test_bench_boot_prints_the_median_boot():
    result = klp_harness("bench", "boot", "--arch", ARCH, "--runs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    lines_match(result.stdout, rf"boot-to-ssh {ARCH} \d+\.\d\d")
    assert re.search(r"# run 1: \d+\.\d\ds \(qemu=", result.stderr), result.stderr


def _seed(kept, scratch, profile):
    """``scratch``, a copy of the kept build dir ``kept`` that make finds up to date, as
    klporig.settle_copy does for klp-build's copy: objtool's build records absolute paths,
    so in a copy it is rebuilt, and every object depends on it. Rebuilt once here, its
    files are given their originals' times."""
    subprocess.run(["cp", "-a", str(kept), str(scratch)], check=True)
    subprocess.run(["make", "-s", "-C", str(scratch), f"ARCH={profile.kernel_arch}",
                    "tools/objtool"], check=True, capture_output=True)
    for path in (scratch / "tools").rglob("*"):
        original = kept / path.relative_to(scratch)
        if path.is_file() and not path.is_symlink() and original.is_file():
            shutil.copystat(original, path)


@pytest.mark.klp_image(OLDEST, arch=ARCH)
def test_bench_build_prints_the_cold_build_and_the_rebuild(in_process, monkeypatch,
                                                           tmp_path):
    """The cold build (minutes) made small: the bench's scratch dir holds a copy of the
    image's kept build of the same kernel, so the "cold" build finds little to do, and
    the rebuild after the touch compiles the touched file and links, for real. The
    image: linux-6.1, whose x86_64 kernel is built in an O= dir as the bench builds
    (linux-7.3's is built in-tree, as klp-build's original build)."""
    source, profile, _ = imagemod.kernel_inputs(OLDEST, ARCH)
    kept = kernelbuild.default_build_dir(source, profile)
    stamp = (kept / kernelbuild.STAMP).read_text()
    _seed(kept, tmp_path / ARCH, profile)
    scratch = types.SimpleNamespace(
        TemporaryDirectory=lambda prefix: contextlib.nullcontext(str(tmp_path)))
    monkeypatch.setattr(bench, "tempfile", scratch)
    started = time.time()
    status, out, err = in_process("bench", "build", "--image", OLDEST, "--arch", ARCH)
    assert status == 0, err[-3000:]
    lines_match(out, rf"kernel-build-cold {ARCH} {SECONDS}",
                rf"kernel-build-cold-all {SECONDS}  # 1 arches at the same time",
                rf"kernel-rebuild-touch {ARCH} {SECONDS}  # kernel/livepatch/core.c")
    assert (tmp_path / ARCH / "kernel/livepatch/core.o").stat().st_mtime > started
    assert (kept / kernelbuild.STAMP).read_text() == stamp   # the kept build left alone


def test_bench_parity_prints_every_figure(in_process, short_kselftest, monkeypatch,
                                          tmp_path):
    monkeypatch.setattr(bench, "PARITY", SHORT_PARITY)
    status, out, err = in_process("bench", "parity", "--arch", ARCH, "--pool", "1",
                                  "--artifacts", tmp_path)
    assert status == 0, out + err[-3000:]
    cpu = r"host CPU (\d+%|n/a)"
    all_arches = (rf"parity-all-arches {SECONDS}  # 1 arches at once, 1 guest\(s\) each, "
                  rf"boots included; 1 pass; {cpu}")
    lines_match(out, rf"upstream-scripts {ARCH} {SECONDS}  # ok; {cpu}",
                rf"parity-scenarios {ARCH} {SECONDS}  # one guest; 1 pass; {cpu}",
                rf"parity-pool {ARCH} {SECONDS}  # 1 guests \(boots of all but one "
                rf"included\); 1 pass; {cpu}",
                rf"ratio {ARCH} \d+\.\d\d \d+\.\d\d  # to upstream's scripts: one guest, "
                r"the pool", all_arches, all_arches,
                rf"pool-vs-upstream \d+\.\d\d  # all arches on the pool / upstream's "
                rf"scripts on {ARCH} \(aim: 0\.25 or less\)")


def test_bench_klp_build_prints_copy_first_and_next(in_process, monkeypatch):
    """Two of the bench's five patches: the first (on a fresh copy of the image's build)
    and one further one, each a real klp-build run."""
    monkeypatch.setattr(bench, "KLP_BUILD_BENCH", bench.KLP_BUILD_BENCH[:2])
    # Scratch dirs of other runs (a killed one, another worker's) are not this run's.
    before = set(cache.root().glob("klp-bench-klp-build-*"))
    status, out, err = in_process("bench", "klp-build", "--arch", ARCH)
    assert status == 0, err[-3000:]
    first = bench.KLP_BUILD_BENCH[0]
    lines_match(out, rf"klp-build-copy-source {ARCH} {SECONDS}  # a copy of the image's "
                     r"kernel build, klp-build's original build",
                rf"klp-build-first {ARCH} {SECONDS}  # {first}\.patch",
                rf"klp-build-next {ARCH} {SECONDS}  # median of 1 further patches "
                rf"\({SECONDS} \.\. {SECONDS}\)")
    assert set(cache.root().glob("klp-bench-klp-build-*")) <= before   # its scratch is gone


def test_bench_transition_prints_idle_busy_and_the_chain(in_process, monkeypatch, tmp_path):
    """A chain of 3 patches instead of 15 (about a minute less under TCG)."""
    monkeypatch.setattr(bench, "CHAIN", 3)
    monkeypatch.chdir(tmp_path)   # it has no --artifacts: they go to ./artifacts
    status, out, err = in_process("bench", "transition", "--arch", ARCH, "--repeat", "1")
    assert status == 0, out + err[-3000:]
    lines_match(out, r"# arch  load  load-to-patched-s  disable-to-gone-s  \(median of 1\)"
                     r"  chain-of-3-s",
                rf"{ARCH}  idle  \d+\.\d\d  \d+\.\d\d",
                rf"{ARCH}  busy  \d+\.\d\d  \d+\.\d\d  {SECONDS}")


def test_bench_shadow_prints_both_figures(tmp_path):
    result = klp_harness("bench", "shadow", "--arch", ARCH, "--count", "100", "--reads", "3",
                         "--artifacts", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines_match(result.stdout, r"# arch  live-variables  kernel-walk-us \(median\)  read-ms "
                               r"\(median, from the host\)",
                rf"{ARCH}  0  \d+  \d+\.\d", rf"{ARCH}  100  \d+  \d+\.\d")
