"""The known mixed-call race, as the consistency scenarios declare it, excuses its own
signatures only (docs/kernel-findings/mixed-call-after-a-replace.md): a task switched on
its way into the outer, so its patch_state as the outer began is already the transition's
target, and both functions were chosen in one transition (the inner perhaps after it
completed, patch_state -1). The lines are klp_chain's record (scenarios/modules/klp_chain.c)."""
import re
from pathlib import Path

import pytest

from harness.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
DECLARING = ["consistency/cumulative-chain-under-load.yaml",
             "consistency/per-task-under-load.yaml", "consistency/near-oom.yaml",
             "negative/mixed-call-unlike-the-known-race.yaml"]

PATCHING = "in transition 7, a patching one"
UNPATCHING = "in transition 8, an unpatching one"

THE_RACE = [
    f"its patch_state 1 as the outer began, 1 in the inner, both {PATCHING}",
    f"its patch_state 1 as the outer began, -1 in the inner, both {PATCHING}",
    f"its patch_state 0 as the outer began, 0 in the inner, both {UNPATCHING}",
    f"its patch_state 0 as the outer began, -1 in the inner, both {UNPATCHING}",
]
OTHER_BUGS = [
    # switched while inside the outer
    f"its patch_state 0 as the outer began, 1 in the inner, both {PATCHING}",
    f"its patch_state 0 as the outer began, -1 in the inner, both {PATCHING}",
    f"its patch_state 1 as the outer began, 0 in the inner, both {UNPATCHING}",
    f"its patch_state 1 as the outer began, -1 in the inner, both {UNPATCHING}",
    # began the outer in an earlier transition (or before any: force)
    f"its patch_state 1 as the outer began, in transition 6, a patching one; -1 in the "
    f"inner, {PATCHING}",
    "its patch_state -1 as the outer began, before any transition; -1 in the inner, "
    "in transition 1, a patching one",
]


def _match(name):
    return Scenario.load(ROOT / "scenarios" / name).known_match


@pytest.mark.parametrize("name", DECLARING)
@pytest.mark.parametrize("states", THE_RACE)
def test_the_race_is_excused(name, states):
    line = f"1 mixed call(s), the first: pid 80 (sh) ran klp_chain_outer version 2, " \
           f"then klp_chain_inner version 3 ({states})"
    assert re.search(_match(name), line)


@pytest.mark.parametrize("name", DECLARING)
@pytest.mark.parametrize("states", OTHER_BUGS)
def test_another_signature_is_not(name, states):
    line = f"1 mixed call(s), the first: pid 80 (sh) ran klp_chain_outer version 2, " \
           f"then klp_chain_inner version 3 ({states})"
    assert not re.search(_match(name), line)


def test_the_module_prints_what_these_lines_assume():
    """The record's wording, from the module's source: if it changes, these lines must."""
    source = (ROOT / "scenarios/modules/klp_chain.c").read_text()
    for piece in ['"its patch_state %d as the outer began, %d in "', '"the inner, both %s"',
                  '"in transition %d, %s"', '"a patching one"', '"an unpatching one"',
                  '"before any transition"']:
        assert piece in source, piece
