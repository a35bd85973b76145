"""A step kind is one declaration (scenario.STEP_KINDS: its fields and parser), one handler
(runner.Runner._do_<kind>), and one example in scenarios/README.md: this test ties the
three together, so a new kind cannot miss one of them."""
import inspect

import pytest
import yaml

from harness.image import PROJECT
from harness.runner import Runner
from harness.scenario import STEP_KINDS, Scenario

README = PROJECT / "scenarios" / "README.md"


def readme_examples():
    text = README.read_text()
    block = text[text.index("One example of each:"):]
    block = block[block.index("```yaml\n") + 8:]
    return yaml.safe_load(block[:block.index("```")])


def kind_of(step):
    return next(k for k in step if k in STEP_KINDS)


def test_every_step_kind_has_an_example_in_the_scenario_readme():
    assert {kind_of(s) for s in readme_examples()} == set(STEP_KINDS)


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_each_example_parses_into_the_arguments_its_handler_takes(index, tmp_path):
    spec = readme_examples()[index]
    step = Scenario._step(tmp_path / "README.yaml", spec, 1, index)
    handler = getattr(Runner, "_do_" + step.kind.replace("-", "_"))
    params = [p for p in inspect.signature(handler).parameters if p != "self"]
    assert sorted(step.args) == sorted(params), (step.kind, step.args, params)


def test_every_handler_is_a_declared_kind():
    handlers = {m[len("_do_"):].replace("_", "-") for m in dir(Runner) if m.startswith("_do_")}
    assert handlers == set(STEP_KINDS)
