"""Livepatch modules built elsewhere: a directory of ``.ko`` files for an image's kernel
(a distribution's livepatches), each run through the generic scenario.

The generic scenario (``scenarios/generic/livepatch-module.yaml``) is a normal scenario
whose module is its variable ``module`` (our sample livepatch as written); for each
livepatch module of the directory a scenario that ``extends`` it with that module's name
runs through the Runner like any other, with the checks the Runner makes of every scenario
(no kernel splat; leaks it can count). Those files are written under
``<artifacts>/scenarios/external/`` so their ids read ``external/<module>``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence

from . import cache, modules
from .errors import HarnessError
from .image import PROJECT

GENERIC = PROJECT / "scenarios" / "generic" / "livepatch-module.yaml"


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
