"""Livepatch modules built elsewhere: a directory of ``.ko`` files for an image's kernel
(a distribution's livepatches), each run through the generic scenario.

The generic scenario (``scenarios/generic/livepatch-module.yaml``) is a normal scenario
written for our sample livepatch; for each livepatch module of the directory a copy names
that module instead and runs through the Runner like any other scenario, with the checks the
Runner makes of every scenario (no kernel splat; leaks it can count). The copies are
written under ``<artifacts>/scenarios/external/`` so their ids read ``external/<module>``
and a failure points at a file that exists.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Sequence

from . import modules
from .errors import HarnessError
from .image import PROJECT

GENERIC = PROJECT / "scenarios" / "generic" / "livepatch-module.yaml"
SAMPLE = "klp_cmdline"      # the module the generic scenario is written for


def write_scenarios(ko_dirs: Sequence[Path], artifacts: Path) -> List[Path]:
    """One scenario file per livepatch module in ``ko_dirs``; their paths."""
    template = GENERIC.read_text()
    out = Path(artifacts) / "scenarios" / "external"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ko_dir in ko_dirs:
        if not Path(ko_dir).is_dir():
            raise HarnessError(f"--ko-dir {ko_dir}: no such directory")
        kos = sorted(Path(ko_dir).glob("*.ko"))
        if not kos:
            raise HarnessError(f"--ko-dir {ko_dir}: no .ko files there")
        patches = [info for info in map(modules.describe, kos) if info.livepatch]
        if not patches:
            raise HarnessError(f"--ko-dir {ko_dir}: none of its {len(kos)} .ko files is a "
                               "livepatch (modinfo shows no livepatch: Y)")
        for info in patches:
            path = out / f"{info.name}.yaml"
            tmp = path.with_name(f".{path.name}.{os.getpid()}")   # xdist workers write too
            tmp.write_text(re.sub(rf"\b{SAMPLE}\b", info.name, template))
            tmp.replace(path)
            paths.append(path)
    return paths
