import dataclasses

import pytest

from harness import arch
from harness.errors import UnknownArch


@pytest.mark.parametrize("name", arch.NAMES)
def test_every_profile_is_complete(name):
    profile = arch.get(name)
    assert profile.name == name
    for f in dataclasses.fields(profile):
        value = getattr(profile, f.name)
        if f.name not in ("kvm_hosts", "kernel_cmdline"):
            assert value not in ("", None, ()), f"{name}: {f.name} is empty"


def test_cross_compile_prefix_is_empty_only_on_a_matching_host():
    s390 = arch.get("s390x")
    assert s390.cross_compile("x86_64") == "s390x-linux-gnu-"
    assert s390.cross_compile("s390x") == ""


def test_unknown_arch_names_the_known_ones():
    with pytest.raises(UnknownArch, match="ppc64le, s390x, x86_64"):
        arch.get("sparc")
