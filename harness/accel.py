"""Choosing the accelerator: KVM only where a quick probe shows a guest really boots.

On some hosts /dev/kvm exists but guests hang right after the kernel decompresses, so the
presence of the device proves nothing. The probe boots the image under KVM to init's ready
marker with a short timeout; its verdict is cached per host kernel, QEMU and image.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Tuple

from . import cache
from .arch import ArchProfile
from .errors import HarnessError
from .image import Image
from .machine import Machine, MachineConfig

PROBE_TIMEOUT_SCALE = 0.25   # KVM boots in well under a quarter of the TCG budget


def kvm_possible(profile: ArchProfile) -> Tuple[bool, str]:
    if platform.machine() not in profile.kvm_hosts:
        return False, f"KVM cannot run {profile.name} guests on a {platform.machine()} host"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is absent or not accessible"
    return True, ""


def _probe_key(profile: ArchProfile, image: Image) -> str:
    qemu = subprocess.run([profile.qemu_binary, "--version"], capture_output=True, text=True)
    return (cache.InputHash("kvm-probe").text("host", platform.release())
            .text("qemu", qemu.stdout).text("image", image.dir.name).hexdigest())


def probe(profile: ArchProfile, image: Image) -> Tuple[bool, str]:
    """Boot ``image`` under KVM to init; (works, what was seen)."""
    verdict_file = cache.root() / "kvm-probe" / f"{_probe_key(profile, image)}.json"
    if verdict_file.exists():
        verdict = json.loads(verdict_file.read_text())
        return verdict["works"], verdict["detail"] + " (cached probe)"
    with tempfile.TemporaryDirectory(prefix="klp-kvm-probe-") as work:
        machine = Machine(image, profile, Path(work), MachineConfig(accel="kvm"))
        try:
            machine.boot(until="init")
            works, detail = True, f"reached init in {machine.stage_times['init']:.1f}s"
        except HarnessError as e:
            works, detail = False, e.headline
        finally:
            machine.shutdown()
    verdict_file.parent.mkdir(parents=True, exist_ok=True)
    cache.write_whole(verdict_file, json.dumps({"works": works, "detail": detail}))
    return works, detail


def choose(profile: ArchProfile, image: Image, requested: str = "auto") -> Tuple[str, str]:
    """(accelerator, why) for ``requested`` in auto/kvm/tcg."""
    if requested == "tcg":
        return "tcg", "TCG as requested"
    possible, why = kvm_possible(profile)
    if not possible:
        if requested == "kvm":
            raise HarnessError(f"--accel kvm impossible: {why}")
        return "tcg", f"TCG: {why}"
    works, detail = probe(profile, image)
    if works:
        return "kvm", f"KVM: probe {detail}"
    if requested == "kvm":
        raise HarnessError(f"--accel kvm: a KVM guest does not boot on this host: {detail}")
    return "tcg", f"TCG: /dev/kvm exists but a KVM guest did not boot ({detail}); falling back"
