"""A checked cache entry is used only while its files match what was recorded when it was
made: a changed file makes it be built anew, or, where it cannot be, an error naming it."""
import json
import os

import pytest

from harness import cache
from harness.errors import HarnessError


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_seen", {})   # as a new process would


def make(builds):
    def build(out):
        builds.append(out)
        (out / "initrd.cpio").write_bytes(b"x" * 10000)
        (out / "sub").mkdir()
        (out / "sub" / "kernel").write_bytes(b"kernel")
        os.symlink("kernel", out / "sub" / "vmlinuz")
    return build


def test_an_entry_records_its_files_and_is_reused_while_they_match():
    builds = []
    path = cache.entry("images", "k1", make(builds), "an image", checked=True)
    files = json.loads((path / cache.COMPLETE).read_text())["files"]
    assert files["initrd.cpio"] == [10000, cache.sha256(path / "initrd.cpio")]
    assert files["sub/vmlinuz"] == ["->", "kernel"]
    cache._seen.clear()   # another process: hashes it again, finds it whole
    assert cache.entry("images", "k1", make(builds), "an image", checked=True) == path
    assert len(builds) == 1


def test_a_truncated_file_makes_the_entry_be_built_anew(caplog):
    builds = []
    path = cache.entry("images", "k1", make(builds), "an image", checked=True)
    os.truncate(path / "initrd.cpio", 4000)
    cache._seen.clear()
    assert cache.entry("images", "k1", make(builds), "an image", checked=True) == path
    assert len(builds) == 2 and (path / "initrd.cpio").stat().st_size == 10000
    assert "initrd.cpio is 4000 bytes, but was 10000" in caplog.text


def test_a_byte_changed_in_place_with_its_time_kept_is_found_on_first_use():
    builds = []
    path = cache.entry("images", "k1", make(builds), "an image", checked=True)
    kernel = path / "sub" / "kernel"
    st = kernel.stat()
    kernel.write_bytes(b"kernEl")
    os.utime(kernel, ns=(st.st_atime_ns, st.st_mtime_ns))
    cache._seen.clear()
    with pytest.raises(cache.CacheCorrupt) as info:
        cache.entry("images", "k1", None, "an image", checked=True,
                    unbuildable="it came from a bundle")
    assert info.value.path == kernel and "sha256 differs" in str(info.value)
    assert "it came from a bundle" in str(info.value) and len(builds) == 1


def test_a_changed_file_that_cannot_be_rebuilt_is_refused_naming_it():
    builds = []
    path = cache.entry("images", "k1", make(builds), "an image", checked=True)
    os.truncate(path / "initrd.cpio", 0)

    def fails(out):
        raise HarnessError("no compiler here")
    with pytest.raises(cache.CacheCorrupt) as info:
        cache.entry("images", "k1", fails, "an image", checked=True)
    assert info.value.path == path / "initrd.cpio"
    assert "no compiler here" in str(info.value) and "it is not used" in str(info.value)


def test_an_unchecked_entry_is_not_hashed_and_an_absent_unbuildable_one_is_an_error():
    builds = []
    path = cache.entry("sources", "s1", make(builds), "a source")
    os.truncate(path / "initrd.cpio", 0)   # not checked: kept as it is (a source tree)
    assert cache.entry("sources", "s1", make(builds), "a source") == path
    assert "files" not in json.loads((path / cache.COMPLETE).read_text())
    with pytest.raises(HarnessError, match="modules for x is not in the cache.*bundle"):
        cache.entry("modules", "m1", make(builds), "modules for x", checked=True,
                    unbuildable="it came from a bundle")
    assert len(builds) == 1


def test_an_entry_made_before_records_is_recorded_on_first_use():
    builds = []
    path = cache.entry("livepatches", "l1", make(builds), "a livepatch")
    cache._seen.clear()
    assert cache.entry("livepatches", "l1", make(builds), "a livepatch", checked=True) == path
    assert "initrd.cpio" in json.loads((path / cache.COMPLETE).read_text())["files"]
    os.truncate(path / "initrd.cpio", 1)   # and checked from then on
    cache._seen.clear()
    cache.entry("livepatches", "l1", make(builds), "a livepatch", checked=True)
    assert len(builds) == 2


def test_an_unreadable_record_makes_the_entry_be_built_anew():
    builds = []
    path = cache.entry("images", "k1", make(builds), "an image", checked=True)
    (path / cache.COMPLETE).write_text('{"built": 1, "files": {')
    cache._seen.clear()
    cache.entry("images", "k1", make(builds), "an image", checked=True)
    assert len(builds) == 2 and "files" in json.loads((path / cache.COMPLETE).read_text())
