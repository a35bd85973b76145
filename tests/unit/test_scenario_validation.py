"""Scenario files are validated before anything boots; errors name file, line and field."""
import textwrap

import pytest

from harness.errors import ScenarioError
from harness.scenario import Scenario


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
    assert sc.steps[0].args["params"] == {"x": 1} and sc.steps[0].args["wait"] is False
    assert sc.steps[1].args["expected"] == {"test_klp_livepatch/enabled": "1", "gone": "absent"}
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
    assert "expected int" in str(e)


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
