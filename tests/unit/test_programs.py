"""Static guest programs, built with the host's compiler for the host's own arch (no VM)."""
import platform
import subprocess

import pytest

from harness import arch, cache, hosttools, programs
from harness.errors import BuildError, MissingHostTool
from harness.image import Image

HOST = platform.machine()


@pytest.fixture
def image(tmp_path, monkeypatch):
    if HOST not in arch.NAMES:
        pytest.skip(f"host {HOST} is not a guest architecture")
    try:
        hosttools.require(*hosttools.compiler_for(arch.get(HOST)))
        hosttools.require(*hosttools.static_libc_for(arch.get(HOST)))
    except MissingHostTool as e:
        pytest.skip(str(e))
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    (tmp_path / "image").mkdir()
    return Image(dir=tmp_path / "image", name="test", arch=HOST, kernel_release="6.12",
                 host_key="", kbuild_dir=tmp_path, make_vars={}, selftest_modules=None)


def test_each_c_file_is_one_static_program(image, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "greet.h").write_text('#define GREETING "hello from a static program"\n')
    (src / "say-hello.c").write_text(
        '#include <stdio.h>\n#include "greet.h"\nint main(void) { puts(GREETING); return 0; }\n')
    (src / "functions.sh").write_text("# not a program\n")
    built = programs.build_set(image, src, "test")
    assert list(built) == ["say-hello"]
    exe = built["say-hello"]
    # Static: no program interpreter and no dynamic section (readelf comes with binutils,
    # which the set-up installs; `file` may be missing on a minimal root).
    headers = subprocess.run(["readelf", "-ld", exe], capture_output=True, text=True).stdout
    assert "Program Headers" in headers and "INTERP" not in headers
    assert "There is no dynamic section" in headers
    assert subprocess.run([exe], capture_output=True, text=True).stdout == \
        "hello from a static program\n"
    # Cached: the same sources give the same program without building again.
    made = exe.stat().st_mtime_ns
    assert programs.build_set(image, src, "test")["say-hello"].stat().st_mtime_ns == made
    # A cached program changed since it was built is not used: it is built anew.
    exe.write_bytes(b"marker")
    again = programs.build_set(image, src, "test")["say-hello"]
    assert again.read_bytes().startswith(b"\x7fELF")


def test_a_compile_error_names_the_error_and_the_log(image, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.c").write_text("int main(void) { return undeclared_thing; }\n")
    with pytest.raises(BuildError) as info:
        programs.build_set(image, src, "test")
    message = str(info.value)
    assert "broken.c" in message and "undeclared_thing" in message
    assert "build.log" in message


def test_a_set_without_c_files_is_empty(image, tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "test-foo.sh").write_text("exit 0\n")
    assert programs.build_set(image, tmp_path / "scripts", "test") == {}
