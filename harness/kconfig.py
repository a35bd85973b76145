"""Config fragments (images/kconfig/*.config) and what a kernel tree makes of them.

A fragment is a Kconfig fragment (``CONFIG_X=y`` lines and comments) with one addition for
symbols that kernels spell differently across versions: a line may list alternatives
separated by ``|``, and the first one whose symbol the tree's Kconfig defines is the one
set::

    CONFIG_PROC_SYSCTL=y | CONFIG_SYSCTL=y     # PROC_SYSCTL up to 7.x, then SYSCTL

Alternatives are judged by the tree, not by a version number, so a tree between two
releases (a bisection step, a -rc) gets what its own Kconfig offers. Every setting chosen
must then be in the final ``.config``: one that a missing dependency dropped is an error
naming the fragment line and the kernel version that was judged.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Sequence, Set

SETTING = re.compile(r"^(CONFIG_\w+)=(\S+)$")
DEFINITION = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*$", re.M)


@dataclass(frozen=True)
class Setting:
    fragment: Path
    line: int
    text: str                   # "CONFIG_X=y", as it goes into the merged fragment
    alternatives: tuple = ()    # every alternative the line offered, when it had several

    @property
    def symbol(self) -> str:
        return self.text.split("=", 1)[0]

    @property
    def where(self) -> str:
        return f"{self.fragment}:{self.line}"


class FragmentError(ValueError):
    """A fragment line that is neither a comment, a setting nor alternatives of settings."""


def read(fragment: Path) -> List[List[Setting]]:
    """Each setting line of ``fragment`` as its alternatives (one for a plain line)."""
    lines = []
    for n, raw in enumerate(fragment.read_text().splitlines(), 1):
        # Comments, "# CONFIG_X is not set" included: allnoconfig leaves all unset anyway.
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        options = [o.strip() for o in text.split("|")]
        for o in options:
            if not SETTING.match(o):
                raise FragmentError(
                    f"{fragment}:{n}: '{o}' is not a CONFIG_NAME=value setting (a line holds "
                    "one setting, or alternatives separated by '|')")
        names = tuple(options) if len(options) > 1 else ()
        lines.append([Setting(fragment, n, o, names) for o in options])
    return lines


def defined_symbols(tree: Path) -> Set[str]:
    """Every symbol that a Kconfig file of ``tree`` defines (without CONFIG_)."""
    found: Set[str] = set()
    for top, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("Kconfig"):
                with open(os.path.join(top, name), errors="replace") as f:
                    found.update(DEFINITION.findall(f.read()))
    return found


def resolve(fragments: Sequence[Path], tree: Path) -> List[Setting]:
    """The settings the fragments make in ``tree``: for a line with alternatives, the first
    one the tree defines (or the first of all when none is: the check then says so)."""
    lines = [line for frag in fragments for line in read(frag)]
    if not any(len(line) > 1 for line in lines):
        return [line[0] for line in lines]
    defined = defined_symbols(tree)
    chosen = []
    for line in lines:
        chosen.append(next((s for s in line if s.symbol[len("CONFIG_"):] in defined), line[0]))
    return chosen


def merged_text(fragments: Sequence[Path], settings: Iterable[Setting]) -> str:
    """The fragment handed to Kconfig (KCONFIG_ALLCONFIG): the chosen settings, by file."""
    by_file = {}
    for s in settings:
        by_file.setdefault(s.fragment, []).append(s.text)
    return "".join(f"# --- {f}\n" + "".join(t + "\n" for t in by_file.get(f, [])) + "\n"
                   for f in fragments)


def unmet(settings: Iterable[Setting], config: str, tree: Path, version: str) -> List[str]:
    """Settings the final ``config`` does not have, each with why, for Linux ``version``."""
    have = set(config.splitlines())
    problems = []
    defined = None
    for s in settings:
        if s.text in have:
            continue
        got = re.search(rf"^{s.symbol}=.*$|^# {s.symbol} is not set$", config, re.M)
        if got:
            why = f"the config has: {got.group(0)}"
        else:
            defined = defined if defined is not None else defined_symbols(tree)
            if s.symbol[len("CONFIG_"):] in defined:
                why = "not in the config: its dependencies are not met"
            elif s.alternatives:
                why = f"none of {', '.join(s.alternatives)} is a symbol of Linux {version}"
            else:
                why = f"no such symbol in Linux {version}"
        problems.append(f"{s.where}: {s.text} ({why})")
    return problems
