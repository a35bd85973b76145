"""Livepatches from source patches (harness/klpbuild.py), the parts that need no kernel:
klp-build's reasons read from its output, which images can run it, and the scenario field
`livepatches`. tests/integration/test_klp_build.py runs the real klp-build, and the
scenarios under scenarios/klp-build/ load what it makes into real guests."""
import json
import textwrap
from pathlib import Path

import pytest

from harness import klpbuild
from harness.errors import HarnessError, ScenarioError
from harness.image import Image
from harness.scenario import Scenario

PATCH = textwrap.dedent("""\
    proc: a fix

    --- a/fs/proc/version.c
    +++ b/fs/proc/version.c
    @@ -13,6 +13,7 @@
     		utsname()->version);
    +	seq_puts(m, "fixed\\n");
     	return 0;
     }
    --- a/fs/proc/uptime.c
    +++ b/fs/proc/uptime.c
    @@ -1,3 +1,4 @@
     a
    +b
     c
    @@ -20,3 +21,4 @@ static int uptime_proc_show(struct seq_file *m, void *v)
     x
    +y
     z
    """)


def test_a_rejected_hunk_is_named_with_its_file_and_header(tmp_path):
    patch = tmp_path / "fix.patch"
    patch.write_text(PATCH)
    log = textwrap.dedent(f"""\
        Validating patch(es)
        checking file fs/proc/version.c
        checking file fs/proc/uptime.c
        Hunk #2 FAILED at 20.
        1 out of 2 hunks FAILED
        error: klp-build: {patch} did not apply
        """)
    reason = klpbuild.refusal(log, [patch])
    assert reason.splitlines() == [
        f"{patch} does not apply to the image's kernel source:",
        "hunk #2 of fs/proc/uptime.c (@@ -20,3 +21,4 @@) does not match the source "
        "(tried at line 20)"]


def test_klp_builds_own_verdict_comes_with_objtools_complaint_not_the_make_output():
    log = "\n".join(["Building patched kernel", *(f"  CC  file{i}.o" for i in range(500)),
                     "Diffing objects", "vmlinux.o: error: objtool: changed data: oops_limit",
                     "error: klp-build: objtool klp diff failed"])
    assert klpbuild.refusal(log, []) == ("objtool klp diff failed\n"
                                         "vmlinux.o: error: objtool: changed data: oops_limit")


def test_an_unsupported_file_is_klp_builds_reason():
    log = "Validating patch(es)\nerror: klp-build: /x/lib.patch: unsupported patch to lib/string.c"
    assert klpbuild.refusal(log, []) == "/x/lib.patch: unsupported patch to lib/string.c"


def test_output_without_klp_builds_verdict_is_no_refusal():
    """A run killed or broken for the host's reasons must not be cached as the patch's."""
    assert klpbuild.refusal("Building original kernel\nmake: *** [Makefile] Error 2", []) == ""


def test_hunk_headers_are_read_per_file(tmp_path):
    patch = tmp_path / "fix.patch"
    patch.write_text(PATCH)
    assert klpbuild.hunk_headers(patch) == {
        "fs/proc/version.c": ["@@ -13,6 +13,7 @@"],
        "fs/proc/uptime.c": ["@@ -1,3 +1,4 @@", "@@ -20,3 +21,4 @@"]}


def test_default_name_is_a_module_name():
    assert klpbuild.default_name([Path("/p/0001-Fix-the-thing.v2.patch")]) == \
        "livepatch_0001_fix_the_thing_v2"


def test_a_patch_must_exist_and_be_a_unified_diff(tmp_path):
    with pytest.raises(HarnessError, match="no such file"):
        klpbuild.check_patches([tmp_path / "missing.patch"])
    notes = tmp_path / "notes.patch"
    notes.write_text("just words\n")
    with pytest.raises(HarnessError, match="not a unified diff"):
        klpbuild.check_patches([notes])


def fake_image(tmp_path, config, source=True, script=True, arch="x86_64"):
    tree = tmp_path / "tree"
    (tree / "scripts/livepatch").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\n")
    if script:
        (tree / klpbuild.SCRIPT).write_text("#!/bin/bash\n")
    kbuild = tmp_path / "kbuild"
    kbuild.mkdir()
    if source:
        (kbuild / "source").symlink_to(tree)
    image = tmp_path / "image"
    image.mkdir()
    (image / "config").write_text("".join(f"{c}\n" for c in config))
    (image / "manifest.json").write_text(json.dumps({
        "name": "linux-7.3", "arch": arch, "kernel_release": "7.3.4", "host_key": "",
        "kbuild_dir": str(kbuild), "make_vars": {}, "selftest_modules": ""}))
    return Image.from_dir(image)


KLP = ["CONFIG_LIVEPATCH=y", "CONFIG_HAVE_KLP_BUILD=y", "CONFIG_KLP_BUILD=y"]


def test_an_image_klp_build_can_serve(tmp_path):
    assert klpbuild.unsupported(fake_image(tmp_path, KLP)) is None


@pytest.mark.parametrize("case, expected", [
    ({"source": False}, "boots a kernel built elsewhere"),
    ({"script": False}, "Linux 7.3.4 (image linux-7.3) has no klp-build: it came with Linux 6.19"),
    ({"config": ["CONFIG_LIVEPATCH=y"], "arch": "ppc64le"},
     "klp-build does not support ppc64le in Linux 7.3.4"),
    ({"config": KLP[:2]}, "lacks CONFIG_KLP_BUILD"),
])
def test_an_image_klp_build_cannot_serve_says_why_in_one_line(tmp_path, case, expected):
    case = dict(case)
    reason = klpbuild.unsupported(fake_image(tmp_path, case.pop("config", KLP), **case))
    assert expected in reason and "\n" not in reason


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_livepatches_name_patches_relative_to_the_scenario_file(tmp_path):
    write(tmp_path, "mine/patches/fix.patch", PATCH)
    write(tmp_path, "mine/patches/more.patch", PATCH)
    path = write(tmp_path, "mine/fix.yaml", """\
        livepatches:
          klp_fix: patches/fix.patch
          klp_both: {patches: [patches/fix.patch, patches/more.patch], replace: false}
        steps:
          - load: klp_fix
          - load: klp_both
        """)
    sc = Scenario.load(path, modules={"klp_cmdline"})   # theirs are known without a build
    assert sc.livepatches["klp_fix"] == klpbuild.LivepatchSource(
        "klp_fix", (tmp_path / "mine/patches/fix.patch",), True)
    assert sc.livepatches["klp_both"].patches[1] == tmp_path / "mine/patches/more.patch"
    assert sc.livepatches["klp_both"].replace is False


def test_a_negative_control_may_swap_a_livepatchs_patch(tmp_path):
    write(tmp_path, "good.patch", PATCH)
    write(tmp_path, "bad/broken.patch", PATCH)
    write(tmp_path, "base.yaml", "livepatches: {klp_fix: good.patch}\nsteps: [{load: klp_fix}]\n")
    path = write(tmp_path, "bad/control.yaml", """\
        extends: ../base.yaml
        livepatches: {klp_fix: broken.patch}
        expect-failure: "x"
        """)
    assert Scenario.load(path).livepatches["klp_fix"].patches == (tmp_path / "bad/broken.patch",)


@pytest.mark.parametrize("field, message", [
    ("{klp_fix: nowhere.patch}", "no such file"),
    ("{Klp-Fix: fix.patch}", "lower-case letters, digits and _"),
    ("{klp_fix: {patches: [fix.patch], replace: maybe}}", "expected true/false"),
    ("{klp_fix: {patch: fix.patch}}", "unknown field"),
    ("{klp_fix: notes.txt}", "not a unified diff"),
])
def test_a_wrong_livepatches_field_names_file_line_and_field(tmp_path, field, message):
    write(tmp_path, "fix.patch", PATCH)
    write(tmp_path, "notes.txt", "words\n")
    path = write(tmp_path, "case.yaml", f"description: x\nlivepatches: {field}\n"
                                        "steps: [{run: 'true'}]\n")
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    assert message in str(info.value)
    assert f"{path}:2" in str(info.value) and "livepatches" in str(info.value)


def test_a_die_in_a_subshell_is_reported_by_its_words_not_the_err_traps_echo():
    log = ("vmlinux.o: error: objtool: changed data: oops_limit\n"
           "error: klp-build: objtool klp diff failed\n"
           "error: klp-build: line 739: '( cd \"$ORIG_CSUM_DIR\"; \"${cmd[@]}\" || die \"x\" )'\n")
    assert klpbuild.refusal(log, []) == ("objtool klp diff failed\n"
                                         "vmlinux.o: error: objtool: changed data: oops_limit")


def test_the_skip_of_an_arch_without_klp_build_has_one_cause_for_every_arch(tmp_path):
    """The summary counts them together: the cause names neither the arch nor the image."""
    images = [fake_image(tmp_path / a, ["CONFIG_LIVEPATCH=y"], arch=a)
              for a in ("ppc64le", "s390x")]
    skips = [klpbuild.unsupported_skip(image) for image in images]
    assert [s.reason for s in skips] == [klpbuild.unsupported(image) for image in images]
    assert "does not support ppc64le" in skips[0].reason
    assert skips[0].group == skips[1].group == (
        "need klp-build, which Linux 7.3.4 has only where the arch selects HAVE_KLP_BUILD "
        "(x86_64 as of 7.3)")


# -- a livepatch named like a module of the image -----------------------------------------

CLASH = """\
    description: my fix of binfmt_misc
    livepatches:
      klp_fine: fix.patch
      binfmt_misc: fix.patch
    steps: [{load: binfmt_misc}]
    """


def test_validation_that_knows_the_images_modules_refuses_a_livepatch_named_like_one(tmp_path):
    write(tmp_path, "fix.patch", PATCH)
    path = write(tmp_path, "mine.yaml", CLASH)
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path, modules={"binfmt_misc", "klp_cmdline"})
    assert (info.value.path, info.value.line, info.value.field) == \
        (path, 4, "livepatches.binfmt_misc")
    assert "already the name of a module of this image" in str(info.value)
    # Without the image's names (nothing built yet) there is nothing to compare with.
    assert set(Scenario.load(path).livepatches) == {"klp_fine", "binfmt_misc"}
    # Names the image does not have are fine.
    assert Scenario.load(path, modules={"klp_cmdline", "binfmt_misc_x"}).livepatches


def test_validate_with_an_image_names_the_livepatch_that_takes_a_module_name(
        tmp_path, monkeypatch, capsys):
    from harness import cli
    write(tmp_path, "fix.patch", PATCH)
    path = write(tmp_path, "mine.yaml", CLASH)
    monkeypatch.setattr(cli.modules, "known_names", lambda image: {"binfmt_misc"})
    assert cli.main(["validate", "--image", "linux-7.3", str(path)]) == 2
    assert f"{path}:4: livepatches.binfmt_misc: 'binfmt_misc' is already" in \
        capsys.readouterr().err


def fake_session(tmp_path, monkeypatch, module: str):
    """A Session whose x86_64 image has the one module ``module`` and can run klp-build."""
    from types import SimpleNamespace
    from harness.modules import ModuleCatalog
    from harness.options import Options
    from harness.session import Session
    from harness import arch as archmod
    from harness.archstate import ArchState
    monkeypatch.setenv("KLP_HARNESS_CACHE", str(tmp_path / "cache"))
    session = Session(Options(artifacts=tmp_path / "artifacts"))
    catalog = object.__new__(ModuleCatalog)
    catalog.image = SimpleNamespace(name="linux-7.3")
    catalog.modules = {module: Path(f"/cache/modules/{module}.ko")}
    arch_state = ArchState(archmod.get("x86_64"), catalog.image, catalog, {}, "tcg", None, "")
    monkeypatch.setattr(session, "state", lambda arch: arch_state)
    monkeypatch.setattr(klpbuild, "unsupported", lambda image: None)
    return session


def test_the_generic_check_of_a_livepatch_names_the_users_file_not_the_generic_one(
        tmp_path, monkeypatch):
    """`run` adds a generic check for each livepatch (external/from-patches/<name>.yaml,
    extending scenarios/generic/livepatch-module.yaml): a clash found running it is the
    user's declaration, by file and line."""
    from harness import external
    write(tmp_path, "fix.patch", PATCH)
    path = write(tmp_path, "mine.yaml", CLASH)
    [check] = [c for c in external.livepatch_checks([Scenario.load(path)], tmp_path / "art")
               if "binfmt_misc" in c.livepatches]
    assert check.source == external.GENERIC   # where its steps come from
    session = fake_session(tmp_path, monkeypatch, "binfmt_misc")
    for scenario in (Scenario.load(path), check):
        with pytest.raises(ScenarioError) as info:
            session.catalog_with("x86_64", scenario.livepatches)
        assert (info.value.path, info.value.line, info.value.field) == \
            (path, 4, "livepatches.binfmt_misc")
        assert "/cache/modules/binfmt_misc.ko" in str(info.value)
        with pytest.raises(ScenarioError) as info:   # run_scenario's check, before booting
            scenario.check_modules({"binfmt_misc"})
        assert (info.value.path, info.value.line) == (path, 4)


def test_livepatches_not_declared_by_a_scenario_clash_without_a_file(tmp_path, monkeypatch):
    """LiveTest's livepatches come from Python: the error names no file."""
    session = fake_session(tmp_path, monkeypatch, "binfmt_misc")
    source = klpbuild.LivepatchSource("binfmt_misc", (tmp_path / "fix.patch",))
    with pytest.raises(HarnessError) as info:
        session.catalog_with("x86_64", {"binfmt_misc": source})
    assert not isinstance(info.value, ScenarioError)
    assert "'binfmt_misc' is already the name of a module of image linux-7.3" in str(info.value)


# -- a patch that creates a file; klp-build's ERR trap ------------------------------------

NEW_FILE_PATCH = textwrap.dedent("""\
    kernel: a helper of its own

    --- /dev/null
    +++ b/kernel/new.c
    @@ -0,0 +1,3 @@
    +int klp_new_helper(void)
    +{
    +\treturn 1;
    +}
    """)


@pytest.mark.parametrize("old_side", ["--- /dev/null",
                                      "--- a/kernel/new.c\t1970-01-01 00:00:00.000000000 +0000"])
def test_a_patch_that_creates_a_file_is_refused_before_klp_build_with_what_to_do(
        tmp_path, old_side):
    patch = tmp_path / "new.patch"
    patch.write_text(NEW_FILE_PATCH.replace("--- /dev/null", old_side))
    with pytest.raises(HarnessError) as info:
        klpbuild.check_patches([patch])
    message = str(info.value)
    assert message.startswith(f"patch {patch} creates kernel/new.c: klp-build cannot take a "
                              "patch that adds a file")
    assert "put the new code into an existing file" in message


def test_a_patch_that_only_changes_files_creates_none(tmp_path):
    patch = tmp_path / "fix.patch"
    patch.write_text(PATCH)
    klpbuild.check_patches([patch])   # no error
    assert klpbuild.new_files(PATCH) == []
    both = PATCH + NEW_FILE_PATCH.split("\n\n", 1)[1]   # a change and a new file
    assert klpbuild.new_files(both) == ["kernel/new.c"]


def test_a_scenario_naming_a_patch_that_creates_a_file_fails_validation_at_its_line(tmp_path):
    write(tmp_path, "new.patch", NEW_FILE_PATCH)
    path = write(tmp_path, "case.yaml", "description: x\nlivepatches: {klp_new: new.patch}\n"
                                        "steps: [{load: klp_new}]\n")
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    assert (info.value.line, info.value.field) == (2, "livepatches.klp_new")
    assert "creates kernel/new.c" in str(info.value)
    assert "relative to" not in str(info.value)   # said only of a patch not found


def test_an_err_trap_echo_alone_is_said_in_words_with_the_commands_own_output():
    log = ("Validating patch(es)\nFixing patch(es)\ncp: missing file operand\n"
           "Try 'cp --help' for more information.\n"
           "error: klp-build: line 486: 'xargs cp --parents --target-directory=\"$tmpdir/a\"'\n")
    assert klpbuild.refusal(log, []).splitlines() == [
        "klp-build failed running xargs cp --parents --target-directory=\"$tmpdir/a\" "
        "(its line 486) without saying why",
        "its last output:", "Fixing patch(es)", "cp: missing file operand",
        "Try 'cp --help' for more information."]


def test_an_err_trap_echo_names_the_innermost_command_even_with_nothing_before_it():
    log = ("error: klp-build: line 12: 'false'\n"
           "error: klp-build: line 40: '( cd x; false )'\n")
    assert klpbuild.refusal(log, []) == \
        "klp-build failed running false (its line 12) without saying why"
