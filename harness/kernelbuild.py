"""Building a kernel from source: a config made of fragments, make in a kept build dir.

The config is ``allnoconfig`` plus the fragments (``KCONFIG_ALLCONFIG``), and every symbol a
fragment sets is checked in the result: a symbol that a missing dependency silently dropped
is an error, not a kernel that lacks livepatch. The build dir (``O=``) is kept in the cache
and reused: out-of-tree modules build against it, and a rebuild after a small source change
only recompiles what changed. A stamp records the inputs of the last good build, so an
unchanged kernel is not even handed to make.

tuxmake was considered and not taken: its strength is containerised toolchains (no Docker
engine here; Debian's cross compilers are used directly), it does not check that requested
config symbols survive, and the part it would do for us is the two make calls below.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import arch as archmod
from . import buildfigures, cache, hosttools, kconfig, klporig, phases
from . import progress as ticker
from .errors import KernelBuildError
from . import kernelsource
from .kernelsource import KernelSource
from .log import progress

STAMP = "klp-harness-stamp"


@dataclass(frozen=True)
class KernelBuild:
    build_dir: Path
    release: str        # `uname -r` of the built kernel
    image: Path         # the file QEMU boots
    seconds: float      # time spent in make by this call (0 when the stamp matched)
    cpu_seconds: float = 0.0   # make's CPU time, its children's included


@functools.lru_cache(maxsize=None)   # asked for by every cache key; the answer is fixed
def compiler_version(profile: archmod.ArchProfile) -> str:
    gcc = hosttools.require(*hosttools.compiler_for(profile), f"to build {profile.name} kernels")
    return subprocess.run([gcc, "--version"], capture_output=True, text=True,
                          check=True).stdout.splitlines()[0]


def identity(source: KernelSource, profile: archmod.ArchProfile,
             fragments: Sequence[Path], klp_vars: Optional[Dict[str, str]] = None) -> str:
    """Everything that decides the built kernel, as one hash."""
    h = cache.InputHash("kernel").text("source", source.identity).text("arch", profile.name)
    h.text("compiler", compiler_version(profile)).text("target", profile.kernel_target)
    for i, frag in enumerate(fragments):
        h.file(f"fragment{i}", frag)
    if klp_vars is not None:
        h.text("klp-build", json.dumps(klp_vars, sort_keys=True))
    return h.hexdigest()


def default_build_dir(source: KernelSource, profile: archmod.ArchProfile,
                      variant: str = "", in_tree: bool = False) -> Path:
    """One kept build dir per source location, arch, compiler and config variant ("" or
    "debug"). A config change builds in the same dir: Kbuild recompiles only what the
    changed symbols touch. ``in_tree``: a copy of the source built in place (klporig)."""
    h = cache.InputHash("kbuild").text("compiler", compiler_version(profile))
    slot = (f"{source.build_slot}-{profile.name}" + (f"-{variant}" if variant else "")
            + ("-klp-build" if in_tree else ""))
    return cache.root() / "kbuild" / f"{slot}-{h.hexdigest(10)}"


def build(source: KernelSource, profile: archmod.ArchProfile, fragments: Sequence[Path],
          build_dir: Optional[Path] = None, force: bool = False,
          klp_vars: Optional[Dict[str, str]] = None,
          figures: Optional[buildfigures.Figures] = None,
          seed: Optional[Path] = None) -> KernelBuild:
    """Build (or find already built) the kernel of ``source`` for ``profile``; ``force``
    hands it to make even when the stamp says nothing changed (make still decides).
    ``klp_vars`` (klporig.make_vars): built in-tree, in a copy of the source, as
    klp-build's original build, so that klp-build need not compile it again. ``figures``:
    the recipe's shipped figures, for the progress of a first build here. ``seed``: the
    build dir of ``source.base`` (the tree before its patches), copied into a first build
    of a patched tree so that make compiles only what the patches touch."""
    for program, package in hosttools.KERNEL_BUILD.items():
        hosttools.require(program, package, "to build kernels")
    in_tree = klp_vars is not None
    build_dir = build_dir or default_build_dir(source, profile, in_tree=in_tree)
    wanted = identity(source, profile, fragments, klp_vars)
    build_dir.mkdir(parents=True, exist_ok=True)
    with cache.locked(build_dir.with_name(build_dir.name + ".lock")):
        stamp = build_dir / STAMP
        image = build_dir / profile.kernel_image
        if not force and stamp.exists() and stamp.read_text() == wanted and image.exists():
            return KernelBuild(build_dir, _release(build_dir), image, 0.0)
        stamp.unlink(missing_ok=True)
        with phases.phase(f"kernel {profile.name}"), _running:
            if seed is not None and not (build_dir / "Makefile").exists() \
                    and (seed / STAMP).exists():
                _seed(seed, build_dir, source, profile, in_tree)
            if in_tree:
                _copy_source(source, build_dir)
            make = _Make(source, profile, build_dir, klp_vars, figures)
            started = time.monotonic()
            make.configure(fragments)
            targets = [profile.kernel_target, "modules"]
            if in_tree:   # klp-build's own targets too, so its patched build finds them made
                targets = list(dict.fromkeys(targets + list(klporig.TARGETS)))
            full = not (build_dir / "vmlinux").exists()
            steps = make.run(targets, f"kernel {source.label} for {profile.name}"
                             + (" (in-tree, as klp-build's original build)" if in_tree else ""))
        if in_tree:
            (build_dir / klporig.MARKER).write_text(
                "".join(f"{k}={v}\n" for k, v in sorted(klp_vars.items())))
        if full:   # what `klp-harness images figures` ships for the next newcomer
            cache.write_whole(build_dir / buildfigures.MEASURED, json.dumps(
                {"steps": steps, "cpu_seconds": round(make.cpu, 1), "identity": wanted}) + "\n")
        stamp.write_text(wanted)
        return KernelBuild(build_dir, _release(build_dir), image, time.monotonic() - started,
                           make.cpu)


def _copy_source(source: KernelSource, build_dir: Path) -> None:
    """The source tree copied into ``build_dir`` for an in-tree build, once: a later
    build of another config there is incremental, like an O= dir's."""
    if (build_dir / "Makefile").exists():
        return
    progress(f"copying the kernel source {source.tree} to {build_dir} (in-tree build)")
    if not kernelsource.copy_tree(source.tree, build_dir):
        raise KernelBuildError(f"copying the kernel source {source.tree} to {build_dir}")


def _seed(seed: Path, build_dir: Path, source: KernelSource, profile: archmod.ArchProfile,
          in_tree: bool) -> None:
    """A first build of a patched tree starts as a copy of its base's build (times kept):
    in-tree, the copy is a source tree too, so the patched files are copied in (newer than
    every object); out of tree, the copy's records name the base tree and the seed, so
    they are made to name the patched tree and this dir. Either way make then compiles
    what the patches touch, and links (about 30 steps for one file of kernel/)."""
    progress(f"seeding {build_dir.name} from the build of the unpatched tree ({seed.name})")
    with cache.locked(seed.with_name(seed.name + ".lock")):
        if not kernelsource.copy_tree(seed, build_dir):
            raise KernelBuildError(f"copying the build {seed} to {build_dir}")
    for name in (STAMP, buildfigures.MEASURED):
        (build_dir / name).unlink(missing_ok=True)
    if in_tree:
        if klporig.is_shared(seed):   # objtool's records name the seed (klporig)
            klporig.settle_copy(seed, build_dir, profile)
        for rel in source.changed:
            shutil.copy(source.tree / rel, build_dir / rel)   # its time: now
        return
    # Kbuild's records (.cmd) and dependency files (.d, objtool's too) name the source tree
    # and the build dir absolutely. Generated files are left as they are: some embed the
    # path that made them (s390's facility-defs.h), and made anew they would differ, and
    # every object that includes them would be compiled again.
    renames = [(str(source.base.tree), str(source.tree)), (str(seed), str(build_dir))]
    for old, new in renames:
        listed = subprocess.run(["grep", "-rlIZ", "--fixed-strings", "--include=*.cmd",
                                 "--include=*.d", old, str(build_dir)], capture_output=True)
        for path in filter(None, listed.stdout.decode().split("\0")):
            target = Path(path)
            times = target.stat()
            target.write_text(target.read_text(errors="surrogateescape").replace(old, new),
                              errors="surrogateescape")
            os.utime(target, ns=(times.st_atime_ns, times.st_mtime_ns))
    link = build_dir / "source"
    if link.is_symlink():
        link.unlink()
        link.symlink_to(source.tree)


def _release(build_dir: Path) -> str:
    return (build_dir / "include/config/kernel.release").read_text().strip()


class _Make:
    def __init__(self, source: KernelSource, profile: archmod.ArchProfile, build_dir: Path,
                 klp_vars: Optional[Dict[str, str]] = None,
                 figures: Optional[buildfigures.Figures] = None):
        self.source, self.profile, self.build_dir = source, profile, build_dir
        self.figures, self.cpu = figures, 0.0
        self.log = build_dir / "klp-harness-build.log"
        if klp_vars is None:
            self.base = ["make", "-C", str(source.tree), f"O={build_dir}"]
        else:   # klp-build builds in-tree only
            self.base = ["make", "-C", str(build_dir)]
            self.base += [f"{k}={v}" for k, v in klp_vars.items()]
        self.base.append(f"ARCH={profile.kernel_arch}")
        if profile.cross_compile():
            self.base.append(f"CROSS_COMPILE={profile.cross_compile()}")

    def configure(self, fragments: Sequence[Path]) -> None:
        version = self.source.version
        try:
            settings = kconfig.resolve(fragments, self.source.tree)
        except kconfig.FragmentError as e:
            raise KernelBuildError(f"config fragment: {e}")
        merged = self.build_dir / "klp-harness.config"
        merged.write_text(kconfig.merged_text(fragments, settings))
        self.log.write_text("")
        self._call([jobs(), f"KCONFIG_ALLCONFIG={merged}", "allnoconfig"],
                   "configuring the kernel")
        config = (self.build_dir / ".config").read_text()
        unmet = kconfig.unmet(settings, config, self.source.tree, version)
        if unmet:
            raise KernelBuildError(
                f"config fragments for {self.profile.name} not met by Linux {version}; a "
                "dependency of these symbols is missing or the symbol does not exist in this "
                "tree: add the dependency to the fragment, or the symbol's other name as an "
                "alternative ('CONFIG_OLD=y | CONFIG_NEW=y')",
                self.build_dir / ".config", "\n".join(unmet))

    def run(self, targets: List[str], what: str) -> int:
        """make ``targets``; returns the steps Kbuild printed."""
        return self._call([jobs(), *targets], f"building {what}", show_progress=True)

    def _call(self, args: List[str], what: str, show_progress: bool = False) -> int:
        cmd = self.base + args
        counter = _Progress(what, self.build_dir, self.figures) if show_progress else None
        with open(self.log, "a") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            env = c_locale_env()
            proc = phases.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", env=env)
            if counter:
                counter.start()
            for line in proc.stdout:
                log.write(line)
                if counter:
                    counter.line(line)
            rc = proc.wait()
            self.cpu += proc.cpu
        if counter:
            counter.stop(rc == 0)
        if rc != 0:
            raise KernelBuildError(f"{what} ({' '.join(cmd)})", self.log, _errors(self.log))
        return counter.count if counter else 0


def c_locale_env() -> dict:
    """The environment for make: the C locale, so compiler messages have plain ASCII quotes
    whatever the host's locale (Kbuild unexports LC_ALL, so set the categories themselves)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env.update(LANG="C", LC_CTYPE="C", LC_MESSAGES="C")
    return env


def jobs() -> str:
    """As many jobs as CPUs. One more was tried on this 2-CPU machine kind and showed no
    gain that stood out from the host's own swings (the same -j2 build took 268 s at one
    hour and 385 s at another)."""
    return f"-j{os.cpu_count() or 1}"


def _errors(log: Path, limit: int = 40) -> str:
    """The compiler's and make's error lines, with the line before each for context."""
    lines = log.read_text(errors="replace").splitlines()
    picked: List[str] = []
    for i, line in enumerate(lines):
        if re.search(r"\berror\b|Error \d+|\*\*\*", line):
            if i and lines[i - 1] not in picked and not re.search(r"Error \d+", line):
                picked.append(lines[i - 1])
            picked.append(line)
    return "\n".join((picked or lines[-25:])[:limit])


class _Running:
    """Kernel builds under way on this host (from the source's copy to make's end): they
    share the cores, which a first build's ETA must know from its start, when the others
    are still configuring, and also those of other processes (pytest-xdist's workers).
    Each build holds a lock on a file of its own in the cache's ``building/``; a file no
    one holds is left from a build that died."""

    def __init__(self):
        self._mine = threading.local()

    def _dir(self) -> Path:
        return cache.root() / "building"

    def __enter__(self):
        self._dir().mkdir(parents=True, exist_ok=True)
        path = self._dir() / f"{os.getpid()}-{threading.get_ident()}"
        f = open(path, "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        self._mine.file = (path, f)

    def __exit__(self, *exc):
        path, f = self._mine.file
        path.unlink(missing_ok=True)
        f.close()

    @property
    def count(self) -> int:
        held = 0
        for path in self._dir().glob("*") if self._dir().is_dir() else []:
            try:
                with open(path) as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)   # no one holds it
            except BlockingIOError:
                held += 1
            except OSError:
                pass
        return held


_running = _Running()


class _Progress(ticker.Ticker):
    """Counts Kbuild's ' CC  file' lines; says one line every ticker.EVERY seconds: the
    fraction done and an estimate of the time left. The total is what an earlier build of
    the same configuration here counted (the same kernel, arch and .config, in any build
    dir), else the recipe's shipped figures (buildfigures), else unknown. Early on, the
    time left comes from the figures' CPU seconds and how many builds share the cores; from
    a tenth of the steps on, from the pace so far."""

    def __init__(self, what: str, build_dir: Path,
                 figures: Optional[buildfigures.Figures] = None):
        super().__init__(what)
        self.count, self.last, self.figures = 0, "", figures
        config = build_dir / ".config"
        self.key = (cache.InputHash("steps").text("what", what)
                    .file("config", config).hexdigest() if config.exists() else "")
        self.totals = cache.root() / "kernel-build-steps.json"
        self.total = self._known().get(self.key, 0)
        self.origin = "counted by an earlier build here"
        if not self.total and figures:
            self.total, self.origin = figures.steps, "the recipe's shipped figures" + (
                f" (borrowed from {figures.borrowed})" if figures.borrowed else "")
        self.full = not (build_dir / "vmlinux").exists()   # a rebuild counts only its few

    def _known(self) -> Dict[str, int]:
        try:
            return json.loads(self.totals.read_text())
        except (OSError, ValueError):
            return {}

    def start(self) -> None:
        if not self.total:
            said = " (the first build of this configuration: no total known yet)"
        else:
            said = f": ~{self.total} steps ({self.origin})"
            if self.full and self.figures:
                said += (f", about {self.figures.eta(_running.count, buildfigures.cores()) / 60:.0f}"
                         f" min with {max(_running.count, 1)} build(s) on {buildfigures.cores()} cores")
        self.say(f"started{said}")
        super().start()

    def line(self, line: str) -> None:
        m = re.match(r"^\s+([A-Z][A-Z0-9_]*)\s+(\S+)", line)
        if m:
            self.count += 1
            self.last = m.group(2)

    def status(self, elapsed: float) -> str:
        if not self.total:
            return f"{self.count} steps, {elapsed:.0f}s (first build: no total known)"
        done = min(self.count, self.total)
        left = ticker.time_left(self.count, self.total, elapsed)
        if self.full and self.figures and done * 10 < self.total:   # the pace is not yet
            eta = self.figures.eta(_running.count, buildfigures.cores()) - elapsed   # telling
            left = f", about {max(eta, 0):.0f}s left" if eta > 0 else left
        return (f"{self.count} of ~{self.total} steps ({100 * done // self.total}%), "
                f"{elapsed:.0f}s{left}")

    def tick(self) -> str:
        return f"{self.status(time.monotonic() - self.started)}, at {self.last}"

    def stop(self, ok: bool) -> None:
        super().stop()
        if ok and self.key and self.full:
            with cache.locked(self.totals.with_name(".kernel-build-steps.lock")):
                known = self._known()
                known[self.key] = self.count
                cache.write_whole(self.totals, json.dumps(known, indent=1) + "\n")
        self.say(f"{'done' if ok else 'FAILED'} after {time.monotonic() - self.started:.0f}s "
                 f"({self.count} steps)")
