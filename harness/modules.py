"""Livepatch and target modules, built out of tree with Kbuild against an image.

Two sets: the upstream selftest modules from the image's own kernel source, and ours under
``scenarios/modules/``. Each ``.c`` file of a set is one module. Builds are cached by a hash
of the image and the sources, so an unchanged set is never rebuilt. More source sets can be
added (``--modules DIR``), and modules built elsewhere for the image's kernel (``--ko-dir
DIR``: a distribution's livepatches), which are checked against the kernel's release.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set

from . import arch as archmod
from . import buildroot, cache, hosttools, kernelbuild, phases
from .errors import BuildError, HarnessError, ModuleBuildError
from .image import Image, module_name, recipe_path
from .mirror import debian_mirror
from .paths import OUR_MODULES

SOURCE_SUFFIXES = (".c", ".h")


def build_set(image: Image, sources: Path, label: str) -> Dict[str, Path]:
    """Build every module in ``sources`` for ``image``; return name -> .ko path."""
    if not sources.is_dir():
        raise BuildError(f"module sources for '{label}' not found at {sources}")
    # The image by its dir's name (its key), not its path: a bundle's entries keep their
    # keys in another machine's cache.
    key = (cache.InputHash("modules").text("image", image.dir.name)
           .tree("src", sources, SOURCE_SUFFIXES).hexdigest())
    out = cache.entry("modules", f"{image.dir.name}-{label}-{key}",
                      lambda tmp: _kbuild(image, sources, tmp), f"{label} modules for {image.name}",
                      checked=True, unbuildable=unbuildable(image))
    return {ko.stem: ko for ko in sorted(out.glob("*.ko"))}


def unbuildable(image: Image) -> str:
    """Why nothing can be built for ``image`` here ("" if it can): an image from a bundle
    has no kernel build dir to build against."""
    if not image.prebuilt:
        return ""
    return (f"image {image.dir.name} came from the bundle {image.prebuilt.get('bundle')}, "
            "with what its scenarios load built, but not this: export a bundle that has it "
            "(on a machine that builds the image)")


def _kbuild(image: Image, sources: Path, out: Path) -> None:
    profile = archmod.get(image.arch)
    hosttools.require("make", "make", "to build livepatch modules")
    cross = profile.cross_compile()
    hosttools.require(*hosttools.compiler_for(profile), f"to build {image.arch} modules")
    for src in sources.iterdir():
        if src.suffix in SOURCE_SUFFIXES:
            shutil.copy(src, out / src.name)
    names = sorted(p.stem for p in out.glob("*.c"))
    (out / "Kbuild").write_text("".join(f"obj-m += {n}.o\n" for n in names))
    make_vars = {"ARCH": profile.kernel_arch, **image.make_vars}
    if cross:
        make_vars["CROSS_COMPILE"] = cross
    cmd = ["make", "-C", str(image.kbuild_dir), f"M={out}", kernelbuild.jobs(),
           *(f"{k}={v}" for k, v in make_vars.items()), "modules"]
    toolchain = image.toolchain
    if toolchain is not None and not toolchain.on_host():   # the kernel release's own
        root = buildroot.ensure(toolchain, debian_mirror())
        cmd = buildroot.wrap(root, cmd, read_only=[image.dir], writable=[out])
    log = out / "build.log"
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        result = phases.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        text = log.read_text(errors="replace").splitlines()
        errors = [l for l in text if "error" in l.lower()] or text[-20:]
        kept = cache.root() / "failed-builds" / out.name
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(out, kept)
        raise ModuleBuildError(f"building modules {', '.join(names)}", kept / "build.log",
                               "\n".join(errors[:30]))
    # Only the .ko files and the log are worth keeping.
    for path in out.iterdir():
        if path.suffix not in (".ko", ".c", ".h") and path.name not in ("build.log", "Kbuild"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


@dataclass(frozen=True)
class KoInfo:
    path: Path
    name: str           # the module's name (modinfo), what insmod/rmmod and sysfs use
    release: str        # the kernel release it was built for (first word of vermagic)
    livepatch: bool     # MODULE_INFO(livepatch, "Y")


def describe(ko: Path) -> KoInfo:
    """What modinfo says about a built module."""
    modinfo = hosttools.require("modinfo", "kmod", "to read built modules")
    result = subprocess.run([modinfo, str(ko)], capture_output=True, text=True)
    fields: Dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if result.returncode != 0 or "vermagic" not in fields:
        raise HarnessError(f"{ko}: not a kernel module modinfo can read: "
                           f"{result.stderr.strip() or 'no vermagic'}")
    name = fields.get("name") or module_name(ko.name)
    return KoInfo(ko, name, fields["vermagic"].split()[0], fields.get("livepatch") == "Y")


def ko_files(ko_dir: Path) -> List[KoInfo]:
    """The ``.ko`` files of ``ko_dir`` (given with --ko-dir), as modinfo describes them."""
    if not Path(ko_dir).is_dir():
        raise HarnessError(f"--ko-dir {ko_dir}: no such directory")
    found = [describe(ko) for ko in sorted(Path(ko_dir).glob("*.ko"))]
    if not found:
        raise HarnessError(f"--ko-dir {ko_dir}: no .ko files there")
    return found


def prebuilt(image: Image, ko_dir: Path) -> List[KoInfo]:
    """The ``.ko`` files of ``ko_dir``; each must be built for the image's kernel."""
    found = ko_files(ko_dir)
    for info in found:
        if info.release != image.kernel_release:
            raise HarnessError(
                f"{info.path}: built for kernel {info.release}, but image {image.name} "
                f"({image.arch}) runs {image.kernel_release}: build it against that "
                "kernel's headers, or choose the image of its kernel")
    return found


def require_sources(sources: Path) -> None:
    """A module dir the user named must exist and hold module sources: a typo must not
    quietly leave its modules out (under bisect-run, a step would answer good)."""
    if not Path(sources).is_dir():
        raise HarnessError(f"module dir {sources}: no such directory")
    if not any(Path(sources).glob("*.c")):
        raise HarnessError(f"module dir {sources}: no module sources (*.c) in it")


def in_tree(image: Image) -> Dict[str, Path]:
    """The modules of the image's own kernel build (=m in its config), by the name they
    load as: targets for livepatches built from source patches (klp-build patches in-tree
    modules only). A distribution image's headers have none."""
    return {module_name(ko.name): ko for ko in sorted(image.kbuild_dir.rglob("*.ko"))}


class ModuleCatalog:
    """Every module a scenario can name, for one image."""

    def __init__(self, image: Image, extra_sets: Iterable[Path] = (),
                 ko_dirs: Iterable[Path] = ()):
        self.image = image
        self.modules: Dict[str, Path] = dict(in_tree(image))
        if image.selftest_modules is not None:
            self.modules.update(build_set(image, image.selftest_modules, "upstream"))
        for sources in extra_sets:   # named by the user (--modules): must hold modules
            require_sources(sources)
        for sources, label in [(OUR_MODULES, "scenario"), *((p, p.name) for p in extra_sets)]:
            if sources.is_dir():
                for name, ko in build_set(image, sources, label).items():
                    if name in self.modules:
                        raise HarnessError(f"module name {name} is defined twice "
                                           f"({self.modules[name]} and {ko})")
                    self.modules[name] = ko
        for ko_dir in ko_dirs:
            for info in prebuilt(image, ko_dir):
                if info.name in self.modules:
                    raise HarnessError(f"module name {info.name} is defined twice "
                                       f"({self.modules[info.name]} and {info.path})")
                self.modules[info.name] = info.path

    def names(self) -> Set[str]:
        return set(self.modules)

    def with_modules(self, more: Dict[str, Path]) -> "ModuleCatalog":
        """This catalog and ``more`` (a scenario's own livepatches)."""
        copy = object.__new__(ModuleCatalog)
        copy.image, copy.modules = self.image, {**self.modules, **more}
        return copy

    def path(self, name: str) -> Path:
        if name not in self.modules:
            raise HarnessError(f"unknown module '{name}'; known: {', '.join(sorted(self.modules))}")
        return self.modules[name]


def known_names(image_name: str) -> Optional[Set[str]]:
    """Module names scenarios may use with image ``image_name`` on some arch, from sources
    alone (for validation before anything is built), from the newest image of each arch in
    the cache; None if there is none yet, since the upstream modules come from the image's
    kernel source."""
    names = {p.stem for p in OUR_MODULES.glob("*.c")} if OUR_MODULES.is_dir() else set()
    name = recipe_path(image_name).stem   # a recipe file's path names it by its stem
    manifests = (cache.root() / "images").glob(f"{name}-*/manifest.json")
    seen: Set[str] = set()
    for manifest in sorted(manifests, key=lambda p: p.stat().st_mtime, reverse=True):
        image = Image.from_dir(manifest.parent)
        if image.name != name or image.arch in seen:
            continue
        seen.add(image.arch)
        names |= set(in_tree(image))
        if image.selftest_modules is not None:
            names |= {p.stem for p in image.selftest_modules.glob("*.c")}
    return names if seen else None
