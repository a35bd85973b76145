"""bisect-run's verdicts for the host's trouble: abort (128), never skip or bad. The host is
faked here (no QEMU binary, a full disk); the commit's own verdicts run on real guests in
tests/integration/test_bisect.py."""
import collections
import dataclasses
import io

import pytest

from harness import arch as archmod, bisect, cli
from harness.options import Options


@pytest.fixture
def plan(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("steps:\n  - load: klp_cmdline\n  - unload: klp_cmdline\n")
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "klp_mine.c").write_text("/* a module source */\n")
    return bisect.Plan(scenarios=[scenario], arch="x86_64",
                       options=Options(module_dirs=[mods]), workdir=tmp_path / "work")


def _run(plan):
    out = io.StringIO()
    code = bisect.run(plan, out)
    return code, out.getvalue(), (plan.workdir / "bisect.log").read_text()


def test_a_missing_qemu_aborts_naming_the_package(plan, monkeypatch):
    real = archmod.get
    monkeypatch.setattr(archmod, "get", lambda name: dataclasses.replace(
        real(name), qemu_binary="klp-harness-no-such-qemu"))
    code, out, log = _run(plan)
    assert code == bisect.ABORT == 128
    assert "abort (128)" in log and "klp-harness-no-such-qemu" in log
    assert "qemu-system-x86" in out    # the Debian package to install


def test_a_full_disk_aborts(plan, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(bisect.shutil, "disk_usage", lambda path: usage(10, 10, 100 * 2 ** 20))
    code, out, log = _run(plan)
    assert code == bisect.ABORT
    assert "disk full: 0.1 GiB free" in log


def test_a_scenario_that_does_not_load_aborts(plan):
    plan.scenarios[0].write_text("steps: []\n")
    code, _, log = _run(plan)
    assert code == bisect.ABORT and "s.yaml" in log and "at least one step" in log


def test_a_usage_error_aborts_rather_than_meaning_bad(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path))   # the default work dir is there
    assert cli.main(["bisect-run", "--no-such-option", "x.yaml"]) == bisect.ABORT
    assert cli.main(["bisect-run", "--repeat", "0", "x.yaml"]) == bisect.ABORT
    assert cli.main(["bisect-run", "--arch", "sparc", "x.yaml"]) == bisect.ABORT


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_module_dir_that_is_missing_or_empty_aborts(plan, tmp_path, make):
    """A typo in --modules must not make every step good (its modules left out)."""
    mods = tmp_path / "typo"
    if make == "empty":
        mods.mkdir()
    plan.options.module_dirs = [mods]
    code, _, log = _run(plan)
    assert code == bisect.ABORT
    assert f"module dir {mods}: " + ("no such directory" if make == "missing"
                                     else "no module sources (*.c) in it") in log


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_scenario_path_that_is_missing_or_empty_aborts(tmp_path, monkeypatch, make):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path))
    path = tmp_path / "scenarios"
    if make == "empty":
        path.mkdir()
    assert cli.main(["bisect-run", "--arch", "x86_64", "--modules", str(tmp_path),
                     str(path)]) == bisect.ABORT
