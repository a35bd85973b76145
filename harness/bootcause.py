"""Why a guest did not come up, as far as its console shows: a boot failure names a cause
only on the evidence of a console line, which it quotes; without one it guesses nothing.

Causes are tried in order, the first with a matching line wins: a broken initramfs
explains every later symptom (a truncated initrd.cpio also leaves init without the files
that set up SSH, so the virtio port's absence is no evidence then).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Pattern, Tuple


@dataclass(frozen=True)
class BootCause:
    """A cause of a failed boot and the console line that shows it."""
    line: str       # the console's line, as it reads
    cause: str      # what it means and what to do

    def __str__(self) -> str:
        return self.cause


@dataclass(frozen=True)
class ImageFiles:
    """What of the image a cause may name."""
    initrd: Path    # its initrd.cpio
    dir: Path       # its dir in the cache (removing it rebuilds the image)


def _broken_initramfs(line: str, image: ImageFiles) -> str:
    return (f"the initramfs is broken (the console shows: {line}): the image's initrd.cpio "
            f"{image.initrd} may be truncated; remove the image dir {image.dir} from the "
            "cache to rebuild it")


def _no_virtio_ports(line: str, image: ImageFiles) -> str:
    return (f"the kernel has no virtio console driver (the console shows: {line}): build it "
            "with CONFIG_VIRTIO_CONSOLE=y, or load virtio_console at boot (the recipe's "
            "boot-modules)")


# Files of our initramfs that init uses before SSH is up (images/guest/rc.sh).
_OUR_FILES = r"(?:/root/|/etc/klp-harness/|/etc/ssh/|/usr/sbin/sshd)"
_MISSING = r"(?:No such file or directory|nonexistent directory|not found)"

CAUSES: List[Tuple[Pattern[str], Callable[[str, ImageFiles], str]]] = [
    # The kernel's own word (init/initramfs.c): the archive ended or is corrupt.
    (re.compile(r"Initramfs unpacking failed: .*"), _broken_initramfs),
    # A file the image always holds is missing: the unpacking stopped before it (busybox:
    # "chmod: /root/.ssh/authorized_keys: No such file or directory").
    (re.compile(rf".*{_OUR_FILES}.*{_MISSING}.*"), _broken_initramfs),
    # rc.sh found no virtio port at all, not just none of ours: the driver is missing.
    (re.compile(r"klp-harness: no virtio serial ports at all\b.*"), _no_virtio_ports),
]


def likely_cause(console: str, image: ImageFiles) -> Optional[BootCause]:
    """The first cause in CAUSES that a line of ``console`` shows, or None."""
    lines = [l.strip() for l in console.replace("\r", "").splitlines()]
    for pattern, explain in CAUSES:
        for line in lines:
            m = pattern.search(line)
            if m:
                return BootCause(m.group(0), explain(m.group(0), image))
    return None
