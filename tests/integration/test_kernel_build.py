"""Kernel builds from source fail clearly: an unmet config fragment names the symbol, and a
compile error shows the compiler's lines and the log path. Both use the real source tree of
the default image and a scratch build dir (the cached build dirs are left alone)."""
import subprocess

import pytest

from harness import image as imagemod, kernelbuild, kernelsource
from harness.errors import BuildError
from harness.pytest_plugin import selected_arches

# It configures and compiles a real kernel tree: deselected with the other real-parts tests
# by `-m "not vm"`.
pytestmark = pytest.mark.vm


@pytest.fixture
def inputs(request):
    arch = selected_arches(request.config)[0]
    return imagemod.kernel_inputs(imagemod.DEFAULT_IMAGE, arch)


def test_a_config_symbol_that_cannot_be_set_names_fragment_line_and_symbol(inputs, tmp_path):
    source, profile, _ = inputs
    fragment = tmp_path / "broken.config"
    # LIVEPATCH depends on ftrace and kallsyms, which this fragment does not enable.
    fragment.write_text("CONFIG_MODULES=y\nCONFIG_LIVEPATCH=y\nCONFIG_KLP_HARNESS_NO_SUCH=y\n")
    with pytest.raises(BuildError) as info:
        kernelbuild.build(source, profile, [fragment], build_dir=tmp_path / "build")
    text = str(info.value)
    assert f"{fragment}:2: CONFIG_LIVEPATCH=y (not in the config: its dependencies are not " \
        "met)" in text
    assert f"{fragment}:3: CONFIG_KLP_HARNESS_NO_SUCH=y (no such symbol in Linux " \
        f"{source.version})" in text
    assert f"{fragment}:1:" not in text


def test_a_compile_error_shows_the_compiler_and_the_log(inputs, tmp_path):
    source, profile, fragments = inputs
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-al", str(source.tree), str(tree)], check=True)  # hard links: fast
    # asm-offsets.c is among the first files every arch compiles. Replace, never edit in
    # place: the file is a hard link into the cached source.
    broken = tree / "arch" / profile.kernel_arch / "kernel" / "asm-offsets.c"
    broken.unlink()
    broken.write_text("int klp_harness_broken(void) { return 0 }\n")
    with pytest.raises(BuildError) as info:
        kernelbuild.build(kernelsource.local_tree(tree), profile, fragments,
                          build_dir=tmp_path / "build")
    text = str(info.value)
    assert "asm-offsets.c:1:" in text and "error: expected ';'" in text
    log = tmp_path / "build" / "klp-harness-build.log"
    assert f"(full log: {log})" in text
    assert "error: expected ';'" in log.read_text()
