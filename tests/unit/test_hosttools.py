import pytest

from harness import hosttools
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
