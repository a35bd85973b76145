"""An architecture's part of a session: its image, modules, guest programs and shadow
counter, made once, and its pool of guest slots (a booted guest each, with the counter
loaded in it)."""
from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Sequence

from . import (accel, applicability, arch as archmod, image as imagemod, klpbuild,
               phases, programs, runner, shadow)
from .errors import BuildError, HarnessError, ScenarioError
from .log import LOG
from .machine import Machine, MachineConfig
from .modules import ModuleCatalog
from .options import Options
from .scenario import taken_name_message

if TYPE_CHECKING:
    from .scenario import Scenario


@dataclass
class ArchState:
    profile: archmod.ArchProfile
    image: imagemod.Image
    catalog: ModuleCatalog
    programs: Dict[str, Path]       # static guest programs, copied to runner.WORKDIR at boot
    accel: str
    counter_module: Optional[Path]  # the shadow variable counter, if it builds for the image
    counter_unavailable: str        # why there is no counter module (when there is none)
    guests: Dict[int, "GuestSlot"] = field(default_factory=dict)   # the arch's pool, by slot
    boots: int = 0
    boot_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def make(cls, arch: str, options: Options) -> "ArchState":
        """Build (or find cached) what ``arch``'s guests need under ``options``."""
        profile = archmod.get(arch)
        image = imagemod.build(options.image, arch, options.mirror, options.kernel_tree,
                               options.build_dir, options.kernel_patches)
        with phases.phase(f"modules {arch}"):
            catalog = ModuleCatalog(image, options.module_dirs, options.ko_dirs)
            helpers = programs.guest_programs(image)
            try:
                counter_module, unavailable = shadow.build(image), ""
            except BuildError as e:   # a kernel the counter does not build for
                counter_module, unavailable = None, f"the shadow counter does not build: {e}"
        chosen, why = accel.choose(profile, image, options.accel)
        LOG.info(f"{arch}: {why}")
        return cls(profile, image, catalog, helpers, chosen, counter_module, unavailable)

    def catalog_with(self, livepatches: Dict[str, klpbuild.LivepatchSource]) -> ModuleCatalog:
        """``arch``'s modules and ``livepatches``, built from their patches by klp-build
        (cached): klpbuild.Unsupported if the image cannot, Refused if a patch is not
        made into a livepatch. A name the image's modules have is an error (naming the
        scenario file and line that declare the livepatch, when a scenario does)."""
        reason = klpbuild.unsupported(self.image)
        if reason:
            raise klpbuild.Unsupported(reason)
        taken = next((name for name in livepatches if name in self.catalog.names()), None)
        if taken:
            message = taken_name_message(taken, f"image {self.image.name} "
                                                f"({self.catalog.path(taken)})")
            if livepatches[taken].declared:
                raise ScenarioError(*livepatches[taken].declared, f"livepatches.{taken}",
                                    message)
            raise HarnessError(message)
        return self.catalog.with_modules({name: klpbuild.build(self.image, source)
                                        for name, source in livepatches.items()})

    def build_livepatches(self, scenarios: Sequence["Scenario"]) -> None:
        """Build the livepatches of those ``scenarios`` that run here (klp-build caches
        each, a refusal too: the scenario meets it when it runs)."""
        for sc in scenarios:
            if applicability.skip(sc, self.profile.name, self.image, self.catalog) is None:
                for name, source in sc.livepatches.items():
                    if name not in self.catalog.names():   # a clash: an error, later
                        try:
                            klpbuild.build(self.image, source)
                        except HarnessError:
                            pass

    def new_machine(self, machines: Path, options: Options) -> Machine:
        """A guest of this arch, not booted yet, in a dir of its own under ``machines``
        (its sockets and logs)."""
        self.boots += 1
        workdir = machines / f"{self.profile.name}-{self.boots}"
        shutil.rmtree(workdir, ignore_errors=True)
        config = MachineConfig(memory_mb=options.memory_mb, cpus=options.cpus,
                               accel=self.accel)
        return Machine(self.image, self.profile, workdir, config)

    def slot(self, n: int) -> "GuestSlot":
        return self.guests.setdefault(n, GuestSlot(counter_unavailable=self.counter_unavailable))

    @property
    def machine(self) -> Optional[Machine]:
        """The first guest (slot 0): the one of a session without a pool."""
        return self.slot(0).machine

    @property
    def counter(self) -> Optional[shadow.ShadowCounter]:
        return self.slot(0).counter

    @counter.setter
    def counter(self, counter: Optional[shadow.ShadowCounter]) -> None:
        self.slot(0).counter = counter   # a Python test that reinstalls it


@dataclass
class GuestSlot:
    """One guest of an arch's pool, and the shadow counter loaded in it."""
    machine: Optional[Machine] = None
    counter: Optional[shadow.ShadowCounter] = None
    counter_unavailable: str = ""

    def discard(self) -> None:
        """Stop the guest: the next test on this slot boots a fresh one."""
        if self.machine is not None:
            self.machine.shutdown()
            self.machine = None

    def start(self, machine: Machine, arch_state: "ArchState") -> None:
        """``machine`` just booted becomes this slot's guest: prepared for scenarios
        (runner.prepare, the programs) and with the shadow counter loaded, if it can be."""
        runner.prepare(machine.guest, arch_state.programs)
        self.counter, self.counter_unavailable = None, arch_state.counter_unavailable
        if arch_state.counter_module is not None:
            try:
                self.counter = shadow.ShadowCounter.install(machine.guest,
                                                            arch_state.counter_module)
            except shadow.CounterUnavailable as e:
                self.counter_unavailable = str(e)
                LOG.info(f"{arch_state.profile.name}: no shadow variable counts: {e}")
        self.machine = machine
