"""klp-build's original build shared with the image's kernel (harness/klporig.py): the make
variables read from a klp-build script, which arches get them, and the workspace seeded as
klp-build's step 1 leaves it. tests/integration/test_klp_build.py and scenarios/klp-build/
prove the livepatches built this way load into the image's own kernel."""
import textwrap

from harness import arch as archmod, klporig

# Shaped like klp-build's build_kernel() (written here: the real one is in each kernel tree).
SCRIPT = textwrap.dedent("""\
    clean_kernel() {
    \tcmd=("make")
    \tcmd+=("clean")
    }

    build_kernel() {
    \tlocal cmd=()
    \tcmd=("make")
    \tcmd+=("KBUILD_MODPOST_WARN=1")
    \tcmd+=("KLP_SYMIDS=1")
    \tif [[ -v VERBOSE ]]; then
    \t\tcmd+=("V=1")
    \telse
    \t\tcmd+=("-s")
    \tfi
    \tcmd+=("-j$JOBS")
    \tcmd+=("KCFLAGS=-ffunction-sections -fdata-sections")
    \tcmd+=("vmlinux")
    \tcmd+=("modules")
    \t"${cmd[@]}" || die "build failed"
    }
    """)


def test_the_variables_of_klp_builds_build_are_read_from_its_script():
    assert klporig.build_kernel_vars(SCRIPT) == {
        "KBUILD_MODPOST_WARN": "1", "KLP_SYMIDS": "1",
        "KCFLAGS": "-ffunction-sections -fdata-sections"}   # not V=1: only when verbose


def test_a_build_step_we_cannot_read_shares_nothing():
    assert klporig.build_kernel_vars(SCRIPT.replace("build_kernel()", "make_it()")) is None
    assert klporig.build_kernel_vars(SCRIPT.replace('cmd+=("modules")', "")) is None
    assert klporig.build_kernel_vars(SCRIPT.replace("KCFLAGS", "KAFLAGS")) is None


def tree_with(tmp_path, arch_dir: str, kconfig: str):
    tree = tmp_path / "linux"
    (tree / "scripts/livepatch").mkdir(parents=True)
    (tree / "scripts/livepatch/klp-build").write_text(SCRIPT)
    (tree / "arch" / arch_dir).mkdir(parents=True)
    (tree / "arch" / arch_dir / "Kconfig").write_text(kconfig)
    return tree


def test_only_an_arch_that_selects_have_klp_build_and_needs_no_cross_compiler_shares(tmp_path):
    tree = tree_with(tmp_path, "x86", "config X86_64\n\tselect HAVE_KLP_BUILD\tif X86_64\n")
    x86 = archmod.get("x86_64")
    if x86.cross_compile():   # on a host of another arch, nothing is shared
        assert klporig.make_vars(tree, x86) is None
    else:
        assert klporig.make_vars(tree, x86)["KLP_SYMIDS"] == "1"
    (tree / "arch/x86/Kconfig").write_text("config X86_64\n\tselect HAVE_LIVEPATCH\n")
    assert klporig.make_vars(tree, x86) is None
    s390 = archmod.get("s390x")
    (tree / "arch/s390").mkdir()
    (tree / "arch/s390/Kconfig").write_text("\tselect HAVE_KLP_BUILD\n")
    assert klporig.make_vars(tree, s390) is None   # a cross compiler: klp-build cannot


def test_the_seeded_workspace_holds_what_klp_builds_step_1_copies(tmp_path):
    tree = tmp_path / "tree"
    files = ["vmlinux", "vmlinux.o", "fs/binfmt_misc.ko", "fs/binfmt_misc.o",
             "fs/proc/base.o", "lib/test.ko", "lib/test.o", "top.ko", "top.o",
             ".hidden/x.ko", ".hidden/x.o", "klp-tmp/old/y.ko", "klp-tmp/old/y.o",
             "fs/.binfmt_misc.o.cmd"]
    for f in files:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        (tree / f).write_text(f)
    klporig.seed(tree)
    orig = tree / klporig.ORIG
    copied = sorted(str(p.relative_to(orig)) for p in orig.rglob("*") if p.is_file())
    assert copied == [".complete", "fs/binfmt_misc.o", "lib/test.o", "vmlinux", "vmlinux.o"]
    assert (orig / "fs/binfmt_misc.o").read_text() == "fs/binfmt_misc.o"
    assert (tree / "klp-tmp/timestamp").exists() and not (tree / "klp-tmp/old").exists()
