"""The project's GitLab pipeline (.gitlab-ci.yml), run on this machine by gitlab-ci-local
(tools/gitlab-ci-local installs the pinned version if missing) with its shell executor and
each job in a dir of its own, artifacts passed between stages as GitLab does: build jobs for
x86_64 and s390x export bundles (from the warm cache), two test shards import them into
fresh caches and run, the report job merges. The test and report stages run with a PATH
without compilers, make or klp-build's tools: a test runner that cannot build. The merged
results must equal an unsharded `klp-harness run` of the same selection, cell by cell.

One command on a fresh machine: ./klp test -n 0 tests/integration/test_gitlab_pipeline.py
It runs only when named so: its 3 minutes on two cores (6 to 7 on a shared machine: the
pipeline, an unsharded run, the control), for what the scenarios' own tests already check,
would take the cold CI run (./klp test: 53 minutes of pytest on 2026-12-05) to the edge of
its hour.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import yaml

from harness import bundle, image as imagemod, prebuilt
from nobuild import no_build_tools_path

pytestmark = pytest.mark.vm

PROJECT = imagemod.PROJECT
ARCHES = ["x86_64", "s390x"]
SCENARIOS = ["scenarios/parity", "scenarios/system-state"]
STATE = PROJECT / ".gitlab-ci-local"   # gitlab-ci-local's: job dirs, logs, artifacts
SHARDS = yaml.safe_load((PROJECT / ".gitlab-ci.yml").read_text())["test"]["parallel"]
TIMEOUT = 3600
RECORDS = {"kvm-probe", prebuilt.KIND}   # what a run or an import records, not builds


def gitlab_ci_local(*args: str, path: str) -> subprocess.CompletedProcess:
    """Run (part of) the pipeline for our selection; job output goes to the state dir."""
    return subprocess.run(
        [str(PROJECT / "tools" / "gitlab-ci-local"), "--force-shell-executor",
         "--shell-isolation", "--no-artifacts-to-source", "--no-color",
         "--variable", f"KLP_ARCHES={' '.join(ARCHES)}",
         "--variable", f"KLP_SCENARIOS={' '.join(SCENARIOS)}", *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=TIMEOUT,
        env=dict(os.environ, PATH=path))


def job_logs(prefix: str) -> Dict[str, str]:
    """The output of each job whose dir name starts with ``prefix``, by that name."""
    return {p.stem: p.read_text(errors="replace")
            for p in sorted((STATE / "output").glob(f"{prefix}*.log"))}


def cells(junit: Path) -> Dict[str, str]:
    """Each test case of a JUnit file (``scenario[arch]``) and its status: pass, fail, or
    the skipped element's type (skip, xfail)."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        status = "pass"
        if case.find("failure") is not None or case.find("error") is not None:
            status = "fail"
        elif case.find("skipped") is not None:
            status = case.find("skipped").get("type") or "skip"
        assert case.get("name") not in found, f"{junit}: {case.get('name')} twice"
        found[case.get("name")] = status
    return found


def differences(got: Dict[str, str], want: Dict[str, str]) -> List[Tuple[str, str, str]]:
    """Cells whose status differs, or that only one side has: (cell, got, want)."""
    return [(c, got.get(c, "missing"), want.get(c, "missing"))
            for c in sorted(set(got) | set(want)) if got.get(c) != want.get(c)]


def entries_of(bundles: List[Path]) -> set:
    """The cache entries (``kind/key``) the bundles hold, from their manifests."""
    found = set()
    for b in bundles:
        with tarfile.open(b) as tar:
            manifest = tar.extractfile(bundle.MANIFEST).read()
        found |= set(json.loads(manifest)["entries"])
    return found


def cache_entries(root: Path) -> set:
    return {f"{kind.name}/{e.name}" for kind in root.iterdir() if kind.is_dir()
            for e in kind.iterdir() if not e.name.startswith(".") and not
            e.name.endswith(".lock")}


def run_pipeline(no_tools: str) -> Dict[str, float]:
    """The build stage on this host's PATH (it finds the warm cache), test and report on
    ``no_tools``, without build tools; each must pass. Returns each stage's wall time."""
    shutil.rmtree(STATE, ignore_errors=True)
    assert shutil.which("gcc", path=no_tools) is None
    assert shutil.which("make", path=no_tools) is None
    times = {}
    for stage, path in (("build", os.environ["PATH"]), ("test", no_tools),
                        ("report", no_tools)):
        started = time.monotonic()
        done = gitlab_ci_local("--stage", stage, path=path)
        times[stage] = time.monotonic() - started
        assert done.returncode == 0, f"stage {stage}:\n{done.stdout[-6000:]}{done.stderr[-3000:]}"
    return times


def check_tests_built_nothing() -> None:
    """The test jobs built nothing: no build's `building ...` line, and their fresh caches
    hold what the bundles brought, no more (a build would add an entry)."""
    tests = job_logs("test")
    assert len(tests) == SHARDS, list(tests)
    bundles = sorted((STATE / "artifacts").glob("build*/bundles/*.tar.gz"))
    assert [b.name for b in bundles] == sorted(f"linux-7.3-{a}.tar.gz" for a in ARCHES)
    brought = entries_of(bundles)
    for name, log in tests.items():
        assert "building " not in log, f"{name}:\n{log[-4000:]}"
        assert "(built elsewhere, not here)" in log, f"{name}:\n{log[-4000:]}"
        for a in ARCHES:
            assert f"imported bundles/linux-7.3-{a}.tar.gz" in log, f"{name}:\n{log[-4000:]}"
        extra = {e for e in cache_entries(STATE / "builds" / name / ".klp-cache") - brought
                 if e.split("/")[0] not in RECORDS}
        assert not extra, f"{name} made cache entries of its own: {sorted(extra)}"


def check_merge_equals(unsharded: Path) -> None:
    """The merged JUnit report has the unsharded run's cells, each with its status; and,
    the control, one shard's alone lacks some, which the comparison names."""
    merged = STATE / "artifacts" / "report" / "merged"
    assert (merged / "report.html").is_file(), sorted(merged.iterdir())
    want = cells(unsharded / "junit.xml")
    assert len(want) > 60, want   # parity and system-state on two arches
    assert differences(cells(merged / "junit.xml"), want) == []
    shard = next((STATE / "artifacts").glob("test*/shards/1/run-*/junit.xml"))
    missing = differences(cells(shard), want)
    assert missing and all(got == "missing" for _, got, _ in missing), missing
    assert len(missing) < len(want)


def check_report_without_a_shard_fails(tmp_path: Path, no_tools: str) -> None:
    """The report job on the artifacts of one test job only: the merge must name the
    missing shard and fail the job, not publish a report of half the cells."""
    second = sorted((STATE / "artifacts").glob("test*"))[-1]
    shutil.move(str(second), str(tmp_path / "gone"))
    try:
        done = gitlab_ci_local("--stage", "report", path=no_tools)
    finally:
        shutil.move(str(tmp_path / "gone"), str(second))
    assert done.returncode != 0, done.stdout[-4000:]
    log = job_logs("report")["report"]
    assert f"shard {SHARDS}/{SHARDS} missing" in log, log[-4000:]


def named(config) -> bool:
    """This file was named on pytest's command line (not just found in a dir)."""
    here = Path(__file__).resolve()
    params = config.invocation_params
    return any((params.dir / a.split("::")[0]).resolve() == here
               for a in params.args if not a.startswith("-"))


def test_the_pipeline_runs_green_and_equals_an_unsharded_run(tmp_path, request):
    if not named(request.config):
        pytest.skip(f"the GitLab pipeline runs when named: ./klp test -n 0 "
                    f"{Path(__file__).relative_to(PROJECT)}")
    no_tools = no_build_tools_path(tmp_path)
    times = run_pipeline(no_tools)
    check_tests_built_nothing()
    started = time.monotonic()
    ref = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", *[f"--arch={a}" for a in ARCHES],
         "--accel", request.config.getoption("klp_accel"), "--artifacts",
         str(tmp_path / "unsharded"), *SCENARIOS], cwd=PROJECT, capture_output=True,
        text=True, timeout=TIMEOUT)
    times["unsharded run"] = time.monotonic() - started
    assert ref.returncode == 0, ref.stdout[-4000:] + ref.stderr[-3000:]
    figures = ", ".join(f"{k} {v:.0f}s" for k, v in times.items())
    request.node.user_properties.append(("figures", figures))
    print(f"\ngitlab-ci-local: {figures}; the pipeline "
          f"{sum(v for k, v in times.items() if k != 'unsharded run'):.0f}s")
    check_merge_equals(tmp_path / "unsharded" / "latest")
    check_report_without_a_shard_fails(tmp_path, no_tools)
    shutil.rmtree(STATE, ignore_errors=True)   # job dirs with venvs and caches: kept on failure
