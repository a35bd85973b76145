"""Kernel build progress: a fraction and the time left once a build of the same
configuration has told how many steps there are; before that, it says it is the first."""
from harness import kernelbuild


def test_the_second_build_of_a_configuration_knows_its_total(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "build-a"
    first.mkdir()
    (first / ".config").write_text("CONFIG_LIVEPATCH=y\n")
    p = kernelbuild._Progress("building kernel 7.3.4 for x86_64", first)
    assert p.status(5) == "0 steps, 5s (first build: no total known)"
    for n in range(400):
        p.line(f"  CC      kernel/f{n}.o")
    p.stop(ok=True)

    again = tmp_path / "build-b"   # another build dir (a cold cache), the same configuration
    again.mkdir()
    (again / ".config").write_text("CONFIG_LIVEPATCH=y\n")
    p = kernelbuild._Progress("building kernel 7.3.4 for x86_64", again)
    for n in range(100):
        p.line(f"  CC      kernel/f{n}.o")
    assert p.status(60) == "100 of ~400 steps (25%), 60s, about 180s left"

    (again / ".config").write_text("CONFIG_LIVEPATCH=m\n")   # another configuration
    assert kernelbuild._Progress("building kernel 7.3.4 for x86_64", again).total == 0


def test_a_rebuild_does_not_make_its_few_steps_the_total(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    kept = tmp_path / "build"
    kept.mkdir()
    (kept / ".config").write_text("CONFIG_LIVEPATCH=y\n")
    (kept / "vmlinux").write_text("")   # built before: make does only what changed
    p = kernelbuild._Progress("building kernel 7.3.4 for x86_64", kept)
    p.line("  CC      kernel/livepatch/core.o")
    p.stop(ok=True)
    assert kernelbuild._Progress("building kernel 7.3.4 for x86_64", kept).total == 0
