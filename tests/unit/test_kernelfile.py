"""A bzImage's XZ payload is found through the boot protocol header and decompressed."""
import lzma
import struct

from harness import kernelfile


def fake_bzimage(payload: bytes, setup_sects: int = 3) -> bytes:
    header = bytearray(512 * (setup_sects + 1))
    header[0x1f1] = setup_sects
    header[0x202:0x206] = b"HdrS"
    struct.pack_into("<II", header, 0x248, 16, len(payload))
    return bytes(header) + b"\0" * 16 + payload + b"trailer"


def test_xz_payload_is_decompressed(tmp_path):
    elf = b"\x7fELF" + b"kernel" * 100
    data = fake_bzimage(lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
    assert kernelfile._decompress(kernelfile._payload(data)) == elf


def test_not_a_bzimage_is_booted_as_packaged(tmp_path):
    src, dest = tmp_path / "Image", tmp_path / "kernel"
    src.write_bytes(b"not a bzImage at all" * 100)
    assert kernelfile.make_bootable(src, dest) == "as packaged"
    assert dest.read_bytes() == src.read_bytes()
