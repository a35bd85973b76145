import dataclasses

import pytest

from harness import arch
from harness.errors import MissingHostTool
from harness.machine import Machine


def test_missing_qemu_names_the_package(tmp_path):
    profile = dataclasses.replace(arch.get("s390x"), qemu_binary="qemu-system-s390x-missing")
    machine = Machine(image=None, profile=profile, workdir=tmp_path)
    with pytest.raises(MissingHostTool) as info:
        machine.boot()
    assert "qemu-system-misc" in str(info.value)
    machine.shutdown()
