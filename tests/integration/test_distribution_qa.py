"""Distribution QA beyond the host's own release: trixie's 6.12 and trixie-backports' 7.3
kernels, whose headers want gcc-14, pass the parity and generic scenarios with modules built
by their own toolchain (a build root of their release when this host lacks gcc-14, as a
Debian 12 host does), the build root reused; and a QA run of candidate kernel packages given
as .deb files (which this test downloads itself) writes a report directory whose page a real
browser (Debian's chromium, headless) reads back as the run's matrix."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from harness import buildroot, debian, image as imagemod, modules, report
from harness.mirror import debian_mirror
from harness.pytest_plugin import selected_arches

pytestmark = pytest.mark.vm


@pytest.fixture
def x86_64(request):
    if "x86_64" not in selected_arches(request.config):
        pytest.skip("the distribution images are x86_64 images and x86_64 is not selected")


def _run(request, tmp_path, image, *scenarios):
    """klp-harness run (a pool of guests) on ``image``: (exit status, output, run dir)."""
    artifacts = tmp_path / "artifacts"
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--image", image, "--arch", "x86_64",
         "--accel", request.config.getoption("klp_accel"), "--artifacts", str(artifacts),
         *scenarios],
        cwd=imagemod.PROJECT, capture_output=True, text=True, timeout=2400,
        env=dict(os.environ, PYTHONPATH=str(imagemod.PROJECT)))
    return result.returncode, result.stdout + result.stderr, (artifacts / "latest").resolve()


def _failures(output: str) -> str:
    """The failed cases with their messages, then the output's tail (which may not hold
    them: a run prints each case as it ends, and its table last)."""
    blocks = re.findall(r"^FAIL .*\n(?:(?!(?:[A-Z]{4,5}) |kernels: ).*\n)*", output, re.M)
    return "".join(blocks) + "...\n" + output[-3000:]


@pytest.mark.parametrize("image", [
    pytest.param("debian-trixie", marks=pytest.mark.klp_image("debian-trixie", arch="x86_64")),
    pytest.param("debian-trixie-backports",
                 marks=pytest.mark.klp_image("debian-trixie-backports", arch="x86_64"))])
def test_a_trixie_kernel_passes_with_modules_from_its_own_toolchain(x86_64, request, tmp_path,
                                                                    image):
    status, output, run_dir = _run(request, tmp_path, image, "scenarios/parity",
                                   "scenarios/generic")
    assert status == 0, _failures(output)
    counts = re.search(r"^(\d+) passed, 0 failed, (\d+) skipped", output, re.M)
    assert counts and int(counts.group(1)) >= 25, output[-3000:]
    cases = list(ET.parse(run_dir / "junit.xml").iter("testcase"))
    assert all(c.find("skipped").get("message") for c in cases if c.find("skipped") is not None)

    img = imagemod.build(image, "x86_64")
    toolchain = img.toolchain
    assert toolchain.compiler == "x86_64-linux-gnu-gcc-14" and "gcc-14" in toolchain.packages
    # A module set built now: with this host's gcc-14 if it has one, else in the build
    # root, which is the one the run made (reused: not made again).
    sources = tmp_path / "src"
    sources.mkdir()
    shutil.copy(imagemod.PROJECT / "scenarios/modules/klp_cmdline.c", sources / "klp_qa_new.c")
    if toolchain.on_host():
        modules.build_set(img, sources, "qa")
        return
    root = buildroot.ensure(toolchain, debian_mirror())
    made = (root.parent / ".complete").stat().st_mtime
    ko = modules.build_set(img, sources, "qa")["klp_qa_new"]
    assert (root.parent / ".complete").stat().st_mtime == made
    log = (ko.parent / "build.log").read_text()
    assert log.startswith(f"$ bwrap --bind {root} /"), log[:500]
    info = modules.describe(ko)
    assert info.release == img.kernel_release and info.livepatch
    # the compiler the kernel was built with, as the module records it
    comment = subprocess.run(["readelf", "-p", ".comment", str(ko)], capture_output=True,
                             text=True).stdout
    assert "GCC: (Debian 14." in comment, comment


def _download_candidate(tmp_path) -> list:
    """bookworm's current kernel packages as files, as a QA team would get a candidate
    build: downloaded with mmdebstrap, kept from its apt cache."""
    dl = tmp_path / "download"
    dl.mkdir()
    subprocess.run(["mmdebstrap", "--variant=extract", "--architectures=amd64",
                    "--include=linux-image-amd64,linux-headers-amd64",
                    "--skip=cleanup/apt/cache", "bookworm", str(dl / "root"),
                    f"deb {debian_mirror()} bookworm main"],
                   check=True, capture_output=True, timeout=900)
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    for deb in (dl / "root/var/cache/apt/archives").glob("*.deb"):
        if re.match(r"linux-(image|headers)-\d|linux-kbuild-", deb.name):
            shutil.copy(deb, candidate)
    shutil.rmtree(dl)
    return sorted(candidate.glob("*.deb"))


FAILS = """\
description: a deliberate failure, for the report's link to its artifacts
steps:
  - run: "false"
"""


def test_a_qa_run_of_candidate_package_files_writes_a_report_a_browser_reads(x86_64, request,
                                                                              tmp_path):
    files = _download_candidate(tmp_path)
    assert len(files) == 4, files   # image, headers, headers -common, kbuild
    text = imagemod.recipe_path("debian-bookworm").read_text()
    kernel = textwrap.dedent(f"""\
        kernel:
          from: debian-files
          suite: bookworm
          files: [{", ".join(f"candidate/{f.name}" for f in files)}]
        """)
    mine = tmp_path / "candidate.yaml"   # bookworm's recipe with the files for its kernel
    mine.write_text(re.sub(r"^kernel:\n(?:  .*\n)+", kernel, text, flags=re.M))
    assert imagemod.Recipe.load(mine).kernel["from"] == "debian-files"
    (tmp_path / "fails.yaml").write_text(FAILS)

    status, output, run_dir = _run(request, tmp_path, str(mine), "scenarios/generic",
                                   "scenarios/parity/livepatch", str(tmp_path / "fails.yaml"))
    assert status == 1, _failures(output)   # exactly the deliberate failure
    assert re.search(r"^(\d+) passed, 1 failed,", output, re.M), output[-3000:]

    # The report directory: JUnit, summary, versions, the failure's artifacts, the page.
    for name in ("junit.xml", "summary.txt", "versions.json", "report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    versions = json.loads((run_dir / "versions.json").read_text())
    assert versions["harness"]
    tested = versions["images"]["x86_64"]
    assert tested["image"] == "candidate"
    for deb in files:   # each candidate file's package at its version
        fields = debian.deb_fields(str(deb))
        assert tested["packages"][fields["Package"]] == fields["Version"]
    assert tested["kernel_release"] in (run_dir / "summary.txt").read_text()
    junit = {c.get("name"): ("failure" if c.find("failure") is not None else
                             "skipped" if c.find("skipped") is not None else "passed")
             for c in ET.parse(run_dir / "junit.xml").iter("testcase")}
    fail_id = f"{tmp_path / 'fails'}[x86_64]"
    assert [n for n, k in junit.items() if k == "failure"] == [fail_id]

    # The page, as a real browser has it: the matrix read back from chromium's DOM.
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          "--dump-dom", (run_dir / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    matrix = report.MatrixReader()
    matrix.feed(dom)
    assert matrix.arches == ["x86_64"]
    read = {f"{scenario}[{arch}]": status for (scenario, arch), (status, _) in matrix.cells.items()}
    assert set(read) == set(junit)
    for name, kind in junit.items():
        assert read[name] in {"passed": ("pass",), "failure": ("fail",),
                              "skipped": ("skip", "xfail")}[kind], (name, read[name])
    links = matrix.links[(str(tmp_path / "fails"), "x86_64")]
    assert any(link.endswith("console.log") for link in links), links
    for link in links:   # relative to the page, and there
        assert (run_dir / link).exists(), link
