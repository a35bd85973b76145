"""The build figures shipped with the recipes (images/build-figures.json, harness/
buildfigures.py): a newcomer's first kernel build shows a total and an ETA from them. They
must be of the recipes and fragments as they are: a changed fragment without refreshed
figures fails here, naming the command that refreshes them."""
import json
import shutil
import subprocess
import sys
import textwrap


from harness import arch as archmod, buildfigures, image, kernelbuild


def source_built():
    for path in sorted(image.IMAGES_DIR.glob("*.yaml")):
        recipe = image.Recipe.load(path)
        if recipe.builds_kernel:
            yield recipe


def stale(figures_file):
    """Lines naming each shipped figure whose recipe or fragments changed since."""
    shipped = buildfigures.load(figures_file)
    found = []
    for recipe in source_built():
        for arch, figures in shipped.get(recipe.name, {}).items():
            if figures.inputs != image.figures_inputs(recipe, archmod.get(arch)):
                found.append(f"{recipe.name} {arch}: {buildfigures.REFRESH} "
                             f"--image {recipe.name} --arch {arch}")
    return found


def test_the_shipped_figures_are_of_the_recipes_and_fragments_as_they_are():
    found = stale(image.BUILD_FIGURES)
    assert not found, ("the build figures of these kernels were measured on other recipes or "
                       "config fragments; refresh them (it builds the kernels if need be):\n"
                       + "\n".join(found))


def test_the_default_image_ships_figures_for_every_arch():
    recipe = image.Recipe.load(image.recipe_path(image.DEFAULT_IMAGE))
    shipped = buildfigures.load(image.BUILD_FIGURES).get(recipe.name, {})
    assert sorted(shipped) == sorted(recipe.arches), (
        f"run {buildfigures.REFRESH} to measure the missing ones")
    assert all(f.steps > 1000 and f.cpu_seconds > 60 for f in shipped.values())


def test_a_changed_fragment_makes_the_figures_stale(tmp_path, monkeypatch):
    """The negative control: a copy of images/ with one fragment changed fails the check."""
    copy = tmp_path / "images"
    shutil.copytree(image.IMAGES_DIR, copy, ignore=shutil.ignore_patterns("guest"))
    with open(copy / "kconfig" / "x86_64.config", "a") as f:
        f.write("CONFIG_PRINTK_TIME=y\n")
    monkeypatch.setattr(image, "IMAGES_DIR", copy)
    monkeypatch.setattr(image, "KCONFIG_DIR", copy / "kconfig")
    found = stale(copy / "build-figures.json")
    assert found and all(" x86_64: ./klp images figures --image " in f for f in found)
    assert any(f.startswith(f"{image.DEFAULT_IMAGE} x86_64") for f in found)


def test_a_recipe_without_figures_of_its_own_borrows_those_of_its_arch_and_variant(tmp_path):
    path = tmp_path / "figures.json"
    buildfigures.store(path, "linux-7.3", "s390x", buildfigures.Figures(2600, 900.0, "abc"))
    buildfigures.store(path, "linux-7.3-debug", "s390x",
                       buildfigures.Figures(3100, 2000.0, "def", "debug"))
    own = buildfigures.lookup(path, "linux-7.3", "s390x", "abc")
    assert own.steps == 2600 and not own.borrowed
    borrowed = buildfigures.lookup(path, "linux-6.12", "s390x", "xyz")
    assert (borrowed.steps, borrowed.borrowed) == (2600, "linux-7.3")
    assert buildfigures.lookup(path, "linux-6.12-debug", "s390x", "x", "debug").steps == 3100
    assert buildfigures.lookup(path, "linux-7.3", "arm64", "abc") is None
    assert json.loads(path.read_text())["linux-7.3"]["s390x"]["steps"] == 2600


def test_a_first_build_says_its_total_and_eta_from_the_shipped_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(buildfigures, "cores", lambda: 2)
    said = []
    monkeypatch.setattr(kernelbuild.ticker.log, "progress", said.append)   # the ticker says it
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    (build_dir / ".config").write_text("CONFIG_LIVEPATCH=y\n")
    figures = buildfigures.Figures(steps=2000, cpu_seconds=1200.0)
    p = kernelbuild._Progress("building kernel 7.3.4 for x86_64", build_dir, figures)
    p.start()
    try:
        assert said[0] == ("building kernel 7.3.4 for x86_64: started: ~2000 steps (the "
                           "recipe's shipped figures), about 10 min with 1 build(s) on 2 cores")
        for n in range(100):
            p.line(f"  CC      kernel/f{n}.o")
        # Early on, the ETA is the figures' (600 s of CPU on each of 2 cores, less 60 s).
        assert p.status(60) == "100 of ~2000 steps (5%), 60s, about 540s left"
        for n in range(400):
            p.line(f"  CC      kernel/g{n}.o")
        assert p.status(100) == "500 of ~2000 steps (25%), 100s, about 300s left"   # pace
    finally:
        p.stop(ok=False)


def test_four_builds_on_two_cores_each_take_twice_their_cpu_time():
    assert buildfigures.Figures(100, 600.0).eta(running=4, cores=2) == 1200.0
    assert buildfigures.Figures(100, 600.0).eta(running=1, cores=2) == 300.0


def test_builds_under_way_are_counted_across_threads_and_processes(tmp_path, monkeypatch):
    """pytest-xdist's workers build in processes of their own: the ETA counts them all."""
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    running = kernelbuild._running
    assert running.count == 0
    other = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import os, sys, time
        os.environ["KLP_HARNESS_CACHE"] = {str(tmp_path / "cache")!r}
        from harness import kernelbuild
        with kernelbuild._running:
            print("building", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "building\n"
        with running:
            assert running.count == 2
        assert running.count == 1
    finally:
        other.communicate("")
    stale = tmp_path / "cache" / "building" / "4242-1"   # a build that died: no one holds it
    stale.write_text("")
    assert running.count == 0 and not stale.exists()
