"""Shadow variable counts: parsing the counter's output, expectations, the leak check,
and the scenario fields that use them (pure logic; the counter itself runs in
tests/integration/test_shadow_counter.py and every scenarios/system-state case)."""
import textwrap

import pytest

from harness.errors import HarnessError, ScenarioError
from harness.outcome import Outcome, expected_failure
from harness.scenario import Scenario
from harness.shadow import Counts, check, leaks

OUTPUT = "total 21\nwalk_ns 5300\n0x5e550 1\n0x5e551 20\n"


def scenario(tmp_path, text, name="case.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_counters_output_parses():
    c = Counts.parse(OUTPUT)
    assert (c.total, c.walk_ns, c.of(0x5e551), c.of("total"), c.of(0x1234)) == (21, 5300, 20, 21, 0)
    with pytest.raises(HarnessError, match="unaccounted"):
        Counts.parse(OUTPUT + "other 3\n")
    with pytest.raises(HarnessError, match="unreadable"):
        Counts.parse("")


def test_expectations_are_on_what_the_scenario_added():
    start = Counts(3, {0x1234: 3})
    added = Counts.parse(OUTPUT).minus(start)
    assert added.of("total") == 18 and added.of(0x1234) == -3 and added.of(0x5e551) == 20
    assert check({0x5e551: "20", "total": ">= 18"}, added, "after step 3 (load x)") == []
    assert check({0x5e551: "0", "total": "< 5"}, added, "after step 11 (disable x)") == [
        "shadow id 0x5e551: 20 live after step 11 (disable x), 0 expected",
        "shadow variables in total: 18 live after step 11 (disable x), < 5 expected"]


def test_leaks_are_counted_beyond_the_start_and_the_baseline():
    start, end = Counts(1, {0x1: 1}), Counts(24, {0x1: 1, 0x5e551: 20, 0x2: 3})
    assert leaks(start, end, {}) == {0x5e551: 20, 0x2: 3}
    assert leaks(start, end, {0x2: 3}) == {0x5e551: 20}
    assert leaks(start, start, {}) == {}


def test_a_negative_control_must_fail_as_it_says(tmp_path):
    sc = Scenario.load(scenario(tmp_path, """\
        expect-failure: "shadow id 0x5e551: \\\\d+ live"
        steps: [{log: []}]
        """))
    caught = expected_failure(sc, Outcome("x", "s390x", "fail", "shadow id 0x5e551: 20 live"))
    assert caught.status == "xfail" and caught.message.startswith("negative control caught")
    missed = expected_failure(sc, Outcome("x", "s390x", "pass"))
    assert missed.status == "fail" and "not caught" in missed.message
    other = expected_failure(sc, Outcome("x", "s390x", "fail", "guest did not boot"))
    assert other.status == "fail" and "not with a message matching" in other.message


def test_shadow_steps_parse_and_bad_ones_name_the_line(tmp_path):
    sc = Scenario.load(scenario(tmp_path, """\
        steps:
          - shadow: {total: 0, 0x5e551: 20, "0x10": ">= 1"}
        """))
    assert sc.steps[0].args["expected"] == {"total": "0", 0x5e551: "20", 0x10: ">= 1"}
    assert sc.counts_shadow
    e = pytest.raises(ScenarioError, Scenario.load, scenario(tmp_path, """\
        steps:
          - log: []
          - shadow: {0x5e551: lots}
        """)).value
    assert e.line == 3 and "comparison" in str(e)
    e = pytest.raises(ScenarioError, Scenario.load, scenario(tmp_path, """\
        steps: [{shadow: {sessions: 1}}]
        """)).value
    assert "shadow variable id" in str(e)


def test_an_extending_scenario_runs_the_others_steps_with_its_vars(tmp_path):
    scenario(tmp_path, """\
        vars: {patch: klp_good}
        steps:
          - load: ${patch}
          - sysfs: {"${patch}/enabled": "1"}
          - run: echo ${patch}
            save: out
          - run: echo ${out}
        """, "base.yaml")
    child = Scenario.load(scenario(tmp_path, """\
        extends: base.yaml
        vars: {patch: klp_bad}
        expect-failure: "klp_bad"
        """, "child.yaml"))
    assert child.steps[0].args["module"] == "klp_bad"
    assert "klp_bad/enabled" in child.steps[1].args["expected"]
    assert child.steps[3].args["command"] == "echo ${out}"   # a run step's variable: later
    assert child.source.name == "base.yaml" and child.id.endswith("child")
    e = pytest.raises(ScenarioError, Scenario.load, scenario(tmp_path, """\
        extends: base.yaml
        vars: {patchh: klp_bad}
        """, "typo.yaml")).value
    assert e.path.name == "typo.yaml" and "'patchh' is not a variable of base.yaml" in str(e)
    e = pytest.raises(ScenarioError, Scenario.load, scenario(tmp_path, """\
        extends: base.yaml
        steps: [{log: []}]
        """, "steps.yaml")).value
    assert e.field == "steps"
    e = pytest.raises(ScenarioError, Scenario.load, scenario(tmp_path, """\
        extends: missing.yaml
        """, "missing-base.yaml")).value
    assert "no scenario file" in str(e)


def test_a_log_check_without_a_transcript_does_not_demand_an_empty_one(tmp_path):
    sc = Scenario.load(scenario(tmp_path, """\
        steps:
          - log: {contains: ["introducing state"]}
        """))
    assert sc.steps[0].log.transcript is None


def test_a_baseline_is_a_count_per_id(tmp_path):
    sc = Scenario.load(scenario(tmp_path, "shadow-baseline: {0x1234: 2}\nsteps: [{log: []}]\n"))
    assert sc.shadow_baseline == {0x1234: 2}
    e = pytest.raises(ScenarioError, Scenario.load, scenario(
        tmp_path, "shadow-baseline: {total: 2}\nsteps: [{log: []}]\n")).value
    assert e.field == "shadow-baseline"
