"""What versions.json and KCIDB say a kernel was built from (harness/buildinfo.py), read
from the image itself where it can be, so that a machine without the kernel source or
compiler (a bundle's) says the same as the one that built it."""
import hashlib
import shutil
import subprocess

import pytest

from harness import buildinfo, cache, image as imagemod
from harness.image import Image

NAME = imagemod.DEFAULT_IMAGE
CC = "s390x-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0"


def image(tmp_path, arch="s390x", **kw) -> Image:
    d = tmp_path / f"{NAME}-{arch}-key"
    d.mkdir(parents=True)
    (d / "config").write_text(f'CONFIG_CC_VERSION_TEXT="{CC}"\nCONFIG_LIVEPATCH=y\n')
    return Image(dir=d, name=NAME, arch=arch, kernel_release="7.3.4", host_key="k",
                 kbuild_dir=d, make_vars={}, selftest_modules=None, **kw)


def test_the_compiler_and_config_come_from_the_images_own_config(tmp_path):
    img = image(tmp_path)
    assert buildinfo.compiler(img) == CC   # Kbuild's `$(CC) --version | head -1`
    assert buildinfo.config_sha256(img) == hashlib.sha256(
        (img.dir / "config").read_bytes()).hexdigest()
    assert buildinfo.config_name(img, NAME) == ("allnoconfig + common.config + "
                                                "s390x.config")


def test_the_source_package_version_is_the_one_the_cache_fetched(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    recipe = imagemod.Recipe.load(imagemod.recipe_path(NAME))
    img = image(tmp_path)
    assert buildinfo.source(img, NAME) == {}   # nothing fetched here: not made up
    entry = tmp_path / "cache" / "sources" / (f"{recipe.kernel['package']}-"
                                             f"{recipe.kernel['suite']}")
    entry.mkdir(parents=True)
    (entry / "version").write_text("7.3.4-1~bpo13+1\n")
    assert buildinfo.source(img, NAME) == {
        "package": recipe.kernel["package"], "suite": recipe.kernel["suite"],
        "version": "7.3.4-1~bpo13+1"}
    patched = image(tmp_path / "2", kernel_patches=["fix.patch"])
    assert buildinfo.source(patched, NAME)["patches"] == "fix.patch"


def test_a_bundles_image_says_what_the_build_machine_knew(tmp_path):
    known = {"package": "linux-source-7.3", "version": "7.3.4-1~bpo13+1"}
    img = image(tmp_path, prebuilt={"bundle": "b.tar", "source": known})
    assert buildinfo.source(img, NAME) == known


def test_a_distribution_kernels_source_is_its_source_package(tmp_path):
    img = image(tmp_path, "x86_64", packages={"linux-image-6.1.0-50-amd64": "6.1.176-1",
                                             "linux-source-6.1": "6.1.176-1"})
    assert buildinfo.source(img, "debian-bookworm") == {
        "package": "linux-source-6.1", "version": "6.1.176-1", "suite": "bookworm"}
    assert buildinfo.config_name(img, "debian-bookworm").startswith("the config of Debian's")


def test_a_kernel_tree_is_named_by_its_commit(tmp_path):
    tree = tmp_path / "linux"
    tree.mkdir()
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tree / "Makefile").write_text("VERSION = 7\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    found = buildinfo.source(image(tmp_path), NAME, tree)
    assert found == {"tree": str(tree), "git_commit": head, "dirty": "no"}
    (tree / "Makefile").write_text("VERSION = 8\n")
    assert buildinfo.source(image(tmp_path / "2"), NAME, tree)["dirty"] == "yes"


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU here")
def test_qemus_version_is_its_first_line():
    assert buildinfo.qemu_version("x86_64").startswith("QEMU emulator version ")
