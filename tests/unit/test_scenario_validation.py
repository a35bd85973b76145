"""Scenario files are validated before anything boots; errors name file, line and field."""
import textwrap

import pytest

from harness.errors import ScenarioError
from harness.scenario import Scenario
from harness.skips import Skip


def scenario(tmp_path, text):
    path = tmp_path / "case.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path):
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    return info.value


def test_a_valid_scenario_loads(tmp_path):
    sc = Scenario.load(scenario(tmp_path, """\
        description: ok
        steps:
          - load: {module: test_klp_livepatch, params: {x: 1}, wait: false}
          - sysfs: {test_klp_livepatch/enabled: 1, gone: absent}
          - run: cat /proc/cmdline
            contains: [patched]
            log: {contains: ["livepatch: enabling"], regex: ["patching (complete|done)"]}
          - disable: test_klp_livepatch
            log: ["a", "b"]
          - unload: test_klp_livepatch
        """))
    assert [s.kind for s in sc.steps] == ["load", "sysfs", "run", "disable", "unload"]
    assert sc.steps[0].args["params"] == {"x": "1"} and sc.steps[0].args["wait"] is False
    assert sc.steps[1].args["expected"] == {
        "test_klp_livepatch/enabled": {"value": "1", "mode": None},
        "gone": {"value": "absent", "mode": None}}
    assert sc.steps[3].log.transcript == ["a", "b"]
    assert sc.steps[2].line == 5


def test_unknown_top_level_key(tmp_path):
    e = error_of(scenario(tmp_path, "descripton: typo\nsteps: [{unload: x}]\n"))
    assert e.line == 1 and e.field == "descripton"
    assert "unknown field" in str(e) and "description" in str(e)


def test_unknown_step_kind_names_the_step(tmp_path):
    e = error_of(scenario(tmp_path, """\
        steps:
          - load: a
          - lod: b
        """))
    assert e.line == 3 and e.field == "steps[1]"
    assert "exactly one kind" in str(e)


def test_wrong_type_names_field_and_line(tmp_path):
    e = error_of(scenario(tmp_path, """\
        steps:
          - run: "true"
            status: zero
        """))
    assert e.line == 3 and e.field == "steps[0].status"
    assert "expected an exit status or 'any'" in str(e)


def test_bad_regex_is_reported(tmp_path):
    e = error_of(scenario(tmp_path, """\
        steps:
          - run: "true"
            log: {regex: ["(unclosed"]}
        """))
    assert "invalid regular expression" in str(e) and e.line == 3


def test_yaml_syntax_error_has_a_line(tmp_path):
    e = error_of(scenario(tmp_path, "steps:\n  - load: [unclosed\n"))
    assert e.line is not None and "invalid YAML" in str(e)


def test_unknown_arch_in_requires(tmp_path):
    e = error_of(scenario(tmp_path, "requires: {arches: [vax]}\nsteps: [{unload: x}]\n"))
    assert "vax" in str(e) and e.field == "requires.arches"


def test_empty_steps(tmp_path):
    e = error_of(scenario(tmp_path, "steps: []\n"))
    assert "at least one step" in str(e)


def test_every_shipped_scenario_is_valid():
    from harness.cli import SCENARIOS
    from harness.scenario import discover
    files = discover([SCENARIOS])
    assert files, "no scenarios shipped"
    for path in files:
        Scenario.load(path)


def test_a_step_on_a_module_no_step_loaded_is_an_error(tmp_path):
    e = error_of(scenario(tmp_path, """\
        steps:
          - load: test_klp_livepatch
          - unload: test_klp_livepatch
          - disable: test_klp_livepatch
        """))
    assert e.line == 4 and e.field == "steps[2].disable"
    assert "not loaded at this point" in str(e) and "unloaded before" in str(e)


def test_a_load_expected_to_fail_loads_nothing(tmp_path):
    e = error_of(scenario(tmp_path, """\
        steps:
          - load: {module: test_klp_state, expect-error: EINVAL}
          - unload: test_klp_state
        """))
    assert e.line == 3 and "not loaded" in str(e)


def test_a_variable_needs_an_earlier_save(tmp_path):
    e = error_of(scenario(tmp_path, """\
        steps:
          - load: {module: test_klp_syscall, params: {klp_pids: "${pids}"}}
          - run: echo 1
            save: pids
        """))
    assert e.line == 2 and "${pids} is not in the scenario's `vars` and is used before" in str(e)


def test_unknown_module_is_an_error_when_the_names_are_known(tmp_path):
    path = scenario(tmp_path, "steps: [{load: test_klp_livepatc}]\n")
    Scenario.load(path)                       # names unknown: not checked
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path, {"test_klp_livepatch"})
    assert "unknown module 'test_klp_livepatc'" in str(info.value) and info.value.line == 1


def test_requirements_are_checked_for_form(tmp_path):
    e = error_of(scenario(tmp_path, """\
        requires: {kernel: "six", config: [KPROBES]}
        steps: [{log: []}]
        """))
    assert e.field == "requires.kernel"
    e = error_of(scenario(tmp_path, """\
        requires: {config: [KPROBES]}
        steps: [{log: []}]
        """))
    assert e.field == "requires.config" and "CONFIG_" in str(e)


def test_requirements_decide_skips(tmp_path):
    sc = Scenario.load(scenario(tmp_path, """\
        requires: {arches: [x86_64], kernel: "6.13", config: [CONFIG_KPROBES]}
        steps: [{log: []}]
        """))

    class Image:
        name = "fake"

        def __init__(self, release, config):
            self.kernel_release, self._config = release, config

        def config_symbols(self):
            return self._config

    from harness.applicability import skip
    assert "6.13 or newer" in skip(sc, "x86_64", Image("6.12.107", {})).reason
    assert "lacks CONFIG_KPROBES" in skip(sc, "x86_64", Image("6.14.0", {})).reason
    assert skip(sc, "x86_64", Image("6.14.0", {"CONFIG_KPROBES": "y"})) is None
    assert skip(sc, "x86_64") is None   # the arch alone: before the image is made
    assert "requires x86_64" in skip(sc, "s390x").reason
    # the cause, as data for the summary: the same reason, the symbols, the image
    assert skip(sc, "x86_64", Image("6.14.0", {})) == Skip(
        "the image's kernel config lacks CONFIG_KPROBES", "need kernel config CONFIG_KPROBES",
        ("CONFIG_KPROBES",), "fake")
    assert skip(sc, "x86_64", Image("6.12.107", {})).group == "need Linux 6.13 or newer"


def test_sysfs_modes_are_checked_for_form(tmp_path):
    e = error_of(scenario(tmp_path, """\
        steps:
          - sysfs: {p/enabled: {mode: rw-r--r--}}
        """))
    assert e.field == "steps[0].sysfs.p/enabled.mode"


def test_errno_names_become_kmods_words():
    from harness.scenario import load_error_text
    assert load_error_text("ENODEV") == "No such device"
    assert load_error_text("EINVAL") == "Invalid parameters"      # kmod's own wording
    assert load_error_text("Device or resource busy") == "Device or resource busy"


def test_a_known_failure_needs_a_reason_and_turns_fail_into_xfail(tmp_path):
    from harness.outcome import Outcome, known_failure
    e = error_of(scenario(tmp_path, "known-failure: {arches: [s390x]}\nsteps: [{log: []}]\n"))
    assert e.field == "known-failure" and "reason" in str(e)
    sc = Scenario.load(scenario(tmp_path, """\
        known-failure: {arches: [s390x], reason: the kprobe handler drops the redirect}
        steps: [{log: []}]
        """))
    assert known_failure(sc, Outcome("x", "s390x", "fail", "step 4")).status == "xfail"
    assert known_failure(sc, Outcome("x", "x86_64", "fail", "step 4")).status == "fail"
    stale = known_failure(sc, Outcome("x", "s390x", "pass"))
    assert stale.status == "fail" and "remove the declaration" in stale.message
    bad = error_of(scenario(tmp_path, "known-failure: {arches: [s390x], reason: r, "
                                      "match: 'a(b'}\nsteps: [{log: []}]\n"))
    assert bad.field == "known-failure.match"


def test_a_log_check_without_a_transcript_checks_only_what_it_names(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("steps:\n  - log:\n      contains: [enabling patch]\n      absent: [setup 2]\n")
    log = Scenario.load(path).steps[0].log
    assert log.transcript is None          # not an empty transcript, which nothing matches
    assert log.contains == ["enabling patch"] and log.absent == ["setup 2"]


def test_an_empty_or_missing_scenario_path_is_an_error_not_zero_scenarios(tmp_path, capsys):
    from harness import cli
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "modules").mkdir()
    (empty / "modules" / "x.yaml").write_text("not a scenario\n")   # module dirs don't count
    for argv in (["validate", str(empty)], ["validate", str(tmp_path / "typo")],
                 ["run", "--arch", "x86_64", str(empty)]):
        assert cli.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert f"{empty}: no scenario files (*.yaml) in this directory" in err
    assert f"{tmp_path / 'typo'}: no such scenario file or directory" in err


@pytest.mark.parametrize("error, ok", [("EBUSY", True), ("Device or resource busy", True),
                                       ("Invalid parameters", True), ("EEXSIT", False),
                                       ("device busy", False)])
def test_expect_error_is_an_errno_name_or_kmods_text(tmp_path, error, ok):
    path = tmp_path / "s.yaml"
    path.write_text(f"steps:\n  - load: {{module: klp_cmdline, expect-error: '{error}'}}\n")
    if ok:
        assert Scenario.load(path).steps[0].args["error"] == error
    else:
        with pytest.raises(ScenarioError, match=rf"s.yaml:2: steps\[0\]\.load\.expect-error: "
                                                 rf"'{error}' is neither an errno name"):
            Scenario.load(path)


def test_validate_with_an_unknown_image_is_an_error(capsys):
    from harness import cli
    assert cli.main(["validate", "--image", "bogus"]) == 2
    assert "no image recipe named 'bogus'" in capsys.readouterr().err


def test_two_files_of_one_name_in_different_dirs_have_different_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ids = []
    for d in ("qa-a", "qa-b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "check.yaml").write_text("steps:\n  - run: 'true'\n")
        ids.append(Scenario.load(tmp_path / d / "check.yaml").id)
    assert ids == ["qa-a/check", "qa-b/check"]


def test_every_bad_step_of_a_file_is_reported_not_only_the_first(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("steps:\n  - run: {a: 1}\n  - load: klp_cmdline\n  - bogus: x\n")
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}:2: steps[0].run: expected string, got mapping {{'a': 1}}"
    assert lines[1].startswith(f"{path}:4: steps[2]: a step has exactly one kind")
    assert len(lines) == 2


def test_shadow_ids_are_named_as_written_and_no_internal_type_shows(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text('steps:\n  - shadow: {0x5e551: "lots"}\n')
    with pytest.raises(ScenarioError, match=r"steps\[0\]\.shadow\.0x5e551: expected a count"):
        Scenario.load(path)
    path.write_text("steps:\n  - shadow: {0x5e551: 3, 0x5e551: 4}\n")
    with pytest.raises(ScenarioError, match="duplicate key '0x5e551'"):
        Scenario.load(path)
    path.write_text("steps:\n  - run: [a]\n")
    with pytest.raises(ScenarioError) as info:
        Scenario.load(path)
    assert "got list ['a']" in str(info.value) and "Node" not in str(info.value)
