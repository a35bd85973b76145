"""`git bisect run klp-harness bisect-run ...` finds a planted livepatch regression.

A small git history of livepatch module sources (built against the default image's kernel,
which stays fixed): one commit makes the module's set-up run twice (once from module init,
once from its pre-patch callback), and one earlier commit does not compile. The README's
recipe must name exactly the planted commit. A kernel tree that does not build answers 125.
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from harness import bisect, image as imagemod
from harness.pytest_plugin import selected_arches

pytestmark = pytest.mark.vm

PROJECT = imagemod.PROJECT

MODULE = textwrap.dedent("""\
    // SPDX-License-Identifier: GPL-2.0
    /* A livepatch whose pre-patch callback sets up state once. */
    #define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
    #include <linux/module.h>
    #include <linux/kernel.h>
    #include <linux/livepatch.h>
    #include <linux/seq_file.h>

    static int setups;

    static int demo_cmdline_proc_show(struct seq_file *m, void *v)
    {
    	seq_printf(m, "%s: patched\\n", THIS_MODULE->name);
    	return 0;
    }

    static void demo_setup(void)
    {
    	setups++;
    	pr_info("setup %d\\n", setups);
    }

    static int demo_pre_patch(struct klp_object *obj)
    {
    	demo_setup();
    	return 0;
    }

    static void demo_post_unpatch(struct klp_object *obj)
    {
    	pr_info("teardown\\n");
    }

    static struct klp_func funcs[] = {
    	{ .old_name = "cmdline_proc_show", .new_func = demo_cmdline_proc_show, }, { }
    };

    static struct klp_object objs[] = {
    	{
    		.funcs = funcs,
    		.callbacks = { .pre_patch = demo_pre_patch, .post_unpatch = demo_post_unpatch },
    	}, { }
    };

    static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs, };

    static int demo_init(void)
    {
    	return klp_enable_patch(&patch);
    }

    static void demo_exit(void)
    {
    }

    module_init(demo_init);
    module_exit(demo_exit);
    MODULE_LICENSE("GPL");
    MODULE_INFO(livepatch, "Y");
    """)

SCENARIO = textwrap.dedent("""\
    description: the demo livepatch sets up its state exactly once
    steps:
      - load: klp_bisect_demo
      - run: cat /proc/cmdline
        stdout: "klp_bisect_demo: patched"
      - disable: klp_bisect_demo
      - unload: klp_bisect_demo
      - log:
          contains: ["klp_bisect_demo: setup 1", "klp_bisect_demo: teardown"]
          absent: ["klp_bisect_demo: setup 2"]
    """)

# (commit subject, edit of the previous source). Commit 3 does not compile (fixed in 4);
# commit 5 plants the regression.
HISTORY = [
    ("demo: a livepatch with a pre-patch set-up", lambda s: s),
    ("demo: document the callbacks",
     lambda s: s.replace("static int setups;", "/* set up by the pre-patch callback */\nstatic int setups;")),
    ("demo: log the teardown count (does not build)",
     lambda s: s.replace('pr_info("teardown\\n");', 'pr_info("teardown\\n")')),
    ("demo: fix the build",
     lambda s: s.replace('pr_info("teardown\\n")\n', 'pr_info("teardown\\n");\n')),
    ("demo: set up early, at module init",          # the regression: set-up runs twice
     lambda s: s.replace("static int demo_init(void)\n{\n",
                         "static int demo_init(void)\n{\n\tdemo_setup();\n")),
    ("demo: say what the patched function prints",
     lambda s: s.replace("static int demo_cmdline", "/* replaces /proc/cmdline */\nstatic int demo_cmdline")),
    ("demo: name the exit function's job",
     lambda s: s.replace("static void demo_exit(void)\n{\n", "static void demo_exit(void)\n{\n\t/* nothing to free */\n")),
    ("demo: tidy", lambda s: s + "/* end */\n"),
]
PLANTED, UNBUILDABLE = 4, 2   # indexes in HISTORY


def _git(repo, *args) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="klp", GIT_AUTHOR_EMAIL="klp@localhost",
               GIT_COMMITTER_NAME="klp", GIT_COMMITTER_EMAIL="klp@localhost")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture
def module_history(tmp_path):
    """A git repo whose modules/ holds the demo livepatch at each commit of HISTORY."""
    repo = tmp_path / "repo"
    (repo / "modules").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    source, commits = MODULE, []
    for subject, edit in HISTORY:
        changed = edit(source)
        assert changed != source or not commits, f"edit of '{subject}' changed nothing"
        source = changed
        (repo / "modules" / "klp_bisect_demo.c").write_text(source)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", subject)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    scenario = tmp_path / "setup-once.yaml"
    scenario.write_text(SCENARIO)
    return repo, commits, scenario


def _klp_harness():
    """The README's `klp-harness` command, from this checkout."""
    return [sys.executable, "-m", "harness.cli"]


def _env():
    return dict(os.environ, PYTHONPATH=str(PROJECT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_git_bisect_run_names_the_planted_commit(module_history, request, tmp_path):
    repo, commits, scenario = module_history
    arch = selected_arches(request.config)[0]
    workdir = tmp_path / "bisect"
    # The README's recipe: the last commit is bad, the first good; git runs us at each step.
    _git(repo, "bisect", "start", commits[-1], commits[0])
    command = [*_klp_harness(), "bisect-run", "--arch", arch, "--image", imagemod.DEFAULT_IMAGE,
               "--accel", request.config.getoption("klp_accel"), "--modules", "modules",
               "--workdir", str(workdir), str(scenario)]
    result = subprocess.run(["git", "-C", str(repo), "bisect", "run", *command],
                            capture_output=True, text=True, env=_env(), timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{commits[PLANTED]} is the first bad commit" in result.stdout, result.stdout[-3000:]
    log = (workdir / "bisect.log").read_text().splitlines()
    assert len(log) >= 2
    for line in log:   # commit, verdict, build and run times
        assert f" {arch} '" in line and "; build " in line and "s, run " in line, line
    assert any(HISTORY[PLANTED][0] in l and ": bad (1);" in l for l in log), log
    assert all(": abort" not in l for l in log), log


def test_a_commit_whose_modules_do_not_build_is_skipped(module_history, request, tmp_path):
    repo, commits, scenario = module_history
    _git(repo, "checkout", "-q", commits[UNBUILDABLE])
    result = subprocess.run(
        [*_klp_harness(), "bisect-run", "--arch", selected_arches(request.config)[0],
         "--accel", request.config.getoption("klp_accel"), "--modules", "modules",
         "--workdir", str(tmp_path / "bisect"), str(scenario)],
        cwd=repo, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == bisect.SKIP, result.stdout + result.stderr
    assert "skip (125)" in result.stdout and "the modules do not build" in result.stdout


def test_a_flaky_failure_in_any_repeated_run_makes_the_step_bad(module_history, request,
                                                                tmp_path):
    """--repeat: a scenario that fails in its second run (and only there) makes the step bad,
    and the output says which run failed."""
    repo, commits, _ = module_history
    flaky = tmp_path / "flaky.yaml"
    marker = "/root/klp-bisect-flaky-ran-once"
    flaky.write_text(textwrap.dedent(f"""\
        steps:
          - load: klp_bisect_demo
          - run: "if [ -e {marker} ]; then exit 1; fi; touch {marker}"
          - disable: klp_bisect_demo
          - unload: klp_bisect_demo
        """))
    result = subprocess.run(
        [*_klp_harness(), "bisect-run", "--arch", selected_arches(request.config)[0],
         "--accel", request.config.getoption("klp_accel"), "--modules", "modules",
         "--repeat", "3", "--workdir", str(tmp_path / "bisect"), str(flaky)],
        cwd=repo, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == bisect.BAD, result.stdout + result.stderr
    assert "failed in run 2 of 3 (--repeat: any failed run makes the step bad" in result.stdout
    # the k/N line of `run --repeat`: the step stopped at run 2 of 3
    assert re.search(r"^klp-bisect: \S*flaky\[\w+\]: fail  1/2 \(95% CI 9%–91%\) [\d.]+s \(the "
                     r"step stopped at its first failed run\)$", result.stdout, re.M), result.stdout


def test_a_missing_scenario_file_aborts_the_bisection(tmp_path):
    result = subprocess.run(
        [*_klp_harness(), "bisect-run", "--modules", str(tmp_path), "--workdir",
         str(tmp_path / "bisect"), str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == bisect.ABORT, result.stdout + result.stderr
    assert "abort (128)" in result.stdout and "nope.yaml" in result.stdout


def test_a_kernel_tree_that_does_not_build_is_skipped(request, tmp_path):
    """A kernel tree (a hard-linked copy of the default image's source) with a compile error
    early in the build: bisect-run answers 125 within the first minute or so of a cold
    build, and logs the build time."""
    arch = selected_arches(request.config)[0]
    source, profile, _ = imagemod.kernel_inputs(imagemod.DEFAULT_IMAGE, arch)
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-al", str(source.tree), str(tree)], check=True)
    broken = tree / "arch" / profile.kernel_arch / "kernel" / "asm-offsets.c"
    broken.unlink()   # a hard link into the cached source: replace, never edit in place
    broken.write_text("int klp_harness_broken(void) { return 0 }\n")
    scenario = PROJECT / "scenarios/parity/livepatch/basic-function-patching.yaml"
    result = subprocess.run(
        [*_klp_harness(), "bisect-run", "--arch", arch, "--build-dir", str(tmp_path / "build"),
         "--workdir", str(tmp_path / "bisect"), str(scenario)],
        cwd=tree, capture_output=True, text=True, env=_env(), timeout=900)
    assert result.returncode == bisect.SKIP, result.stdout[-3000:] + result.stderr[-3000:]
    assert "skip (125)" in result.stdout and "the kernel does not build" in result.stdout
    assert "asm-offsets.c:1:" in result.stderr   # the compiler's own words, for the user
    line = (tmp_path / "bisect" / "bisect.log").read_text()
    assert "not a git checkout" in line and "; build " in line
    shutil.rmtree(tree)
