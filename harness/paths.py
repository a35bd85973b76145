"""Where things are: the project's directories on the host, and the harness's in the guest.

Every module takes them from here, so that a directory moves in one edit. The harness runs
from its checkout (an editable install): recipes, scenarios and our modules are files of
the project, not package data.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Set, Union

PROJECT = Path(__file__).resolve().parent.parent   # the checkout: harness/, images/, ...

# Image recipes and what they are made of; $KLP_HARNESS_IMAGES names another recipe dir.
IMAGES_DIR = Path(os.environ.get("KLP_HARNESS_IMAGES", PROJECT / "images"))
KCONFIG_DIR = IMAGES_DIR / "kconfig"
BUILD_FIGURES = IMAGES_DIR / "build-figures.json"   # see buildfigures
GUEST_FILES = PROJECT / "images" / "guest"          # the guest's init, sshd config, rc.sh

# Scenarios by topic, and the sources they use.
SCENARIOS = PROJECT / "scenarios"
PARITY_SCENARIOS = SCENARIOS / "parity"             # our scenarios of upstream's cases
GENERIC = SCENARIOS / "generic" / "livepatch-module.yaml"   # the check of any livepatch
KLP_BUILD_PATCHES = SCENARIOS / "klp-build" / "patches"
OUR_MODULES = Path(os.environ.get("KLP_HARNESS_MODULES", SCENARIOS / "modules"))
OUR_PROGRAMS = SCENARIOS / "programs"
GUEST_MODULES = PROJECT / "harness" / "guest_modules"   # the harness's own (the shadow counter)
# What each scenario x arch took in a real run: how shards split a run (see shard.py).
SHARD_DURATIONS = SCENARIOS / "shard-durations.json"

# In the guest: where modules and programs are pushed, and where `run` steps start.
WORKDIR = "/root"

# A directory of this name among the scenarios holds module sources, not scenarios.
MODULE_SOURCES = "modules"


def in_module_sources(path: Union[str, Path]) -> bool:
    """``path`` is in a modules/ directory (scenarios/modules/, or a topic's own): its
    YAML files are not scenarios."""
    return MODULE_SOURCES in Path(path).parts


def topics(scenarios: Path = SCENARIOS) -> Set[str]:
    """The names of the directories of scenarios (a topic each: parity, smoke, ...)."""
    return {d.name for d in scenarios.rglob("*") if d.is_dir() and not in_module_sources(d)}
