"""Outcome as data: statuses that keep their string values, and one serialisation to pytest's
report properties that carries every field (a field added later too) across xdist."""
import dataclasses
import json
import typing

import pytest

from harness.outcome import Cause, Expected, Outcome, Status
from harness.skips import Skip


def test_statuses_keep_their_string_values_in_json_and_comparisons():
    assert [str(s) for s in Status] == ["pass", "fail", "skip", "xfail"]
    assert Status.FAIL == "fail" and f"{Status.XFAIL:<5}|" == "xfail|"
    assert json.dumps({"status": Status.SKIP}) == '{"status": "skip"}'
    assert Outcome("a", "x86_64", "fail").status is Status.FAIL   # made from a string too
    assert Status.XFAIL.failed and Status.FAIL.failed and not Status.SKIP.failed


def test_an_unknown_status_or_cause_is_an_error_not_a_silent_string():
    with pytest.raises(ValueError):
        Outcome("a", "x86_64", "passed")
    with pytest.raises(ValueError):
        Outcome("a", "x86_64", Status.FAIL, cause="livepatch-build")


def _every_field_set() -> Outcome:
    """An outcome whose every field differs from its default, whatever fields it has."""
    values = {}
    hints = typing.get_type_hints(Outcome)
    for f in dataclasses.fields(Outcome):
        kind = typing.get_origin(hints[f.name]) or hints[f.name]
        values[f.name] = {str: f"the {f.name}", float: 12.5, bool: True, int: 7,
                          list: [f"one {f.name}", "two"]}.get(kind)
    values.update(status=Status.XFAIL, cause=Cause.LIVEPATCH_BUILD, expected=Expected.KNOWN,
                  skip=Skip("the reason", "a group", ("CONFIG_A",), "linux-7.3"))
    unset = [name for name, value in values.items() if value is None]
    assert not unset, f"add a value of this field's type here: {unset}"
    return Outcome(**values)


def test_every_field_but_the_artifact_sized_ones_survives_the_trip_through_xdist():
    outcome = _every_field_set()
    props = outcome.to_properties("linux-7.3")
    sent = json.loads(json.dumps(props))   # as xdist carries them
    back = Outcome.from_properties(dict(sent))
    local = {f.name for f in dataclasses.fields(Outcome) if f.metadata.get("local")}
    assert local == {"kmsg", "sysfs", "steps"}   # kept in the artifacts, not in JUnit
    for f in dataclasses.fields(Outcome):
        if f.name in local:
            assert getattr(back, f.name) == getattr(Outcome("a", "b", Status.PASS), f.name)
        elif f.name == "skip":   # its reason travels as the message
            assert back.skip == Skip(outcome.message, "a group", ("CONFIG_A",), "linux-7.3")
        else:
            assert getattr(back, f.name) == getattr(outcome, f.name), f.name
    assert ("klp_image", "linux-7.3") in props and ("klp_status", "xfail") in props


def test_the_check_above_fails_for_a_field_the_trip_loses(monkeypatch):
    """Negative control: a from_properties that drops a field is caught by the check."""
    real = Outcome.from_properties.__func__

    def lossy(cls, props):
        return real(cls, {k: v for k, v in props.items() if k != "klp_unclean"})
    monkeypatch.setattr(Outcome, "from_properties", classmethod(lossy))
    with pytest.raises(AssertionError, match="unclean"):
        test_every_field_but_the_artifact_sized_ones_survives_the_trip_through_xdist()
