"""Kernel build progress: a fraction and the time left once a build of the same
configuration has told how many steps there are; before that, it says it is the first.
klp-build's progress, and the ticker both share."""
import re
import time

from harness import kernelbuild, klpbuild, progress


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


# -- the ticker both builds share (harness/progress.py) ------------------------------------

def _said(monkeypatch):
    """What the harness's log is told, and a ticker that ticks every 10 ms."""
    said = []
    monkeypatch.setattr(progress.log, "progress", said.append)
    monkeypatch.setattr(progress, "EVERY", 0.01)
    return said


def _wait_for(said, n, limit=5.0):
    deadline = time.monotonic() + limit
    while len(said) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_ticker_says_what_tick_returns_until_stopped_and_nothing_for_none(monkeypatch):
    said = _said(monkeypatch)
    answers = iter([None, "one", None, "two"] + ["more"] * 10_000)

    class Counting(progress.Ticker):
        def tick(self):
            return next(answers)

    ticker = Counting("building x")
    ticker.start()
    _wait_for(said, 3)
    ticker.stop()
    ticker._thread.join(5)
    assert not ticker._thread.is_alive()
    assert said[:3] == ["building x: one", "building x: two", "building x: more"]
    stopped = len(said)
    time.sleep(0.05)
    assert len(said) == stopped   # nothing after stop()


def test_a_kernel_builds_tick_is_its_status_and_last_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    said = _said(monkeypatch)
    p = kernelbuild._Progress("building kernel 7.3.4 for x86_64", tmp_path)
    p.start()
    p.line("  CC      kernel/livepatch/core.o")
    _wait_for(said, 2)
    p.stop(ok=False)
    assert said[0] == ("building kernel 7.3.4 for x86_64: started (the first build of this "
                       "configuration: no total known yet)")
    assert re.fullmatch(r"building kernel 7\.3\.4 for x86_64: 1 steps, \d+s \(first build: "
                        r"no total known\), at kernel/livepatch/core\.o", said[1]), said[1]
    assert re.fullmatch(r"building kernel 7\.3\.4 for x86_64: FAILED after \d+s \(1 steps\)",
                        said[-1]), said[-1]


def test_klp_build_says_its_steps_and_ticks_only_in_the_original_build(tmp_path, monkeypatch):
    said = _said(monkeypatch)
    tree, kbuild = tmp_path / "tree", tmp_path / "kbuild"
    for top, n in ((tree, 3), (kbuild, 12)):
        (top / "kernel").mkdir(parents=True)
        for i in range(n):
            (top / "kernel" / f"f{i}.o").write_text("")
    (tree / "klp-tmp").mkdir()
    (tree / "klp-tmp" / "copy.o").write_text("")   # klp-build's copies do not count
    p = klpbuild._Progress("klp-build klp_x", tree, kbuild, orig_done=False)
    assert said == ["klp-build klp_x: first run for this image: the original kernel is "
                    "built once, with function sections"]
    assert p.tick() is None   # before the original build: nothing to count
    p.line("Validating patch(es)")
    p.line("make[1]: Entering directory")   # not a step of klp-build's
    assert re.fullmatch(r"klp-build klp_x: Validating patch\(es\) \(at \d+s\)", said[-1])
    assert len(said) == 2
    p.line("Building original kernel")
    assert re.fullmatch(r"original kernel 3 of ~12 objects, \d+s(, about \d+s left)?",
                        p.tick()), p.tick()
    p.line("Building patched kernel")
    assert p.tick() is None
    again = klpbuild._Progress("klp-build klp_y", tree, kbuild, orig_done=True)
    assert said[-1] == ("klp-build klp_y: restarting at the patched build (the original "
                        "build is kept)")


def test_time_left_is_said_only_between_the_first_step_and_the_last():
    assert progress.time_left(100, 400, 60) == ", about 180s left"
    assert progress.time_left(0, 400, 60) == ""
    assert progress.time_left(400, 400, 60) == ""
    assert progress.time_left(500, 400, 60) == ""
