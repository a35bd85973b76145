"""--kernel-patch: a recipe's kernel source with patches applied, in a tree of its own (the
original untouched), and a patch that does not apply named by its hunk before any build."""
import shutil
import textwrap

import pytest

from harness import kernelsource
from harness.errors import HarnessError
from harness.kernelsource import KernelSource

pytestmark = pytest.mark.skipif(shutil.which("patch") is None, reason="needs GNU patch")

ORIGINAL = "".join(f"line {i}\n" for i in range(1, 31))


def tree(tmp_path) -> KernelSource:
    top = tmp_path / "linux"
    (top / "kernel" / "livepatch").mkdir(parents=True)
    (top / "Makefile").write_text("VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\n")
    (top / "kernel" / "livepatch" / "transition.c").write_text(ORIGINAL)
    return KernelSource(tree=top, identity="debian linux-source-7.3 7.3.4-1",
                        build_slot="linux-source-7.3-7.3.4-1")


def diff(tmp_path, name, old_line, new_line, at=20) -> str:
    """A unified diff of kernel/livepatch/transition.c changing ``old_line`` at ``at``."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""\
        --- a/kernel/livepatch/transition.c
        +++ b/kernel/livepatch/transition.c
        @@ -{at - 1},3 +{at - 1},3 @@
         line {at - 1}
        -{old_line}
        +{new_line}
         line {at + 1}
        """))
    return path


def test_patches_apply_in_order_to_a_tree_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    base = tree(tmp_path)
    first = diff(tmp_path, "one.patch", "line 20", "line twenty")
    second = diff(tmp_path, "two.patch", "line twenty", "line 20, patched twice")
    got = kernelsource.patched(base, [first, second])
    assert "line 20, patched twice\n" in (got.tree / "kernel/livepatch/transition.c").read_text()
    # the original tree (whose files the patched tree hard-links) is as it was
    assert (base.tree / "kernel/livepatch/transition.c").read_text() == ORIGINAL
    assert got.version == "7.3.4" and got.label == "7.3.4 + one.patch, two.patch"
    assert got.base is base and got.changed == ("kernel/livepatch/transition.c",)
    assert got.identity.startswith(base.identity) and got.identity != base.identity
    assert got.build_slot != base.build_slot   # a build dir of its own
    # the same patches again: the same cached tree; other content: another one
    assert kernelsource.patched(base, [first, second]).tree == got.tree
    other = diff(tmp_path, "three.patch", "line 20", "line 20 otherwise")
    assert kernelsource.patched(base, [other]).tree != got.tree
    # a mail around the same diff (git format-patch): the same tree, nothing rebuilt
    mail = tmp_path / "0001-one.patch"
    mail.write_text("From: someone\nSubject: [PATCH] one\n\nWhy.\n---\n" + first.read_text())
    assert kernelsource.patched(base, [mail, second]).identity == got.identity


def test_a_patch_that_does_not_apply_is_named_by_its_hunk(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    base = tree(tmp_path)
    stale = diff(tmp_path, "stale.patch", "line 20 as it was in another kernel", "new")
    with pytest.raises(HarnessError) as e:
        kernelsource.patched(base, [stale])
    said = str(e.value)
    assert "stale.patch" in said and "hunk #1 of kernel/livepatch/transition.c" in said
    assert "@@ -19,3 +19,3 @@" in said and "Linux 7.3.4" in said
    # nothing half-made stays in the cache, and the original is untouched
    assert not list((tmp_path / "cache" / "sources").glob("*patched*/.complete"))
    assert (base.tree / "kernel/livepatch/transition.c").read_text() == ORIGINAL


def test_a_missing_patch_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HarnessError, match="no such file"):
        kernelsource.patched(tree(tmp_path), [tmp_path / "nope.patch"])
