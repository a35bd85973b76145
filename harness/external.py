"""Livepatch modules built elsewhere: a directory of ``.ko`` files for an image's kernel
(a distribution's livepatches), each run through the generic scenario; and the same check
for each livepatch that scenarios build from source patches (klp-build).

The generic scenario (``scenarios/generic/livepatch-module.yaml``) is a normal scenario
whose module is its variable ``module`` (our sample livepatch as written); for each
livepatch module of the directory a scenario that ``extends`` it with that module's name
runs through the Runner like any other, with the checks the Runner makes of every scenario
(no kernel splat; leaks it can count). Those files are written under
``<artifacts>/scenarios/external/`` so their ids read ``external/<module>`` (and
``external/from-patches/<livepatch>``).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Sequence

from . import cache, modules
from .errors import HarnessError
from .klpbuild import LivepatchSource
from .paths import GENERIC
from .scenario import Scenario



def write_scenarios(ko_dirs: Sequence[Path], artifacts: Path) -> List[Path]:
    """One scenario file per livepatch module in ``ko_dirs``; their paths."""
    out = Path(artifacts) / "scenarios" / "external"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ko_dir in ko_dirs:
        kos = modules.ko_files(ko_dir)
        patches = [info for info in kos if info.livepatch]
        if not patches:
            raise HarnessError(f"--ko-dir {ko_dir}: none of its {len(kos)} .ko files is a "
                               "livepatch (modinfo shows no livepatch: Y)")
        for info in patches:
            path = out / f"{info.name}.yaml"
            check = f"the generic livepatch check of {info.path}"
            cache.write_whole(path, f"description: {json.dumps(check)}\n"   # xdist workers too
                                    f"extends: {json.dumps(str(GENERIC))}\n"
                                    f"vars: {{module: {json.dumps(info.name)}}}\n")
            paths.append(path)
    return paths


def write_livepatch_checks(scenarios: Sequence[Scenario], artifacts: Path) -> List[Path]:
    """One generic check per livepatch the ``scenarios`` build from patches (not those of
    negative controls, which are meant to be refused or wrong); their paths."""
    out = Path(artifacts) / "scenarios" / "external" / "from-patches"
    paths = []
    for name, source in _checked_livepatches(scenarios).items():
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.yaml"
        spec = {"patches": [str(Path(p).resolve()) for p in source.patches],
                "replace": source.replace}
        check = f"the generic livepatch check of {name}, built from patches by klp-build"
        cache.write_whole(path, f"description: {json.dumps(check)}\n"
                                f"extends: {json.dumps(str(GENERIC))}\n"
                                f"vars: {{module: {json.dumps(name)}}}\n"
                                f"livepatches: {{{json.dumps(name)}: {json.dumps(spec)}}}\n")
        paths.append(path)
    return paths


def livepatch_checks(scenarios: Sequence[Scenario], artifacts: Path) -> List[Scenario]:
    """The checks of write_livepatch_checks, loaded. Each one's livepatch keeps the
    declaration of the scenario it comes from: an error about the livepatch (its name
    taken by a module of the image) then names the file and line the user wrote, not the
    generated file or the generic scenario it extends."""
    wanted = _checked_livepatches(scenarios)
    checks = []
    for path in write_livepatch_checks(scenarios, artifacts):
        check = Scenario.load(path)
        check.livepatches = {name: dataclasses.replace(source, declared=wanted[name].declared)
                             for name, source in check.livepatches.items()}
        checks.append(check)
    return checks


def _checked_livepatches(scenarios: Sequence[Scenario]) -> Dict[str, LivepatchSource]:
    """The livepatches of the scenarios that are no negative controls, by name (the first
    scenario's); one name built from different patches is an error."""
    wanted: Dict[str, LivepatchSource] = {}
    for sc in scenarios:
        if sc.expect_failure is None:
            for name, source in sc.livepatches.items():
                if wanted.setdefault(name, source) != source:
                    raise HarnessError(f"livepatch {name} is built from other patches in "
                                       f"{sc.path} than in another scenario: give one another "
                                       "name")
    return wanted
