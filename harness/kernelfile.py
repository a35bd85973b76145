"""Making a packaged kernel fast to boot under emulation.

Distribution x86 kernels come as XZ-compressed bzImages; decompressing 60 MB inside a TCG
guest costs about 5 s at every boot. A kernel with a PVH entry note can be booted by QEMU
straight from its ELF, so the image build decompresses the payload once on the host.
"""
from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from pathlib import Path

XEN_ELFNOTE_PHYS32_ENTRY = 0x12   # the PVH entry point QEMU's -kernel uses for ELF kernels


def _payload(data: bytes) -> bytes:
    """The compressed vmlinux inside a bzImage (boot protocol >= 2.08), or b''."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return b""
    setup_sects = data[0x1f1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return data[start:start + length]


def _decompress(payload: bytes) -> bytes:
    if payload.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if payload.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=__import__("io").BytesIO(payload)).read()
    return b""


def has_pvh_entry(elf: Path) -> bool:
    out = subprocess.run(["readelf", "-n", "-W", str(elf)], capture_output=True, text=True).stdout
    return f"0x{XEN_ELFNOTE_PHYS32_ENTRY:08x}" in out


def make_bootable(packaged: Path, dest: Path) -> str:
    """Write the fastest-booting form of ``packaged`` to ``dest``; say which form it is."""
    data = packaged.read_bytes()
    elf = _decompress(_payload(data))
    if elf.startswith(b"\x7fELF"):
        dest.write_bytes(elf)
        if has_pvh_entry(dest):
            return "ELF with PVH entry (decompressed on the host)"
    shutil.copy(packaged, dest)
    return "as packaged"
