"""Build once, test anywhere: the default image's x86_64 bundle, exported from this
machine's cache, imported into a fresh one, runs scenarios (one of them a klp-build
livepatch) in a process that has no compiler, no make, no klp-build tools and no kernel
source: nothing is built, everything is found by its key."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cache, image as imagemod
from nobuild import no_build_tools_path

pytestmark = pytest.mark.vm

ARCH = "x86_64"
SCENARIOS = ["scenarios/smoke", "scenarios/klp-build/function-fix.yaml"]


def cli(*args, env, timeout=900):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=imagemod.PROJECT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def kinds(root: Path):
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def test_a_bundle_runs_on_a_machine_that_cannot_build(request, tmp_path):
    accel = request.config.getoption("klp_accel")
    base = dict(os.environ, PYTHONPATH=str(imagemod.PROJECT))
    out = tmp_path / "bundle.tar.gz"
    made = cli("bundle", "export", "--arch", ARCH, "-o", str(out), *SCENARIOS, env=base)
    assert made.returncode == 0, made.stderr[-3000:]
    assert "building " not in made.stderr, "the warm cache had it all: " + made.stderr

    fresh = tmp_path / "cache"
    path = no_build_tools_path(tmp_path)
    env = dict(base, **{cache.ENV: str(fresh), "PATH": path})
    assert shutil.which("gcc", path=path) is None and shutil.which("make", path=path) is None
    loaded = cli("bundle", "import", str(out), "--arch", ARCH, env=env)
    assert loaded.returncode == 0, loaded.stderr
    imported = kinds(fresh)

    ran = cli("run", "--arch", ARCH, "--accel", accel, "--artifacts", str(tmp_path / "art"),
              *SCENARIOS, env=env)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    # smoke, the klp-build scenario, and the generic check of its livepatch
    assert "3 passed, 0 failed, 0 skipped" in ran.stdout, ran.stdout
    assert "from the bundle bundle.tar.gz (built elsewhere, not here)" in ran.stderr
    # No kernel, module, program or livepatch build ran (each says `building ...`), and
    # nothing was fetched or made: the cache has what the import put there, and no more.
    assert "building " not in ran.stderr, ran.stderr
    assert set(kinds(fresh)) - set(imported) <= {"kvm-probe"}, kinds(fresh)

    # pytest, the other front end, on the same cache and PATH.
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "0",
         f"--arch={ARCH}", "--accel", accel, "--klp-artifacts", str(tmp_path / "art2"),
         "scenarios/smoke"], cwd=imagemod.PROJECT, capture_output=True, text=True,
        timeout=900, env=env)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "building " not in tested.stdout + tested.stderr
    assert set(kinds(fresh)) - set(imported) <= {"kvm-probe"}, kinds(fresh)


def test_without_the_bundle_the_same_machine_cannot_run(request, tmp_path):
    """The control: the same PATH and a fresh cache without the bundle must build, and
    cannot: so the run above ran on what the bundle brought."""
    env = dict(os.environ, PYTHONPATH=str(imagemod.PROJECT), PATH=no_build_tools_path(tmp_path),
               **{cache.ENV: str(tmp_path / "cache")})
    ran = cli("run", "--arch", ARCH, "--accel", request.config.getoption("klp_accel"),
              "--artifacts", str(tmp_path / "art"), "scenarios/smoke", env=env, timeout=300)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "building linux-source" in ran.stderr and "not found on this host" in ran.stderr
