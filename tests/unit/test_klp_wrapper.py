"""The ./klp wrapper's set-up before a command, as KLP_HARNESS_SETUP chooses it: the full
set (build machines), QEMU only (test machines that import bundles: the GitLab pipeline's
test jobs) or nothing (its merge job). A fake venv records what the wrapper runs."""
import os
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="./klp sets up only as root")


def klp(tmp_path: Path, *args: str, setup=None):
    """Run ./klp with a venv whose klp-harness only logs its arguments; return the result
    and the logged calls."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    log = tmp_path / "calls"
    fake = venv / "bin" / "klp-harness"
    fake.write_text(f'#!/bin/sh\necho "$*" >>{log}\n')
    fake.chmod(0o755)
    (venv / ".klp-installed").touch()   # newer than pyproject.toml: no pip install
    env = dict(os.environ, KLP_HARNESS_VENV=str(venv), KLP_HARNESS_PHASES="-")
    env.pop("KLP_HARNESS_SETUP", None)
    if setup is not None:
        env["KLP_HARNESS_SETUP"] = setup
    result = subprocess.run([str(PROJECT / "klp"), *args], capture_output=True, text=True,
                            env=env, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return result, calls


def test_the_default_sets_up_everything_for_the_arches_asked(tmp_path):
    result, calls = klp(tmp_path, "run", "--arch", "s390x", "scenarios/smoke")
    assert result.returncode == 0, result.stderr
    assert calls == ["setup --arch s390x", "run --arch s390x scenarios/smoke"]


def test_run_only_sets_up_qemu_only(tmp_path):
    result, calls = klp(tmp_path, "run", "--arch", "x86_64", "--arch", "s390x",
                        setup="run-only")
    assert result.returncode == 0, result.stderr
    assert calls == ["setup --run-only --arch x86_64 --arch s390x",
                     "run --arch x86_64 --arch s390x"]


def test_none_sets_up_nothing(tmp_path):
    result, calls = klp(tmp_path, "validate", setup="none")
    assert result.returncode == 0, result.stderr
    assert calls == ["validate"]


def test_setup_itself_is_not_preceded_by_another(tmp_path):
    """`./klp setup --run-only` alone: a full set-up before it would install the compilers
    a test machine is meant to go without."""
    result, calls = klp(tmp_path, "setup", "--run-only", "--arch", "x86_64")
    assert result.returncode == 0, result.stderr
    assert calls == ["setup --run-only --arch x86_64"]


def test_an_unknown_choice_is_an_error(tmp_path):
    result, calls = klp(tmp_path, "run", setup="qemu")
    assert result.returncode == 2
    assert "KLP_HARNESS_SETUP is full, run-only or none, not 'qemu'" in result.stderr
    assert calls == []
