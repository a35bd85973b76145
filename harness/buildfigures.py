"""Figures of kernel builds shipped with the recipes, so a first build has a total and an ETA.

A build's progress counts Kbuild's step lines; the total is known locally only after one
build of that config on the machine, so the one build a newcomer waits for had none.
``images/build-figures.json`` holds, per recipe and arch, the steps and CPU seconds of a
build measured here, with a hash of what decides them (the kernel source the recipe names
and its config fragments): a fragment changed without the figures refreshed fails
``tests/unit/test_build_figures.py``, which names the command that refreshes them
(``klp-harness images figures``: it builds, or finds built, each recipe's kernels and
writes what their builds measured).

A recipe x arch without figures of its own borrows the figure of another recipe for the
same arch and config variant ("~N steps, from linux-7.3's"): allnoconfig plus the same
fragments builds about as many objects on neighbouring kernel versions.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from . import cache

REFRESH = "./klp images figures"
MEASURED = "klp-harness-build-figures.json"   # in a build dir: its last full build's


@dataclass(frozen=True)
class Figures:
    steps: int          # Kbuild's step lines (CC, LD, AR, ...) of a full build
    cpu_seconds: float  # make's CPU time, its children's included
    inputs: str = ""    # inputs() of what was measured
    variant: str = ""   # the recipe's config variant ("", "debug")
    borrowed: str = ""  # set when the figure is another recipe's: that recipe's name

    def eta(self, running: int, cores: int) -> float:
        """Seconds a build of these figures takes with ``running`` builds sharing ``cores``:
        make -jN keeps a build's share of the cores busy, and builds share them evenly."""
        return self.cpu_seconds * max(running, 1) / max(cores, 1)

    def describe(self) -> str:
        return f"~{self.steps} steps" + (f", from {self.borrowed}'s" if self.borrowed else "")


def inputs(kernel: Dict[str, object], fragments: Sequence[Path]) -> str:
    """A hash of what decides a recipe's build figures: the kernel source it names and the
    text of its config fragments, in order (not the compiler or the source's upload: those
    change a build's length little, and the shipped figures are estimates)."""
    h = cache.InputHash("build-figures")
    for key in ("from", "package", "suite"):
        h.text(key, str(kernel.get(key, "")))
    for i, frag in enumerate(fragments):
        h.text(f"fragment{i}", Path(frag).name).file(f"text{i}", frag)
    return h.hexdigest()


def load(path: Path) -> Dict[str, Dict[str, Figures]]:
    """recipe -> arch -> Figures, as shipped; empty if the file is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return {recipe: {arch: Figures(**f) for arch, f in arches.items()}
            for recipe, arches in data.items()}


def lookup(path: Path, recipe: str, arch: str, wanted: str,
           variant: str = "") -> Optional[Figures]:
    """The shipped figures of ``recipe`` on ``arch`` if they were measured on these inputs;
    else another recipe's of the same arch and variant (borrowed); else None."""
    shipped = load(path)
    own = shipped.get(recipe, {}).get(arch)
    if own and own.inputs == wanted:
        return own
    for name in sorted(shipped):
        other = shipped[name].get(arch)
        if other and other.variant == variant and name != recipe:
            return Figures(other.steps, other.cpu_seconds, other.inputs, variant, name)
    return None


def store(path: Path, recipe: str, arch: str, figures: Figures) -> None:
    def entry(f: Figures) -> dict:   # what was measured, never a borrowing
        return {k: v for k, v in asdict(f).items() if k != "borrowed"}
    data = {name: {a: entry(f) for a, f in arches.items()}
            for name, arches in load(path).items()}
    data.setdefault(recipe, {})[arch] = entry(figures)
    text = json.dumps({r: dict(sorted(a.items())) for r, a in sorted(data.items())},
                      indent=1) + "\n"
    cache.write_whole(Path(path), text)


def measured(build_dir: Path) -> Optional[dict]:
    """What the last full build in ``build_dir`` measured (steps, cpu_seconds, identity)."""
    try:
        return json.loads((build_dir / MEASURED).read_text())
    except (OSError, ValueError):
        return None


def cores() -> int:
    return os.cpu_count() or 1
