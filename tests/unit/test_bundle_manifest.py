"""Bundles of fake cache entries: export, import into a fresh cache, and every refusal
(a changed byte, another harness version, image or arch) leaving nothing behind."""
import gzip
import io
import json
import tarfile

import pytest

from harness import (buildinfo, bundle, cache, image as imagemod, kernelbuild, klpbuild,
                     modules, prebuilt)
from harness.image import Image

ARCH = "x86_64"
NAME = imagemod.DEFAULT_IMAGE


@pytest.fixture
def version(monkeypatch):
    monkeypatch.setattr(bundle, "harness_version", lambda: "1.0 (abc)")


def fake_image(root):
    """An image entry as a source build leaves it: its kernel build dir outside it."""
    recipe = imagemod.Recipe.load(imagemod.recipe_path(NAME))
    key = f"{NAME}-{ARCH}-0123456789abcdef"
    kbuild = root / "kbuild" / "linux-x86_64"
    (kbuild / "fs").mkdir(parents=True)
    (kbuild / ".config").write_text("CONFIG_LIVEPATCH=y\n")
    (kbuild / kernelbuild.STAMP).write_text("the kernel's identity\n")
    (kbuild / "fs" / "binfmt_misc.ko").write_bytes(b"in-tree module")
    (kbuild / "vmlinux.o").write_bytes(b"not carried")

    def build(out):
        (out / "kernel").write_bytes(b"K" * 5000)
        (out / "initrd.cpio").write_bytes(b"I" * 9000)
        (out / "source" / "lib").mkdir(parents=True)
        (out / "source" / "lib" / "test_klp.c").write_text("/* a test module */\n")
        (out / "manifest.json").write_text(json.dumps({
            "name": NAME, "arch": ARCH, "kernel_release": "7.3.4", "host_key": "ssh-ed25519 A",
            "kbuild_dir": str(kbuild), "make_vars": {}, "selftest_modules": "source/lib"}))
    path = cache.entry("images", key, build, "a fake image", checked=True)
    assert imagemod.input_hash(recipe, ARCH)   # the recipe is the project's own
    return Image.from_dir(path)


def fake_entry(kind, key, files):
    def build(out):
        for name, data in files.items():
            (out / name).write_bytes(data)
    return cache.entry(kind, key, build, f"fake {kind}", checked=True)


@pytest.fixture
def exported(tmp_path, monkeypatch, version):
    """A bundle of a fake image and two module entries, written from one cache."""
    monkeypatch.setenv(cache.ENV, str(tmp_path / "build-cache"))
    image = fake_image(tmp_path / "build-cache")
    entries = [fake_entry("modules", f"{image.dir.name}-scenario-1", {"m.ko": b"module"}),
               fake_entry("livepatches", "ws-klp_fix-2", {"klp_fix.ko": b"livepatch"})]
    out = tmp_path / "b.tar.gz"
    manifest = bundle.write(NAME, {ARCH: bundle.ArchParts(image, entries)}, out)
    monkeypatch.setenv(cache.ENV, str(tmp_path / "test-cache"))   # the test machine's
    monkeypatch.setattr(cache, "_seen", {})
    return out, manifest, image.dir.name


def test_an_imported_bundle_is_found_by_its_keys_without_a_kernel_build(exported):
    out, manifest, key = exported
    assert manifest["images"][ARCH]["key"] == key and len(manifest["entries"]) == 3
    bundle.load(out, NAME, [ARCH])
    recipe = imagemod.Recipe.load(imagemod.recipe_path(NAME))
    image = imagemod.imported(recipe, ARCH)
    assert image.dir == cache.root() / "images" / key
    assert image.kernel.read_bytes() == b"K" * 5000 and image.prebuilt["bundle"] == "b.tar.gz"
    # Its stand-in kbuild dir: what lookups read, and no more (no objects, no source).
    assert modules.in_tree(image) == {"binfmt_misc": image.kbuild_dir / "fs/binfmt_misc.ko"}
    assert not (image.kbuild_dir / "vmlinux.o").exists()
    assert (image.kbuild_dir / kernelbuild.STAMP).read_text() == "the kernel's identity\n"
    assert klpbuild.unsupported_skip(image).reason.startswith(f"image {NAME} boots a kernel "
                                                              "built elsewhere")
    assert (cache.root() / "modules" / f"{key}-scenario-1" / "m.ko").read_bytes() == b"module"
    # What was not bundled is not built: this machine is not meant to build.
    with pytest.raises(Exception, match="came from the bundle b.tar.gz.*export a bundle"):
        modules.build_set(image, image.selftest_modules, "upstream")
    assert not list(cache.root().glob(".bundle-*"))


def rewrite(out, member, change):
    """``out`` with ``member``'s bytes passed through ``change``, all else as it was."""
    with tarfile.open(out) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m, data in members:
            if m.name == member:
                data = change(data)
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    out.write_bytes(gzip.compress(buf.getvalue()))


def test_a_changed_byte_is_refused_naming_the_file_and_nothing_stays(exported):
    out, manifest, key = exported
    initrd = f"images/{key}/initrd.cpio"
    rewrite(out, initrd, lambda b: b[:100] + b"X" + b[101:])
    with pytest.raises(bundle.BundleError, match=f"{initrd} differs from its manifest"):
        bundle.load(out)
    assert not cache.root().exists() or not any(cache.root().rglob("*.ko")), \
        list(cache.root().rglob("*"))
    assert not (cache.root() / "images").exists() and not prebuilt.record_path(NAME, ARCH).exists()


def test_a_bundle_unchanged_by_the_rewrite_imports(exported):
    """The negative control of the test above: rewriting the tar as such changes nothing."""
    out, _, key = exported
    rewrite(out, f"images/{key}/initrd.cpio", lambda b: b)
    bundle.load(out)
    assert (cache.root() / "images" / key / cache.COMPLETE).exists()


def test_a_file_the_manifest_does_not_name_is_refused(exported):
    out, _, key = exported
    rewrite(out, bundle.MANIFEST, lambda b: json.dumps(dict(
        json.loads(b), files={k: v for k, v in json.loads(b)["files"].items()
                              if not k.endswith("/kernel")})).encode())
    with pytest.raises(bundle.BundleError, match=f"images/{key}/kernel is not in its manifest"):
        bundle.load(out)
    assert not (cache.root() / "images").exists()


@pytest.mark.parametrize("image, arches, why", [
    (None, ["s390x"], f"holds {ARCH}, not s390x"),
    ("debian-trixie", [], f"holds image {NAME}, not debian-trixie"),
])
def test_another_image_or_arch_is_refused(exported, image, arches, why):
    out, _, _ = exported
    with pytest.raises(bundle.BundleError, match=why):
        bundle.load(out, image, arches)
    assert not cache.root().exists()


def test_another_harness_version_is_refused(exported, monkeypatch):
    out, _, _ = exported
    monkeypatch.setattr(bundle, "harness_version", lambda: "1.1 (def)")
    with pytest.raises(bundle.BundleError, match=r"made by klp-harness 1.0 \(abc\), this is "
                                                 r"1.1 \(def\)"):
        bundle.load(out)
    assert not cache.root().exists()


def test_another_image_builder_is_refused(exported):
    out, _, _ = exported
    rewrite(out, bundle.MANIFEST, lambda b: json.dumps(dict(json.loads(b), images={
        ARCH: dict(json.loads(b)["images"][ARCH], base_key="0" * 16)})).encode())
    with pytest.raises(bundle.BundleError, match="another recipe, guest files or image "
                                                 "builder"):
        bundle.load(out)


def test_an_imported_file_truncated_later_is_refused_naming_it(exported):
    out, _, key = exported
    bundle.load(out)
    initrd = cache.root() / "images" / key / "initrd.cpio"
    initrd.write_bytes(b"I" * 4000)
    recipe = imagemod.Recipe.load(imagemod.recipe_path(NAME))
    with pytest.raises(cache.CacheCorrupt) as info:
        imagemod.imported(recipe, ARCH)
    assert info.value.path == initrd and "4000 bytes, but was 9000" in str(info.value)
    assert "import the bundle again" in str(info.value)
    bundle.load(out)   # the remedy it names: the entry is replaced
    assert imagemod.imported(recipe, ARCH).initrd.stat().st_size == 9000


def test_a_path_that_is_no_bundle_is_an_error_naming_it(tmp_path):
    """A typo, or a build job that published nothing: a BundleError naming the path (the
    CLI's exit 2), not a traceback."""
    with pytest.raises(bundle.BundleError, match=r"nothere.tar.gz: no such file: give a "
                                                 r"bundle written by `klp-harness bundle export`"):
        bundle.load(tmp_path / "nothere.tar.gz")
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not a tar\n")
    with pytest.raises(bundle.BundleError, match=r"junk.tar.gz: not a tar file"):
        bundle.load(junk)


def test_the_bundle_carries_the_kernel_sources_version(tmp_path, monkeypatch, version):
    """A test machine has no kernel source: versions.json and KCIDB there name the source
    package the build machine's cache fetched, which the bundle's image records."""
    monkeypatch.setenv(cache.ENV, str(tmp_path / "build-cache"))
    recipe = imagemod.Recipe.load(imagemod.recipe_path(NAME))
    sources = tmp_path / "build-cache" / "sources" / (f"{recipe.kernel['package']}-"
                                                     f"{recipe.kernel['suite']}")
    sources.mkdir(parents=True)
    (sources / "version").write_text("7.3.4-1~bpo13+1\n")
    image = fake_image(tmp_path / "build-cache")
    out = tmp_path / "b.tar"
    bundle.write(NAME, {ARCH: bundle.ArchParts(image, [])}, out)
    monkeypatch.setenv(cache.ENV, str(tmp_path / "test-cache"))
    monkeypatch.setattr(cache, "_seen", {})
    bundle.load(out, NAME, [ARCH])
    imported = imagemod.imported(recipe, ARCH)
    assert not (tmp_path / "test-cache" / "sources").exists()
    assert buildinfo.source(imported, NAME)["version"] == "7.3.4-1~bpo13+1"
