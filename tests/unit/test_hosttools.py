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
