"""Kernel source identities: what the kernel build's cache key is made of."""
import subprocess

import pytest

from harness import kernelbuild, kernelsource
from harness.errors import HarnessError


def _tree(tmp_path):
    (tmp_path / "kernel/livepatch").mkdir(parents=True)
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 7\n")
    (tmp_path / "kernel/livepatch/core.c").write_text("int x;\n")
    return tmp_path


def test_a_directory_that_is_no_kernel_tree_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="not a Linux kernel source tree"):
        kernelsource.local_tree(tmp_path)


def test_a_git_tree_is_its_commit_plus_its_uncommitted_changes(tmp_path):
    tree = _tree(tmp_path)
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    clean = kernelsource.local_tree(tree)
    assert clean.identity.startswith("git ") and clean.version == "6.12.7"
    (tree / "kernel/livepatch/core.c").write_text("int y;\n")
    dirty = kernelsource.local_tree(tree)
    assert dirty.identity != clean.identity
    assert dirty.build_slot == clean.build_slot   # same build dir: rebuilds are incremental
    (tree / "kernel/livepatch/new.c").write_text("int z;\n")
    assert kernelsource.local_tree(tree).identity != dirty.identity


def test_a_tree_without_git_is_identified_by_its_newest_file(tmp_path):
    tree = _tree(tmp_path)
    before = kernelsource.local_tree(tree).identity
    import os
    os.utime(tree / "kernel/livepatch/core.c", ns=(1, 2 * 10**18))
    assert kernelsource.local_tree(tree).identity != before


def test_build_errors_keep_the_compiler_lines(tmp_path):
    log = tmp_path / "log"
    log.write_text("  CC      kernel/livepatch/core.o\n"
                   "/src/kernel/livepatch/core.c: In function 'klp_enable_patch':\n"
                   "/src/kernel/livepatch/core.c:12:5: error: expected ';' before '}' token\n"
                   "make[4]: *** [scripts/Makefile.build:229: kernel/livepatch/core.o] Error 1\n"
                   + "  CC      other.o\n" * 50)
    text = kernelbuild._errors(log)
    assert "core.c:12:5: error: expected ';'" in text
    assert "In function 'klp_enable_patch'" in text
    assert "other.o" not in text
