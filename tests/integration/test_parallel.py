"""pytest -n 2 (pytest-xdist): one worker per arch, one guest per worker, no collisions
(ports, sockets, machine dirs), JUnit and the summary table from the controller."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness import image as imagemod
from harness.pytest_plugin import selected_arches

pytestmark = pytest.mark.vm


def test_two_workers_each_boot_one_arch(request, tmp_path):
    arches = selected_arches(request.config)[:2]
    if len(arches) < 2:
        pytest.skip("needs two architectures selected")
    junit, artifacts = tmp_path / "junit.xml", tmp_path / "artifacts"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2",
         *(f"--arch={a}" for a in arches), "--accel", request.config.getoption("klp_accel"),
         "--klp-artifacts", str(artifacts), f"--junitxml={junit}",
         "scenarios/smoke", "scenarios/parity/livepatch/basic-function-patching.yaml"],
        cwd=imagemod.PROJECT, capture_output=True, text=True, timeout=1200,
        env=dict(os.environ, PYTHONPATH=str(imagemod.PROJECT)))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    booted = {w.name: sorted(m.name for m in w.iterdir())
              for w in (artifacts / "latest" / "machines").iterdir()}
    assert sorted(booted) == ["gw0", "gw1"], booted
    assert sorted(m for ms in booted.values() for m in ms) == sorted(f"{a}-1" for a in arches)
    cases = list(ET.parse(junit).iter("testcase"))
    assert len(cases) == 4 and not any(len(c.findall("failure")) for c in cases)
    table = result.stdout[result.stdout.index("klp-harness scenarios"):].splitlines()
    # the kernels that ran, from the workers' results (JUnit property klp_kernel too)
    releases = {a: imagemod.build(imagemod.DEFAULT_IMAGE, a).kernel_release for a in arches}
    assert table[1].startswith("kernels: ") and sorted(table[1][9:].split(", ")) == sorted(
        f"{a} {r}" for a, r in releases.items())
    assert {p.get("value") for c in cases for p in c.iter("property")
            if p.get("name") == "klp_kernel"} == set(releases.values())
    assert table[2].split()[0] == "scenario" and sorted(table[2].split()[1:]) == sorted(arches)
    assert "4 passed, 0 failed, 0 skipped" in result.stdout


def test_two_runs_at_once_keep_their_artifacts_apart(request, tmp_path):
    """The same --artifacts for two `klp-harness run` at the same time: each has its own run
    dir, with its own guest's console log; nothing is shared or overwritten."""
    arch = selected_arches(request.config)[0]
    artifacts = tmp_path / "artifacts"
    runs = [subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", f"--arch={arch}", "--accel",
         request.config.getoption("klp_accel"), "--artifacts", str(artifacts),
         "scenarios/smoke"], cwd=imagemod.PROJECT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(imagemod.PROJECT)))
        for _ in range(2)]
    outputs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    dirs = sorted(d for d in artifacts.iterdir() if d.name.startswith("run-"))
    assert len(dirs) == 2
    for d in dirs:
        consoles = list(d.glob("machines/*/console.log"))
        assert len(consoles) == 1 and "Linux version" in consoles[0].read_text()
    said = sorted(line.split(": ", 1)[1] for out, _ in outputs for line in out.splitlines()
                  if line.startswith("artifacts of this run: "))
    assert said == [str(d) for d in dirs]
