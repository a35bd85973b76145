import pytest

from harness import arch, hosttools
from harness.errors import MissingHostTool


def test_missing_program_names_its_package():
    with pytest.raises(MissingHostTool) as info:
        hosttools.require("qemu-system-nonexistent", "qemu-system-foo", "to boot guests")
    assert "apt-get install qemu-system-foo" in str(info.value)


def test_each_arch_needs_its_own_qemu():
    needed = hosttools.needed_for(["s390x", "ppc64le"])
    assert needed["qemu-system-s390x"] == "qemu-system-misc"
    assert needed["qemu-system-ppc64"] == "qemu-system-ppc"
    assert "qemu-system-x86_64" not in needed


def test_kernel_builds_need_the_cross_compiler_and_build_tools():
    needed = hosttools.needed_for(["s390x", "ppc64le"], builds_kernel=True)
    assert needed["s390x-linux-gnu-gcc"] == "gcc-s390x-linux-gnu"
    assert needed["powerpc64le-linux-gnu-gcc"] == "gcc-powerpc64le-linux-gnu"
    assert needed["/usr/include/libelf.h"] == "libelf-dev"
    assert needed["flex"] == "flex"
    assert "flex" not in hosttools.needed_for(["s390x"])


def test_a_missing_header_names_its_package():
    with pytest.raises(MissingHostTool) as info:
        hosttools.require("/usr/include/klp-harness-nonexistent.h", "libfoo-dev")
    assert "apt-get install libfoo-dev" in str(info.value)


def test_static_programs_need_the_arch_libc_cross_or_native():
    s390 = arch.get("s390x")
    assert hosttools.static_libc_for(s390, "x86_64") == (
        "/usr/s390x-linux-gnu/lib/libc.a", "libc6-dev-s390x-cross")
    assert hosttools.static_libc_for(arch.get("x86_64"), "x86_64") == (
        "/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev")
    assert hosttools.static_libc_for(arch.get("ppc64le"), "x86_64")[1] == \
        "libc6-dev-ppc64el-cross"


def test_setup_installs_the_libc_static_programs_link_against():
    needed = hosttools.needed_for(["s390x"])
    path, package = hosttools.static_libc_for(arch.get("s390x"))
    assert needed[path] == package


def test_a_test_machine_needs_qemu_and_no_build_tools():
    """setup --run-only (a machine that imports bundles): each arch's QEMU, and nothing of
    what a build needs; the full set for the same arches has those, so the check can fail."""
    run_only = hosttools.needed_to_run(["x86_64", "s390x"])
    assert run_only["qemu-system-x86_64"] == "qemu-system-x86"
    assert run_only["qemu-system-s390x"] == "qemu-system-misc"
    build_tools = {"gcc", "make", "mmdebstrap", "cpio", "s390x-linux-gnu-gcc", "flex"}
    assert not build_tools & set(run_only)
    full = hosttools.needed_for(["x86_64", "s390x"], builds_kernel=True, klp_build=True)
    assert build_tools <= set(full)
