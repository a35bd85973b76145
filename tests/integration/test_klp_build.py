"""Livepatches from source patches, end to end on real parts: the default image's kernel
source's own scripts/livepatch/klp-build makes the module, and a real x86_64 guest of the
image's kernel loads it. The example scenarios (scenarios/klp-build/) run as scenarios of
the suite; here: the command line, a user's own directory, refusals and bisect-run."""
import os
import subprocess
import sys
import textwrap

import pytest

from harness import bisect, image as imagemod, klpbuild, klporig
from harness.modules import describe
from harness.pytest_plugin import selected_arches

ARCH = "x86_64"   # the only arch klp-build supports as of Linux 7.3
PROJECT = imagemod.PROJECT
PATCHES = PROJECT / "scenarios" / "klp-build" / "patches"
MINE = PROJECT / "examples" / "my-livepatches"
pytestmark = [pytest.mark.vm, pytest.mark.klp_image(imagemod.DEFAULT_IMAGE, arch=ARCH)]


@pytest.fixture(autouse=True)
def _x86_64_selected(request):
    if ARCH not in selected_arches(request.config):
        pytest.skip(f"klp-build runs for {ARCH} only, which is not among the selected arches")


def klp_harness(*args, cwd=PROJECT, timeout=1800):
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_livepatch_build_makes_a_livepatch_for_the_images_kernel(tmp_path):
    result = klp_harness("livepatch", "build", "--arch", ARCH, "-o", tmp_path / "out",
                         MINE / "cmdline-fix.patch")
    assert result.returncode == 0, result.stderr[-3000:]
    ko = tmp_path / "out" / "livepatch_cmdline_fix.ko"
    assert result.stdout.startswith(str(ko)), result.stdout
    info = describe(ko)
    image = imagemod.build(imagemod.DEFAULT_IMAGE, ARCH)
    assert (info.name, info.livepatch, info.release) == \
        ("livepatch_cmdline_fix", True, image.kernel_release)


def test_the_images_kernel_is_klp_builds_original_build_compiled_once(tmp_path):
    """The x86_64 image's kernel was built in-tree with klp-build's own variables, and a
    workspace made from it starts at klp-build's step 2: no original build, and the patched
    build compiles what the patch changed, not the kernel (an object newer than klp-build's
    timestamp was compiled by it; a full build makes about 800)."""
    image = imagemod.build(imagemod.DEFAULT_IMAGE, ARCH)
    assert klporig.is_shared(image.kbuild_dir), image.kbuild_dir
    space = klpbuild.Workspace(image, tmp_path / "workspaces")
    out = tmp_path / "out"
    out.mkdir()
    space.run(klpbuild.LivepatchSource("klp_once", (MINE / "cmdline-fix.patch",)), out)
    log = (out / "klp-build.log").read_text()
    assert (out / "klp_once.ko").exists(), log[-3000:]
    assert "Building original kernel" not in log and "Building patched kernel" in log
    tree = space.dir / "tree"
    stamp = (tree / "klp-tmp" / "timestamp").stat().st_mtime
    compiled = [p for p in tree.rglob("*.o") if "klp-tmp" not in p.parts
                and p.stat().st_mtime > stamp and "tools" not in p.parts]
    assert 0 < len(compiled) < 60, sorted(str(p.relative_to(tree)) for p in compiled)[:80]
    assert describe(out / "klp_once.ko").release == image.kernel_release


def test_a_refused_patch_gives_klp_builds_reason_not_the_build_output(tmp_path):
    result = klp_harness("livepatch", "build", "--arch", ARCH, "-o", tmp_path,
                         PATCHES / "refused-changed-data.patch")
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "objtool: changed data: oops_limit" in result.stderr
    refusal = [l for l in result.stderr.splitlines() if not l.startswith("klp-harness: klp-build ")
               and not l.startswith("klp-harness: build")]
    assert len(refusal) <= 5, refusal   # the reason and the log's path, no wall of make output
    assert not list(tmp_path.glob("*.ko"))


def test_a_patch_that_does_not_apply_names_the_file_and_hunk(tmp_path):
    result = klp_harness("livepatch", "build", "--arch", ARCH, "-o", tmp_path,
                         PATCHES / "does-not-apply.patch")
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "does-not-apply.patch does not apply to the image's kernel source:\nhunk #1 of " \
           "fs/proc/version.c (@@ -13,6 +13,7 @@) does not match the source" in result.stderr


@pytest.mark.klp_image(imagemod.DEFAULT_IMAGE, arch="ppc64le")
def test_an_arch_klp_build_does_not_support_is_refused_in_one_line(tmp_path):
    result = klp_harness("livepatch", "build", "--arch", "ppc64le", "-o", tmp_path,
                         MINE / "cmdline-fix.patch")
    assert result.returncode == 2, result.stdout + result.stderr[-3000:]
    errors = [l for l in result.stderr.splitlines() if "error" in l]
    assert errors == ["klp-harness: error: klp-build does not support ppc64le in Linux 7.3.4 "
                      "(the arch does not select HAVE_KLP_BUILD; as of 7.3 only x86_64 does)"]


def test_klp_run_tests_a_users_own_directory_of_patches(tmp_path):
    """The README's way: a directory outside scenarios/ with a patch and a scenario."""
    result = klp_harness("run", "--arch", ARCH, "--artifacts", tmp_path, MINE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {l.split()[0]: l.split()[1] for l in result.stdout.splitlines()
            if l.startswith(("examples/", "external/"))}
    assert rows == {"examples/my-livepatches/cmdline-fix": "pass",
                    "external/from-patches/my_cmdline_fix": "pass"}, result.stdout


SCENARIO = textwrap.dedent("""\
    description: my fix to /proc/version is on while its livepatch is
    livepatches:
      klp_bisect_fix: fix.patch
    steps:
      - load: klp_bisect_fix
      - run: cat /proc/version
        contains: ["fixed by klp_version_fix"]
      - disable: klp_bisect_fix
      - unload: klp_bisect_fix
    """)

# (commit subject, edit of the patch). Commit 2's patch does not apply (fixed in 3); commit
# 4 plants the regression.
HISTORY = [
    ("fix: /proc/version says it is fixed", lambda p: p),
    ("fix: a better description", lambda p: p.replace("proc: ", "proc: fix: ", 1)),
    ("fix: rebase onto a version.c we do not have",
     lambda p: p.replace("utsname()->version);", "utsname()->version, 0);")),
    ("fix: rebase back", lambda p: p.replace("utsname()->version, 0);", "utsname()->version);")),
    ("fix: shorter words",                               # the regression
     lambda p: p.replace("fixed by klp_version_fix", "fixd by klp_version_fix")),
    ("fix: describe it once more", lambda p: p.replace("proc: fix: ", "proc: ", 1)),
]
PLANTED, NOT_APPLYING = 4, 2


def _git(repo, *args) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="klp", GIT_AUTHOR_EMAIL="klp@localhost",
               GIT_COMMITTER_NAME="klp", GIT_COMMITTER_EMAIL="klp@localhost")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def test_bisect_run_over_a_history_of_patches_names_the_planted_commit(request, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "check.yaml").write_text(SCENARIO)
    patch, commits = (PATCHES / "version-fix.patch").read_text(), []
    for subject, edit in HISTORY:
        patch = edit(patch)
        (repo / "fix.patch").write_text(patch)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", subject)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    workdir = tmp_path / "bisect"
    _git(repo, "bisect", "start", commits[-1], commits[0])
    command = [sys.executable, "-m", "harness.cli", "bisect-run", "--image-kernel", "--arch",
               ARCH, "--accel", request.config.getoption("klp_accel"), "--workdir",
               str(workdir), "check.yaml"]
    result = subprocess.run(["git", "-C", str(repo), "bisect", "run", *command],
                            capture_output=True, text=True, timeout=1800,
                            env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{commits[PLANTED]} is the first bad commit" in result.stdout, result.stdout[-3000:]
    log = (workdir / "bisect.log").read_text()
    assert ": abort" not in log, log
    # The commit whose patch does not apply cannot be tested: a skip, never bad.
    _git(repo, "bisect", "reset")
    _git(repo, "checkout", "-q", commits[NOT_APPLYING])
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert result.returncode == bisect.SKIP, result.stdout + result.stderr[-3000:]
    assert "skip (125)" in result.stdout and "does not apply" in result.stdout, result.stdout
