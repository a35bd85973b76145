"""Image recipes: the shipped ones load, and a wrong one is an error naming file, line, field."""
import textwrap

import pytest

from harness import arch, image
from harness.errors import RecipeError


@pytest.mark.parametrize("path", sorted(image.IMAGES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_recipes_load(path):
    recipe = image.Recipe.load(path)
    assert recipe.arches
    for name in recipe.kernel.get("config", []):
        assert (image.KCONFIG_DIR / name).is_file()


def test_the_default_image_is_built_from_source_for_every_arch():
    recipe = image.Recipe.load(image.recipe_path(image.DEFAULT_IMAGE))
    assert recipe.builds_kernel
    assert sorted(recipe.arches) == sorted(arch.NAMES)
    assert image.arches_for(image.DEFAULT_IMAGE) == recipe.arches


@pytest.mark.parametrize("name", arch.NAMES)
def test_every_arch_has_a_config_fragment(name):
    assert (image.KCONFIG_DIR / arch.get(name).kconfig_fragment).is_file()


def _recipe(tmp_path, kernel):
    path = tmp_path / "mine.yaml"
    path.write_text(textwrap.dedent("""\
        arches: [s390x]
        kernel:
        """) + textwrap.indent(textwrap.dedent(kernel), "  ") + textwrap.dedent("""\
        selftests: {paths: [x], modules: x}
        userspace: {suite: bookworm, packages: [bash], programs: [bin/bash]}
        """))
    return path


def test_an_unknown_config_fragment_names_file_line_and_field(tmp_path):
    path = _recipe(tmp_path, """\
        from: debian-source
        suite: trixie
        package: linux-source-6.12
        config: [nonexistent.config]
        """)
    with pytest.raises(RecipeError) as info:
        image.Recipe.load(path)
    assert str(info.value).startswith(f"{path}:6: kernel.config: no config fragment nonexistent")


@pytest.mark.parametrize("arch_config, error", [
    ("{arm64: [kasan.config]}", "mine.yaml:7: kernel.arch-config.arm64: unknown field; "
                                "expected one of: s390x"),   # not an arch of the recipe
    ("{s390x: [nonexistent.config]}", "mine.yaml:7: kernel.arch-config.s390x: no config "
                                      "fragment nonexistent.config")])
def test_arch_config_names_the_recipes_arches_and_existing_fragments(tmp_path, arch_config,
                                                                     error):
    path = _recipe(tmp_path, f"""\
        from: debian-source
        suite: trixie
        package: linux-source-6.12
        config: [common.config]
        arch-config: {arch_config}
        """)
    with pytest.raises(RecipeError) as info:
        image.Recipe.load(path)
    assert error in str(info.value)


def test_the_debug_variant_adds_its_arch_fragments_and_builds_in_a_dir_of_its_own(tmp_path,
                                                                                 monkeypatch):
    recipe = image.Recipe.load(image.recipe_path("linux-7.3-debug"))
    monkeypatch.setattr(image.kernelsource, "debian_package", lambda *a: image.kernelsource.
                        KernelSource(tree=tmp_path, identity="t", build_slot="linux-source-7.3-x"))
    monkeypatch.setattr(image.kernelbuild, "compiler_version", lambda profile: "gcc 12")
    names = {}
    for a in ("x86_64", "s390x"):
        b = image._SourceBuild(recipe, arch.get(a), lambda: "mirror", None)
        names[a] = [f.name for f in b.fragments]
        assert b.kept_build_dir().name.startswith(f"linux-source-7.3-x-{a}-debug-")
    assert names["x86_64"] == ["common.config", "debug.config", "lockup-detectors.config",
                               "buddy-lockup-detector.config", "kasan.config", "x86_64.config"]
    assert names["s390x"] == ["common.config", "debug.config", "s390x.config"]
    default = image.Recipe.load(image.recipe_path(image.DEFAULT_IMAGE))
    assert image._SourceBuild(default, arch.get("s390x"), lambda: "m", None).kept_build_dir() \
        is None   # the default build dir, named as before variants existed


def test_a_field_of_another_kernel_kind_is_refused(tmp_path):
    path = _recipe(tmp_path, """\
        from: debian-source
        suite: trixie
        package: linux-source-6.12
        config: [common.config]
        headers: linux-headers-amd64
        """)
    with pytest.raises(RecipeError, match="headers"):
        image.Recipe.load(path)


def test_a_kernel_tree_needs_an_image_built_from_source():
    with pytest.raises(RecipeError, match="--kernel-tree needs an image built from source"):
        image.build("debian-bookworm", "x86_64", kernel_tree=image.PROJECT)


def _headers(tmp_path, compiler):
    headers = tmp_path / "linux-headers-6.99.0-1-amd64"
    headers.mkdir()
    (headers / ".config").write_text(f'CONFIG_CC_VERSION_TEXT="{compiler} (Debian 99.1.0-1) 99.1.0"\n')
    return headers


def _package_build(name):
    recipe = image.Recipe.load(image.recipe_path(name))
    return image.BUILDERS[recipe.kernel["from"]](recipe, arch.get("x86_64"), lambda: None, None)


def test_distribution_headers_name_the_compiler_modules_are_built_with(tmp_path):
    headers = _headers(tmp_path, "gcc")
    (tmp_path / "linux-kbuild-6.99").mkdir()
    (headers / "scripts").symlink_to("../linux-kbuild-6.99/scripts")
    toolchain = _package_build("debian-bookworm").toolchain(headers)
    assert toolchain.compiler == "gcc" and toolchain.on_host()
    # what a build root of the kernel's release would hold: its compiler and kbuild programs
    assert toolchain.suite == "bookworm" and toolchain.debian_arch == "amd64"
    assert toolchain.packages == ("gcc", "make", "libc6-dev", "linux-kbuild-6.99")


def test_a_missing_compiler_is_had_from_a_build_root_of_the_kernels_release(tmp_path):
    toolchain = _package_build("debian-trixie").toolchain(
        _headers(tmp_path, "x86_64-linux-gnu-gcc-99"))
    assert not toolchain.on_host() and toolchain.packages[0] == "gcc-99"
    assert toolchain.cannot_make_root() == ""   # an amd64 build root runs on this amd64 host


def test_headers_whose_compiler_no_build_root_can_give_are_refused_naming_it(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(image.debian, "host_arch", lambda: "arm64")   # emulation needed
    build = _package_build("debian-trixie")
    with pytest.raises(RecipeError) as info:
        build.ready(build.toolchain(_headers(tmp_path, "x86_64-linux-gnu-gcc-99")))
    text = str(info.value)
    assert "debian-trixie.yaml:" in text and ": kernel:" in text
    assert "build modules with x86_64-linux-gnu-gcc-99, the compiler that built this kernel; " \
        "this host has no x86_64-linux-gnu-gcc-99, and a build root of trixie for amd64 " \
        "would need emulation on this arm64 host" in text
    assert "install the Debian package gcc-99" in text
    assert "this host's apt sources do not offer gcc-99" in text


def test_an_arch_the_recipe_lacks_names_the_version_that_brought_its_livepatch():
    with pytest.raises(RecipeError, match=r"image 'linux-6.12' is not made for arm64 .*arm64 "
                                          r"has livepatch since Linux 6\.17"):
        image.build("linux-6.12", "arm64")


def test_a_kernel_tree_too_old_for_livepatch_on_the_arch_is_refused_naming_both(tmp_path):
    from harness.errors import UnsupportedArch
    tree = tmp_path / "linux"
    (tree / "kernel" / "livepatch").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 57\n")
    with pytest.raises(UnsupportedArch) as info:
        image.build(image.DEFAULT_IMAGE, "arm64", kernel_tree=tree)
    assert str(info.value) == (
        f"the kernel tree {tree} is Linux 6.12.57, which has no livepatch on arm64 (it came "
        "with Linux 6.17): choose another --arch, or a kernel of 6.17 or later")


def test_a_recipe_of_ones_own_is_named_by_its_path(tmp_path):
    mine = tmp_path / "my-7.3.yaml"
    mine.write_text(image.recipe_path(image.DEFAULT_IMAGE).read_text())
    assert image.recipe_path(str(mine)) == mine
    assert image.arches_for(str(mine)) == image.Recipe.load(mine).arches
    assert image.Recipe.load(mine).name == "my-7.3"
    with pytest.raises(RecipeError, match=r"nope.yaml: no such image recipe file"):
        image.recipe_path(str(tmp_path / "nope.yaml"))
