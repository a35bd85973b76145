"""Candidate kernel packages given as .deb files (kernel kind debian-files): checked against
each other before anything is unpacked. The .deb files here are made with dpkg-deb."""
import subprocess
import textwrap

import pytest

from harness import arch, debian, image
from harness.errors import RecipeError


def _deb(tmp_path, package, version="6.1.176-1", architecture="amd64"):
    root = tmp_path / f"{package}-pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: {architecture}\n"
        "Maintainer: nobody <nobody@example.invalid>\nDescription: test\n")
    out = tmp_path / f"{package}_{version}_{architecture}.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)],
                   check=True, capture_output=True)
    return out.name


def _recipe(tmp_path, files):
    path = tmp_path / "candidate.yaml"
    path.write_text(textwrap.dedent(f"""\
        arches: [x86_64]
        kernel:
          from: debian-files
          suite: bookworm
          files: [{", ".join(files)}]
        selftests: {{paths: [lib/livepatch], modules: lib/livepatch}}
        userspace: {{suite: bookworm, packages: [busybox-static], programs: [bin/busybox]}}
        """))
    recipe = image.Recipe.load(path)
    return image.BUILDERS["debian-files"](recipe, arch.get("x86_64"), lambda: None, None)


def test_the_files_are_sorted_by_role_relative_to_the_recipe(tmp_path):
    files = [_deb(tmp_path, "linux-image-6.1.0-9-amd64"),
             _deb(tmp_path, "linux-headers-6.1.0-9-amd64"),
             _deb(tmp_path, "linux-headers-6.1.0-9-common", architecture="all"),
             _deb(tmp_path, "linux-kbuild-6.1")]
    build = _recipe(tmp_path, files)
    assert build.kernel_packages() == [str(tmp_path / f) for f in files]
    # no linux-source among them: the suite's of the same Linux version
    assert build.source_package(tmp_path) == "linux-source-6.1"
    source = _deb(tmp_path, "linux-source-6.1", architecture="all")
    assert _recipe(tmp_path, files + [source]).source_package(tmp_path) == str(tmp_path / source)


def test_headers_of_another_build_are_refused_naming_both_releases(tmp_path):
    build = _recipe(tmp_path, [_deb(tmp_path, "linux-image-6.1.0-9-amd64"),
                               _deb(tmp_path, "linux-headers-6.1.0-10-amd64")])
    with pytest.raises(RecipeError, match=r"candidate.yaml:\d+: kernel.files: the kernel image "
                       r"is release 6.1.0-9-amd64 but the headers are for 6.1.0-10-amd64"):
        build.kernel_packages()


def test_files_without_headers_or_of_another_arch_are_refused(tmp_path):
    build = _recipe(tmp_path, [_deb(tmp_path, "linux-image-6.1.0-9-amd64")])
    with pytest.raises(RecipeError, match=r"one linux-headers-<release> package \(not "
                       r"-common\); they hold 0: none"):
        build.kernel_packages()
    build = _recipe(tmp_path, [_deb(tmp_path, "linux-image-6.1.0-9-arm64", architecture="arm64"),
                               _deb(tmp_path, "linux-headers-6.1.0-9-arm64")])
    with pytest.raises(RecipeError, match=r"linux-image-6.1.0-9-arm64_6.1.176-1_arm64.deb is a "
                       r"package for arm64, not amd64 \(x86_64\)"):
        build.kernel_packages()


def test_a_missing_file_is_the_recipes_error_before_anything_runs(tmp_path):
    with pytest.raises(RecipeError, match=r"candidate.yaml:\d+: kernel.files: \[0\] .*nope.deb: "
                       r"no such file: name the candidate's .deb files"):
        _recipe(tmp_path, ["nope.deb"])


def test_backports_packages_are_taken_from_backports():
    assert debian.from_suite("linux-image-amd64", "trixie-backports") == \
        "linux-image-amd64/trixie-backports"
    assert debian.from_suite("linux-image-amd64", "trixie") == "linux-image-amd64"
    assert debian.from_suite("linux-image-amd64=7.3.4-1", "trixie-backports") == \
        "linux-image-amd64=7.3.4-1"
    assert debian.from_suite("/srv/x.deb", "trixie-backports") == "/srv/x.deb"
