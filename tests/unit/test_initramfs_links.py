"""Kept programs get their merged-/usr twin path, so no busybox applet shadows them."""
import os
from pathlib import Path

from harness import initramfs


def test_a_program_under_usr_bin_is_also_reachable_by_its_bin_path(tmp_path):
    for rel in ("usr/bin/stat", "bin/date", "bin/busybox"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin/insmod").symlink_to("/bin/kmod")      # as kmod's package has it
    (tmp_path / "usr/sbin").mkdir()
    (tmp_path / "usr/sbin/insmod").write_text("already there")
    kept = [Path(p) for p in ("usr/bin/stat", "bin/date", "sbin/insmod",
                              "lib/x86_64-linux-gnu/libc.so.6")]
    initramfs._link_merged_usr(tmp_path, kept)
    assert os.readlink(tmp_path / "bin/stat") == "../usr/bin/stat"
    assert (tmp_path / "bin/stat").read_text() == "usr/bin/stat"
    assert os.readlink(tmp_path / "usr/bin/date") == "../../bin/date"
    assert (tmp_path / "usr/sbin/insmod").read_text() == "already there"   # never replaced
    assert not (tmp_path / "usr/lib").exists()                              # only program dirs
