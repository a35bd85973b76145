"""Every subcommand of `klp-harness` (nested ones too: `images build`, `bench shadow`) has a
smoke test that runs it, registered in tests/integration/test_commands.py's SMOKE_TESTS:
a new subcommand without one fails here. (`bench shadow` could not run for months
because nothing ran it.)"""
import argparse
import ast
import importlib.util
from pathlib import Path
from typing import Dict, List

from harness import cli

PROJECT = Path(__file__).resolve().parents[2]


def smoke_tests() -> Dict[str, str]:
    path = PROJECT / "tests" / "integration" / "test_commands.py"
    spec = importlib.util.spec_from_file_location("klp_test_commands", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SMOKE_TESTS


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> List[str]:
    """The commands a user can type, as typed ("run", "images build"): the parsers that
    take no further subcommand."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += subcommands(sub, f"{prefix}{name} ") or [f"{prefix}{name}"]
    return found


def untested(parser: argparse.ArgumentParser, table: Dict[str, str]) -> List[str]:
    return [c for c in subcommands(parser) if c not in table]


def test_the_walk_finds_nested_subcommands():
    found = subcommands(cli.parser())
    assert {"setup", "run", "images build", "images figures", "livepatch build",
            "bench shadow", "bench klp-build"} <= set(found)
    assert "images" not in found and "bench" not in found   # groups, not commands
    assert len(found) == len(set(found))


def test_every_subcommand_has_a_smoke_test():
    assert untested(cli.parser(), smoke_tests()) == []


def test_a_subcommand_added_without_a_smoke_test_is_reported():
    """The negative control: a made-up subcommand, top-level and nested, in a parser of
    our own (cli.parser() makes a new one each call)."""
    parser = cli.parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    top.add_parser("frobnicate")
    bench = next(a for a in top.choices["bench"]._actions
                 if isinstance(a, argparse._SubParsersAction))
    bench.add_parser("frobnicate")
    assert sorted(untested(parser, smoke_tests())) == ["bench frobnicate", "frobnicate"]
    assert "frobnicate" not in subcommands(cli.parser())   # the copy only


def test_the_table_names_no_command_that_is_gone():
    assert sorted(set(smoke_tests()) - set(subcommands(cli.parser()))) == []


def test_each_registered_test_exists():
    """A renamed or removed smoke test leaves its command untested: each entry names a
    test function that its file defines."""
    missing = []
    for command, test in smoke_tests().items():
        path, _, name = test.partition("::")
        tree = ast.parse((PROJECT / path).read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(f"{command}: {test}")
    assert missing == []
