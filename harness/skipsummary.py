"""A run's skips counted by cause, with the command that would run them where another
image would: the lines under the summary's counts (report.summary) and the report's
section (report.py). "79 skipped" alone reads as 79 things missing; most are scenarios
for another image, or for a kernel feature an arch does not have.

Skips are grouped by their cause (skips.Skip.group, set where each skip was decided).
Those for kernel config symbols are grouped by the image recipe whose config fragments
set every missing symbol on the skip's arch (common fragments, the recipe's per-arch
ones, the arch's own: what a source-built image gets): its command names that image and
the skipped scenarios. Only what fragments set is seen: a symbol a kernel turns on by
default (KPROBES_ON_FTRACE) finds no recipe, and its skips get no command.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Optional, Sequence, Tuple

from . import arch as archmod, image as imagemod, kconfig
from .errors import HarnessError
from .paths import IMAGES_DIR, PROJECT, SCENARIOS
from .scenario import discover
from .outcome import Status
from .skips import Skip, unexplained

if TYPE_CHECKING:
    from .outcome import Outcome


@dataclass(frozen=True)
class Group:
    count: int
    label: str                     # the cause, and where it applies when not everywhere
    arches: Tuple[str, ...]        # the arches its skips were on, in the run's order
    command: Optional[str] = None  # what would run them: another image


def groups(outcomes: Sequence["Outcome"], scenarios: Path = SCENARIOS) -> List[Group]:
    """The skips among ``outcomes`` by cause, largest group first; their counts add up to
    the number of skips. Scenario paths in commands are those under ``scenarios``."""
    run_arches = tuple(dict.fromkeys(o.arch for o in outcomes))
    recipes = Recipes()
    members: Dict[Tuple[str, str], List[Tuple["Outcome", Skip]]] = {}
    for o in outcomes:
        if o.status != Status.SKIP:
            continue
        skip = o.skip or unexplained(o.message)
        recipe = recipes.setting(skip.config, o.arch, skip.image) if skip.config else None
        key = ("recipe", recipe) if recipe else ("cause", skip.group)
        members.setdefault(key, []).append((o, skip))
    found = [_group(kind, name, these, run_arches, scenarios)
             for (kind, name), these in members.items()]
    return sorted(found, key=lambda g: (-g.count, g.label))


def lines(found: Sequence[Group]) -> List[str]:
    """The summary's lines under "N skipped, by cause:", one per group."""
    width = len(str(max((g.count for g in found), default=0)))
    return [f"  {g.count:>{width}} {g.label}" + (f": {g.command}" if g.command else "")
            for g in found]


def _group(kind: str, name: str, these: List[Tuple["Outcome", Skip]],
           run_arches: Tuple[str, ...], scenarios: Path) -> Group:
    arches = tuple(a for a in run_arches if any(o.arch == a for o, _ in these))
    where = ", ".join(arches)
    if kind == "recipe":
        symbols = sorted({s for _, skip in these for s in skip.config})
        label = f"need the {name} image (kernel config {', '.join(symbols)})"
        if arches != run_arches:
            label += f"; on {where}"
        return Group(len(these), label, arches,
                     _command(name, arches, run_arches, [o.scenario for o, _ in these],
                              scenarios))
    if any(skip.config for _, skip in these):   # config symbols no recipe sets
        return Group(len(these), f"{name}, which no image recipe sets for {where}", arches)
    label = name if arches == run_arches else f"{name}; on {where}"
    return Group(len(these), label, arches)


def _command(recipe: str, arches: Tuple[str, ...], run_arches: Tuple[str, ...],
             ids: Sequence[str], scenarios: Path) -> Optional[str]:
    """./klp run on ``recipe`` of the scenarios ``ids`` (those with a file under
    ``scenarios``), on ``arches`` if the run had others; None if no file is known."""
    if not scenarios.is_dir():   # a summary says what it can, it does not fail a run
        return None
    files = sorted({scenarios / f"{i}.yaml" for i in ids} & set(discover([scenarios])))
    if not files:
        return None
    flags = "".join(f" --arch {a}" for a in arches) if arches != run_arches else ""
    paths = " ".join(_shown(p) for p in collapse(files, scenarios))
    return f"./klp run --image {recipe}{flags} {paths}"


def collapse(files: Sequence[Path], root: Path) -> List[Path]:
    """``files``, each given as the highest directory below ``root`` all of whose scenario
    files are among them (or as itself if there is none), in order, each once."""
    chosen = set(files)
    result: List[Path] = []
    for f in sorted(chosen):
        top, d = f, f.parent
        while d != root and d.is_relative_to(root) and set(discover([d])) <= chosen:
            top, d = d, d.parent
        if top not in result:
            result.append(top)
    return result


def _shown(path: Path) -> str:
    """A path as ./klp (at the top of the project) takes it."""
    return str(path.relative_to(PROJECT)) if path.is_relative_to(PROJECT) else str(path)


class Recipes:
    """The image recipes (images/*.yaml, or $KLP_HARNESS_IMAGES) and the config symbols
    their fragments set per arch, read once for a summary."""

    def __init__(self):
        self._recipes: Optional[List[imagemod.Recipe]] = None
        self._symbols: Dict[Tuple[str, str], FrozenSet[str]] = {}

    def recipes(self) -> List[imagemod.Recipe]:
        if self._recipes is None:
            self._recipes = []
            for path in sorted(IMAGES_DIR.glob("*.yaml")):
                try:
                    self._recipes.append(imagemod.Recipe.load(path))
                except HarnessError:   # a broken recipe is its own run's error, not ours
                    pass
        return self._recipes

    def setting(self, symbols: Sequence[str], arch: str, image: str) -> Optional[str]:
        """The name of a recipe (not ``image``'s) whose fragments set every one of
        ``symbols`` on ``arch``: one of ``image``'s kernel first (the same kernel with
        more config), then by name; None if none does."""
        mine = next((r.kernel for r in self.recipes() if r.name == image), None)
        candidates = [r for r in self.recipes() if r.name != image and arch in r.arches
                      and set(symbols) <= self.symbols(r, arch)]
        candidates.sort(key=lambda r: (_source(r.kernel) != _source(mine), r.name))
        return candidates[0].name if candidates else None

    def symbols(self, recipe: imagemod.Recipe, arch: str) -> FrozenSet[str]:
        key = (recipe.name, arch)
        if key not in self._symbols:
            self._symbols[key] = frozenset(set_by(fragments(recipe, arch)))
        return self._symbols[key]


def _source(kernel: Optional[dict]) -> Tuple:
    return (kernel or {}).get("package"), (kernel or {}).get("suite")


def fragments(recipe: imagemod.Recipe, arch: str) -> List[Path]:
    """The config fragments a source-built image of ``recipe`` gets on ``arch``; none for a
    distribution kernel."""
    if not recipe.builds_kernel:
        return []
    return imagemod.recipe_fragments(recipe, archmod.get(arch))


def set_by(paths: Sequence[Path]) -> List[str]:
    """The symbols the fragments set to y or m. Of a line's alternatives (A=y | B=y) each
    counts: the tree picks the one it defines, and that is the one a scenario names."""
    return [s.symbol for frag in paths for line in kconfig.read(frag) for s in line
            if s.text.split("=", 1)[1] in ("y", "m")]
