"""guest.GuestHost lists all that a Guest uses of its machine, and a Machine is one.

A reader of guest.py trusts the Protocol to say what a guest needs of the QEMU side; a
member used but not listed (as `machine.image.host_key` once was) makes it lie.
"""
import ast
import inspect
from typing import Set

from harness import arch, guest
from harness.guest import GuestHost
from harness.machine import Machine


def members() -> Set[str]:
    return set(GuestHost.__annotations__) | {
        name for name, value in vars(GuestHost).items()
        if callable(value) and not name.startswith("_")}


def machine_uses(source: str) -> Set[str]:
    """Attributes read off a machine in ``source``: ``machine.X`` and ``self.machine.X``."""
    used = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id == "machine" or \
                isinstance(owner, ast.Attribute) and owner.attr == "machine":
            used.add(node.attr)
    return used


def test_the_guest_uses_only_what_the_protocol_lists():
    unlisted = machine_uses(inspect.getsource(guest)) - members()
    assert not unlisted, f"Guest uses {sorted(unlisted)} of its machine: list them in GuestHost"


def test_a_use_outside_the_protocol_is_seen():
    """The negative control: a reach past the Protocol into the machine's image."""
    source = "def f(machine):\n    return machine.image.host_key, machine.scale\n"
    assert machine_uses(source) - members() == {"image"}


def test_a_machine_has_every_member(tmp_path):
    class Image:
        host_key = "ssh-ed25519 AAAA"
    machine = Machine(image=Image(), profile=arch.get("x86_64"), workdir=tmp_path)
    try:
        missing = {name for name in members() if not hasattr(machine, name)}
        assert not missing
        assert machine.host_key == "ssh-ed25519 AAAA"
    finally:
        machine.shutdown()
