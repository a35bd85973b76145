"""One table of options (harness/options.py) feeds the command line, the pytest plugin and
bisect-run: no other source declares them, and each front end has them."""
import argparse
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


def test_pytest_has_every_option_of_the_table(pytestconfig):
    for opt in options.ALL:
        pytestconfig.getoption(f"klp_{opt.dest}")   # raises if the plugin lacks it


def test_session_options_come_from_the_values_by_dest():
    values = {"image": "linux-6.12", "mirror": "file:///srv/mirror", "accel": "tcg",
              "smp": 3, "memory": 1024, "kernel_tree": None, "artifacts": "out",
              "ko_dir": [Path("kos")], "arch": ["x86_64"]}
    got = options.session_options(values.__getitem__, worker="gw1")
    assert got == Options(image="linux-6.12", mirror="file:///srv/mirror",
                          accel="tcg", cpus=3, memory_mb=1024, artifacts=Path("out"),
                          ko_dirs=[Path("kos")], worker="gw1")


@pytest.mark.parametrize("convert, good, bad, complaint", [
    (options.cpu_count, ("1", 1), ("0", "-1", "two"), "whole number of 1 or more"),
    (options.memory_size, ("128", 128), ("127", "0", "1G"), "at least 128"),
    (options.guests_arg, ("3", 3), ("0", "-1", "two"), "whole number of 1 or more")])
def test_the_converters_refuse_what_no_guest_can_have(convert, good, bad, complaint):
    assert convert(good[0]) == good[1]
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=complaint):
            convert(text)
