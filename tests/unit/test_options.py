"""One table of options (harness/options.py) feeds the command line, the pytest plugin and
bisect-run: no other source declares them, and each front end has them."""
import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from harness import cli, options
from harness.options import Options

HARNESS = Path(options.__file__).parent


def test_no_other_module_declares_a_table_option():
    flags = {o.flag for o in options.ALL} | {o.pytest_flag for o in options.ALL if o.pytest_flag}
    for source in HARNESS.rglob("*.py"):
        if source.name == "options.py":
            continue
        text = source.read_text()
        declared = re.findall(r"(?:add_argument|addoption)\(\s*\"(--[a-z-]+)\"", text)
        assert not set(declared) & flags, (source, set(declared) & flags)


@pytest.mark.parametrize("command", [["run"], ["kselftest"], ["bench", "boot"],
                                     ["bench", "parity"], ["bisect-run"]])
def test_the_commands_take_the_table_options(command):
    sub = cli.parser()._subparsers._group_actions[0].choices[command[0]]
    if len(command) > 1:
        sub = sub._subparsers._group_actions[0].choices[command[1]]
    have = {s for a in sub._actions for s in a.option_strings}
    for opt in options.IMAGE + options.MACHINE:
        assert opt.flag in have, (command, opt.flag)


def test_session_options_come_from_the_values_by_dest():
    values = {"image": "linux-6.12", "mirror": "file:///srv/mirror", "accel": "tcg",
              "smp": 3, "memory": 1024, "kernel_tree": None, "artifacts": "out",
              "ko_dir": [Path("kos")], "arch": ["x86_64"]}
    got = options.session_options(values.__getitem__, worker="gw1")
    assert got == Options(image="linux-6.12", mirror="file:///srv/mirror",
                          accel="tcg", cpus=3, memory_mb=1024, artifacts=Path("out"),
                          ko_dirs=[Path("kos")], worker="gw1")


# A value for each table option, unlike its default: (argv value, the Options field's value).
# A new option without one here fails test_every_field_the_table_sets_reaches_options.
VALUES = {
    "arch": ("x86_64", None), "image": ("linux-6.12", "linux-6.12"),
    "mirror": ("file:///srv/mirror", "file:///srv/mirror"),
    "kernel_tree": ("/src/linux", Path("/src/linux")),
    "build_dir": ("/build/linux", Path("/build/linux")),
    "accel": ("tcg", "tcg"), "smp": ("3", 3), "memory": ("1024", 1024),
    "artifacts": ("out", Path("out")), "modules": ("mods", Path("mods").resolve()),
    "ko_dir": ("kos", Path("kos")), "pool": ("2", 2),
    "kernel_patch": (__file__, Path(__file__).resolve()),   # a file that exists
    "repeat": ("3", 3), "until_fail": (None, True),          # None: a flag without a value
    # The shard's: no Options field (the front end runs its part; shard.py).
    "shard": ("2/3", None), "shard_total": ("3", None), "shard_durations": ("d.json", None)}
SET_BY_THE_FRONT_END = {"worker", "run_id"}   # not user options: pytest-xdist, the Session


def _argv(dests):
    return [arg for d in dests for arg in (options.pick(d)[0].flag, VALUES[d][0])
            if arg is not None]


def _sub(*names):
    """A cli subcommand's parser: _sub("bench", "boot")."""
    p = cli.parser()
    for name in names:
        p = p._subparsers._group_actions[0].choices[name]
    return p


def _dests(p):
    return {a.dest for a in p._actions}


def test_every_field_the_table_sets_reaches_options():
    assert set(VALUES) == {o.dest for o in options.ALL}
    fields = {f.name for f in dataclasses.fields(Options)}
    assert {o.field for o in options.ALL if o.field} == fields - SET_BY_THE_FRONT_END
    p = argparse.ArgumentParser()
    options.add_to_parser(p, options.ALL)
    got = options.session_options(vars(p.parse_args(_argv(VALUES))).__getitem__)
    default = Options()
    for opt in options.ALL:
        if opt.field:
            assert getattr(got, opt.field) != getattr(default, opt.field), opt.dest
            expected = VALUES[opt.dest][1]
            assert getattr(got, opt.field) in (expected, [expected]), opt.dest


def test_the_cli_and_pytest_accept_every_table_option(pytestconfig):
    subcommands = [("run",), ("kselftest",), ("bisect-run",), ("bench", "parity")]
    have = set().union(*(_dests(_sub(*s)) for s in subcommands))
    assert {o.dest for o in options.ALL} <= have
    # run and pytest run the same scenarios: run has every option pytest has.
    assert {o.dest for o in options.ALL if o.pytest} <= _dests(_sub("run"))
    for opt in options.ALL:
        if opt.pytest:
            pytestconfig.getoption(f"klp_{opt.dest}")   # raises if the plugin lacks it
        else:   # the check above would notice an option missing: here is one
            with pytest.raises(ValueError):
                pytestconfig.getoption(f"klp_{opt.dest}")


def test_bisect_plans_options_come_from_the_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mods").mkdir()
    table = {o.dest for o in options.ALL} & _dests(_sub("bisect-run"))
    assert table == {"arch", "image", "mirror", "kernel_tree", "build_dir", "modules",
                     "accel", "smp", "memory", "repeat"}
    args = cli.parser().parse_args(["bisect-run", *_argv(sorted(table)), "s.yaml"])
    plan = cli.bisect_plan(args)
    assert plan.options == Options(
        image="linux-6.12", mirror="file:///srv/mirror", kernel_tree=Path("/src/linux"),
        build_dir=Path("/build/linux"), module_dirs=[tmp_path / "mods"], accel="tcg",
        cpus=3, memory_mb=1024, repeat=3)
    assert (plan.arch, plan.repeat, plan.scenarios) == ("x86_64", 3, [Path("s.yaml")])


@pytest.mark.parametrize("argv, tree", [([], "cwd"), (["--modules", "mods"], None),
                                        (["--image-kernel"], None)])
def test_bisect_builds_the_current_directory_unless_told_otherwise(tmp_path, monkeypatch,
                                                                    argv, tree):
    monkeypatch.chdir(tmp_path)
    args = cli.parser().parse_args(["bisect-run", "--arch", "x86_64", *argv, "s.yaml"])
    assert cli.bisect_plan(args).options.kernel_tree == (tmp_path if tree else None)


def test_options_are_picked_by_name_and_a_misspelt_one_is_an_error():
    assert [o.flag for o in options.pick("mirror", "image")] == ["--mirror", "--image"]
    with pytest.raises(ValueError, match="no option 'imgae' in the table"):
        options.pick("image", "imgae")
    with pytest.raises(ValueError, match="overrides for options not added: arch"):
        options.add_to_parser(argparse.ArgumentParser(), options.pick("image"),
                              arch={"action": "store"})


def test_the_cli_picks_its_options_when_its_parser_is_made(monkeypatch):
    cli.parser()   # every name it picks is in the table
    monkeypatch.delitem(options._BY_DEST, "pool")
    with pytest.raises(ValueError, match="no option 'pool'"):
        cli.parser()


@pytest.mark.parametrize("convert, good, bad, complaint", [
    (options.cpu_count, ("1", 1), ("0", "-1", "two"), "whole number of 1 or more"),
    (options.memory_size, ("128", 128), ("127", "0", "1G"), "at least 128"),
    (options.guests_arg, ("3", 3), ("0", "-1", "two"), "whole number of 1 or more"),
    (options.repeat_count, ("20", 20), ("0", "-1", "2.5"), "whole number of runs of 1 or more")])
def test_the_converters_refuse_what_no_guest_can_have(convert, good, bad, complaint):
    assert convert(good[0]) == good[1]
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=complaint):
            convert(text)
