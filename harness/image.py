"""Image recipes (images/*.yaml) and the images built from them.

An image is what a guest boots and what livepatch modules are built against: a kernel, an
initramfs (minimal userspace + our init + SSH host key), a kbuild dir for out-of-tree
modules, and the kernel source's livepatch selftests. It is built once into the cache,
keyed by a hash of its inputs (recipe, guest files, builder version, kernel identity).

Two kinds of kernel: a Debian distribution package (with its headers), or a kernel built
from source (Debian's linux-source package, or a local tree given with --kernel-tree) with
the config fragments under images/kconfig/.
"""
from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import arch as archmod
from . import buildroot, cache, debian, hosttools, initramfs, kernelbuild, kernelfile
from . import buildfigures, kernelsource, klporig, paths, phases, prebuilt
from .errors import BuildError, HarnessError, KernelBuildError, RecipeError, UnsupportedArch
from .log import progress
from .mirror import debian_mirror
from .paths import BUILD_FIGURES, IMAGES_DIR, KCONFIG_DIR
from .yamlsrc import Fields, load

PROJECT = paths.PROJECT   # an alias: tests take the project's root from here
DEFAULT_IMAGE = "linux-7.3"
# The code that decides what an image contains is one of its inputs: change it, and images
# are rebuilt rather than trusted. (The kernel build has its own stamp; see kernelbuild.)
BUILDER_SOURCES = ("image.py", "initramfs.py", "kernelfile.py", "debian.py", "buildroot.py")



@dataclass
class Recipe:
    name: str
    path: Path
    description: str
    arches: List[str]
    kernel: Dict[str, object]
    selftest_paths: List[str]       # paths in the kernel source to keep (modules, scripts)
    selftest_modules: str           # where in those the upstream test modules live
    boot_modules: List[str]
    userspace_suite: str
    userspace_packages: List[str]
    userspace_programs: List[str]   # globs in the unpacked packages; kept with their libraries
    cmdline: List[str]              # kernel parameters this kernel boots faster or better with

    @classmethod
    def load(cls, path: Path) -> "Recipe":
        f = Fields(load(path, RecipeError), path, error=RecipeError)
        f.only(["description", "arches", "kernel", "selftests", "boot-modules", "userspace",
                "cmdline"])
        arches = f.strings("arches")
        for i, a in enumerate(arches):
            if a not in archmod.NAMES:
                f.fail("arches", f"unknown architecture '{a}'; known: {', '.join(archmod.NAMES)}")
        k = f.sub("kernel")
        kind = k.get("from", str)
        if kind not in KERNEL_KINDS:
            k.fail("from", f"unknown kernel kind '{kind}'; known: {', '.join(KERNEL_KINDS)}")
        k.only(KERNEL_KINDS[kind] + OPTIONAL_KERNEL_FIELDS.get(kind, []))
        kernel = {key: k.strings(key) if key in LIST_FIELDS else k.get(key, str)
                  for key in KERNEL_KINDS[kind]}
        for i, frag in enumerate(kernel.get("config", [])):
            if not (KCONFIG_DIR / frag).is_file():
                k.fail("config", f"no config fragment {frag} in {KCONFIG_DIR}")
        if "arch-config" in k.node:
            a = k.sub("arch-config")
            a.only(arches)
            kernel["arch-config"] = {arch: a.strings(arch) for arch in a.node}
            for arch, frags in kernel["arch-config"].items():
                for frag in frags:
                    if not (KCONFIG_DIR / frag).is_file():
                        a.fail(arch, f"no config fragment {frag} in {KCONFIG_DIR}")
        if kind == "debian-files":   # paths relative to the recipe; checked before anything
            files = [(path.parent / name).resolve() for name in kernel["files"]]
            for i, deb in enumerate(files):
                if deb.suffix != ".deb" or not deb.is_file():
                    k.fail("files", f"[{i}] {deb}: " + ("not a .deb file" if deb.is_file()
                           else "no such file") + ": name the candidate's .deb files")
            kernel["files"] = [str(deb) for deb in files]
        s = f.sub("selftests")
        s.only(["paths", "modules"])
        u = f.sub("userspace")
        u.only(["suite", "packages", "programs"])
        return cls(name=path.stem, path=path, description=f.get("description", str, ""),
                   arches=arches, kernel=kernel, selftest_paths=s.strings("paths"),
                   selftest_modules=s.get("modules", str), boot_modules=f.strings("boot-modules", []),
                   userspace_suite=u.get("suite", str), userspace_packages=u.strings("packages"),
                   userspace_programs=u.strings("programs"), cmdline=f.strings("cmdline", []))

    @property
    def builds_kernel(self) -> bool:
        return self.kernel["from"] not in ("debian-package", "debian-files")


# Fields of `kernel:` for each kind of kernel source.
KERNEL_KINDS = {
    "debian-package": ["from", "suite", "image", "headers", "source"],
    # Candidate packages as local files (a build in no mirror yet): the kernel image, its
    # headers (with -common and linux-kbuild), optionally linux-source; their other
    # dependencies come from `suite`.
    "debian-files": ["from", "suite", "files"],
    # Debian's linux-source-X.Y package; `config` lists the common fragments (images/kconfig/),
    # to which each architecture's own fragment (its profile's kconfig_fragment) is added.
    "debian-source": ["from", "suite", "package", "config"],
}
LIST_FIELDS = ("config", "files")
# `arch-config`: {arch: [fragments]} added for that architecture only, after the common ones
# and before the arch's own: what only some architectures have (s390 has no lockup
# detectors) or can afford under emulation (KASAN).
OPTIONAL_KERNEL_FIELDS = {"debian-source": ["arch-config"]}


def arches_for(name: str, requested: Optional[List[str]] = None) -> List[str]:
    """The arches a run covers: those requested (validated), else every one the recipe has."""
    if requested:
        for a in requested:
            archmod.get(a)
        return list(requested)
    return Recipe.load(recipe_path(name)).arches


def recipe_path(name: str) -> Path:
    """A recipe by name (images/<name>.yaml, or $KLP_HARNESS_IMAGES/<name>.yaml), or a
    recipe file of one's own given by its path (ending in .yaml)."""
    if name.endswith(".yaml"):
        path = Path(name)
        if not path.is_file():
            raise RecipeError(path, None, None, "no such image recipe file")
        return path
    path = IMAGES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in IMAGES_DIR.glob("*.yaml"))
        raise RecipeError(path, None, None,
                          f"no image recipe named '{name}'; known: {', '.join(known) or 'none'}")
    return path


@dataclass
class Image:
    """A built image, as recorded in its manifest."""
    dir: Path
    name: str
    arch: str
    kernel_release: str
    host_key: str                   # "ssh-ed25519 AAAA..." of the guest's sshd
    kbuild_dir: Path
    make_vars: Dict[str, str]
    selftest_modules: Optional[Path]
    cmdline: List[str] = field(default_factory=list)
    toolchain: Optional[buildroot.Toolchain] = None   # a distribution kernel's compiler
    packages: Dict[str, str] = field(default_factory=dict)   # its packages: name -> version
    kernel_patches: List[str] = field(default_factory=list)  # --kernel-patch files applied
    # Set when the image came from a bundle (see bundle.py): what lookups need that a build
    # machine computes from the kernel source or build dir; kbuild_dir then holds only the
    # kernel build's .config, stamp and in-tree modules, enough to find cached work by key.
    prebuilt: Optional[Dict[str, object]] = None

    @property
    def kernel_name(self) -> str:
        """The kernel's release, and the patches built into it if any: how a run names it
        (the summary's kernels, JUnit, failure.txt, versions.json)."""
        return self.kernel_release + (f" + {', '.join(self.kernel_patches)}"
                                      if self.kernel_patches else "")

    @property
    def kernel(self) -> Path:
        return self.dir / "kernel"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.cpio"

    def config_symbols(self) -> Dict[str, str]:
        """The kernel config as {CONFIG_X: y|m|value}; {} if the image has none."""
        if not hasattr(self, "_config"):
            path = self.dir / "config"
            lines = path.read_text().splitlines() if path.exists() else []
            self._config = dict(l.split("=", 1) for l in lines if l.startswith("CONFIG_"))
        return self._config

    @classmethod
    def from_dir(cls, path: Path) -> "Image":
        m = json.loads((path / "manifest.json").read_text())
        return cls(dir=path, name=m["name"], arch=m["arch"], kernel_release=m["kernel_release"],
                   host_key=m["host_key"], kbuild_dir=path / m["kbuild_dir"],
                   make_vars=m["make_vars"],
                   selftest_modules=path / m["selftest_modules"] if m["selftest_modules"] else None,
                   cmdline=m.get("cmdline", []),
                   toolchain=buildroot.Toolchain.from_json(m.get("toolchain")),
                   packages=m.get("packages", {}), kernel_patches=m.get("kernel_patches", []),
                   prebuilt=m.get("prebuilt"))


def input_hash(recipe: Recipe, arch: str) -> str:
    h = cache.InputHash("image").text("arch", arch)
    for source in BUILDER_SOURCES:
        h.file(f"builder/{source}", Path(__file__).with_name(source))
    h.file("recipe", recipe.path).tree("guest", IMAGES_DIR / "guest")
    return h.hexdigest()


def build(name: str = DEFAULT_IMAGE, arch: str = "x86_64", mirror: Optional[str] = None,
          kernel_tree: Optional[Path] = None, build_dir: Optional[Path] = None,
          kernel_patches: Sequence[Path] = ()) -> Image:
    """The image ``name`` for ``arch``, built now if the cache does not have it yet.
    ``kernel_tree`` replaces the recipe's kernel source with a local tree; ``build_dir``
    is the kernel's build dir instead of the one kept in the cache for that tree;
    ``kernel_patches`` are applied to the recipe's kernel source (an image of its own)."""
    recipe = Recipe.load(recipe_path(name))
    profile = archmod.get(arch)
    if arch not in recipe.arches:
        raise RecipeError(recipe.path, None, "arches",
                          f"image '{name}' is not made for {arch} (it supports "
                          f"{', '.join(recipe.arches)}; {arch} has livepatch since Linux "
                          f"{'.'.join(map(str, profile.livepatch_since))}); choose another "
                          "--image")
    if kernel_tree is not None and not recipe.builds_kernel:
        raise RecipeError(recipe.path, recipe_line(recipe, "kernel"), "kernel",
                          f"image '{name}' boots a distribution kernel package; --kernel-tree "
                          f"needs an image built from source (e.g. --image {DEFAULT_IMAGE})")
    check_kernel_patches(recipe, kernel_tree, kernel_patches)
    if kernel_tree is None and build_dir is None and not kernel_patches:
        found = imported(recipe, arch)
        if found is not None:
            return found
    builder = BUILDERS[recipe.kernel["from"]](recipe, profile, lambda: debian_mirror(mirror),
                                               kernel_tree, build_dir, kernel_patches)
    builder.check_livepatch_arch()
    for program, package in hosttools.needed_for([arch], recipe.builds_kernel).items():
        hosttools.require(program, package, f"to build and boot {arch} images")
    key = f"{recipe.name}-{arch}-{builder.input_hash()}"

    def run(out: Path) -> None:
        with phases.phase(f"image {arch}"):   # its kernel's build is a phase of its own
            builder.run(out)

    image = Image.from_dir(cache.entry("images", key, run,
                                       f"image {name} for {arch} ({builder.kernel_label()})",
                                       checked=True))
    builder.sync_kbuild()
    builder.check_host(image)
    return image


def imported(recipe: Recipe, arch: str) -> Optional[Image]:
    """The image of ``recipe`` for ``arch`` that a bundle brought (prebuilt.py), found by
    what this checkout computes without a kernel source: the recipe, guest files and
    builder sources (input_hash). None if no bundle of them was imported."""
    key = prebuilt.image_key(recipe.name, arch, input_hash(recipe, arch))
    if key is None:
        return None
    image = Image.from_dir(cache.entry(
        "images", key, None, f"image {recipe.name} for {arch} from a bundle", checked=True,
        unbuildable="it came from a bundle (this machine need not build kernels): import "
                    "the bundle again"))
    progress(f"image {recipe.name} for {arch}: {image.dir}, from the bundle "
             f"{image.prebuilt.get('bundle')} (built elsewhere, not here)")
    return image


def check_kernel_patches(recipe: Recipe, kernel_tree: Optional[Path],
                        kernel_patches: Sequence[Path]) -> None:
    """--kernel-patch applies to the recipe's own kernel source: refused for a
    distribution kernel and beside --kernel-tree (a tree of one's own takes the change)."""
    if not kernel_patches:
        return
    if not recipe.builds_kernel:
        raise RecipeError(recipe.path, recipe_line(recipe, "kernel"), "kernel",
                          f"image '{recipe.name}' boots a distribution kernel package; "
                          f"--kernel-patch needs an image built from source (e.g. --image "
                          f"{DEFAULT_IMAGE})")
    if kernel_tree is not None:
        raise HarnessError("--kernel-patch applies to the recipe's kernel source; with "
                           "--kernel-tree, commit or apply the change in that tree instead")


def patched_source(name: str, kernel_patches: Sequence[Path],
                   mirror: Optional[str] = None) -> None:
    """Apply ``kernel_patches`` to image ``name``'s kernel source now (once, cached): a
    patch that does not apply is an error naming its hunk before any build starts."""
    recipe = Recipe.load(recipe_path(name))
    check_kernel_patches(recipe, None, kernel_patches)
    if kernel_patches:
        k = recipe.kernel
        kernelsource.patched(kernelsource.debian_package(
            k["package"], k["suite"], lambda: debian_mirror(mirror)), kernel_patches)


def build_all(name: str, arches: List[str], mirror: Optional[str] = None,
              kernel_tree: Optional[Path] = None,
              kernel_patches: Sequence[Path] = ()) -> Dict[str, Image]:
    """The images of ``arches``, the missing ones built at the same time: much of a kernel
    build is single-threaded (configuring, linking, modpost), so builds of several arches
    fill the host's cores better together than one after the other. Every build runs to
    its end; the first failure (in ``arches`` order) is raised after all have stopped."""
    with concurrent.futures.ThreadPoolExecutor(max(1, len(arches)), "klp-build") as pool:
        futures = {a: pool.submit(build, name, a, mirror, kernel_tree, None, kernel_patches)
                   for a in arches}
        concurrent.futures.wait(futures.values())
    return {a: f.result() for a, f in futures.items()}


def record_figures(name: str, arch: str, mirror: Optional[str] = None) -> str:
    """Write what the last full build of image ``name``'s kernel for ``arch`` measured
    into the shipped figures (buildfigures), building it first if need be; returns a line
    saying what was written. A build dir whose last full build was another config is an
    error: its figures would not be this one's."""
    build(name, arch, mirror)
    recipe = Recipe.load(recipe_path(name))
    b = _SourceBuild(recipe, archmod.get(arch), lambda: debian_mirror(mirror), None)
    kb = b._kernel()
    found = buildfigures.measured(kb.build_dir)
    stamp = (kb.build_dir / kernelbuild.STAMP).read_text()
    if not found or found.get("identity") != stamp:
        raise BuildError(f"{kb.build_dir} was last built in full for another configuration, "
                         "so what it measured is not this kernel's: remove the dir and run "
                         "this again (the kernel is built anew)")
    figures = buildfigures.Figures(found["steps"], found["cpu_seconds"], b.figures_inputs(),
                                   b.variant)
    buildfigures.store(BUILD_FIGURES, name, arch, figures)
    return f"{name} {arch}: {figures.steps} steps, {figures.cpu_seconds:.0f} CPU seconds"


def source_built_arches(name: str) -> List[str]:
    """The arches of recipe ``name`` whose kernel is built from source (none for a
    distribution kernel's recipe)."""
    recipe = Recipe.load(recipe_path(name))
    return list(recipe.arches) if recipe.builds_kernel else []


def recipe_line(recipe: Recipe, key: str) -> Optional[int]:
    return load(recipe.path, RecipeError).key_lines.get(key)


class _Build:
    """What every kind of image shares: the userspace, the initramfs and the manifest."""

    def __init__(self, recipe: Recipe, profile: archmod.ArchProfile, mirror, kernel_tree,
                 build_dir: Optional[Path] = None, kernel_patches: Sequence[Path] = ()):
        self.recipe, self.profile, self.mirror = recipe, profile, mirror
        self.kernel_tree, self.build_dir = kernel_tree, build_dir
        self.kernel_patches = list(kernel_patches)

    def input_hash(self) -> str:
        return input_hash(self.recipe, self.profile.name)

    def sync_kbuild(self) -> None:
        """Make sure the image's kbuild dir still matches its kernel (see _SourceBuild)."""

    def check_livepatch_arch(self) -> None:
        """Refuse a kernel too old for livepatch on this arch (see _SourceBuild)."""

    def kernel_label(self) -> str:
        """Which kernel the image boots, as known before it is built."""
        k = self.recipe.kernel
        return f"Debian's {k['image']} from {k['suite']}"

    def check_host(self, image: "Image") -> None:
        """Refuse an image this host cannot build modules for (see _DebianPackageBuild)."""

    def initrd(self, out: Path, log: Path, add_modules=None) -> str:
        """Assemble and pack the initramfs; return the guest's SSH host key."""
        unpacked, rootfs = out / "userspace", out / "rootfs"
        debian.extract(self.recipe.userspace_packages, self.recipe.userspace_suite,
                       self.profile.debian_arch, self.mirror(), unpacked, log)
        host_key = initramfs.assemble(unpacked, rootfs, self.recipe.userspace_programs, [],
                                      self.recipe.boot_modules)
        if add_modules:
            add_modules(rootfs)
        initramfs.pack(rootfs, out / "initrd.cpio")
        for tree in (unpacked, rootfs):
            shutil.rmtree(tree)
        return host_key

    def manifest(self, out: Path, release: str, host_key: str, kbuild: Path,
                 make_vars: Optional[Dict[str, str]] = None,
                 toolchain: Optional[dict] = None,
                 packages: Optional[Dict[str, str]] = None) -> None:
        manifest = {
            "name": self.recipe.name, "arch": self.profile.name, "kernel_release": release,
            "host_key": host_key,
            # Relative when inside the image; a kept kernel build dir is absolute.
            "kbuild_dir": str(kbuild.relative_to(out) if kbuild.is_relative_to(out) else kbuild),
            "make_vars": make_vars or {}, "cmdline": self.recipe.cmdline,
            "selftest_modules": f"source/{self.recipe.selftest_modules}",
            "toolchain": toolchain,   # a distribution kernel's (see buildroot.py)
            "packages": packages or {},   # a distribution kernel's packages and versions
            "kernel_patches": [Path(p).name for p in self.kernel_patches],
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


class _DebianPackageBuild(_Build):
    """A Debian distribution kernel package with its headers and source package."""

    def kernel_packages(self) -> List[str]:
        """What debian.extract unpacks for the kernel and its headers."""
        return [self.recipe.kernel["image"], self.recipe.kernel["headers"]]

    def source_package(self, headers: Path) -> str:
        return self.recipe.kernel["source"]

    def run(self, out: Path) -> None:
        log = out / "build.log"
        k = self.recipe.kernel
        pkgs, source_pkg = out / "packages", out / "source-package"
        versions = debian.extract(self.kernel_packages(), k["suite"], self.profile.debian_arch,
                                  self.mirror(), pkgs, log)
        release = _kernel_release(pkgs)
        form = kernelfile.make_bootable(_kernel_file(pkgs, release, "vmlinuz"),
                                        out / "kernel")
        progress(f"kernel {release}: {form}")
        shutil.copy(_kernel_file(pkgs, release, "config"), out / "config")
        kbuild = _keep_kbuild(pkgs, out / "kbuild", release)
        try:   # before fetching the big source package
            toolchain = self.toolchain(kbuild)
            self.ready(toolchain)
        except (RecipeError, BuildError):
            shutil.rmtree(out, ignore_errors=True)    # 0.5 GB of packages, of no use now
            raise
        versions.update(debian.extract([self.source_package(kbuild)], k["suite"],
                                       self.profile.debian_arch, self.mirror(), source_pkg, log))
        _extract_source(source_pkg, out / "source", self.recipe.selftest_paths, kbuild, log)
        host_key = self.initrd(out, log, lambda rootfs: _add_boot_modules(
            pkgs, rootfs, release, self.recipe.boot_modules))
        shutil.rmtree(pkgs)
        shutil.rmtree(source_pkg)
        # Modules build with the compiler that built the kernel (the headers' Makefile
        # would take plain `gcc`, whatever its version): the host's, or a build root's.
        self.manifest(out, release, host_key, kbuild, {"CC": toolchain.compiler},
                      toolchain.to_json(),
                      {n: v for n, v in sorted(versions.items()) if n.startswith("linux-")})

    def check_host(self, image: "Image") -> None:
        self.ready(image.toolchain)   # every image of this kind records it

    def toolchain(self, headers: Path) -> buildroot.Toolchain:
        """The compiler the distribution built its kernel with (CONFIG_CC_VERSION_TEXT),
        which out-of-tree modules must be built with, and a build root of the kernel's
        release that has it with the kernel's kbuild programs."""
        config = (headers / ".config").read_text(errors="replace")
        m = re.search(r'^CONFIG_CC_VERSION_TEXT="(\S+)\s*(.*)"$', config, re.M)
        if not m:
            raise BuildError(f"no CONFIG_CC_VERSION_TEXT in {headers / '.config'}: cannot tell "
                             "which compiler built this kernel")
        program = m.group(1)
        packages = [buildroot.compiler_package(program), *buildroot.BASE_PACKAGES]
        kbuild = buildroot.kbuild_package(headers)
        if kbuild:
            packages.append(kbuild)
        return buildroot.Toolchain(program, str(self.recipe.kernel["suite"]),
                                   self.profile.debian_arch, tuple(packages))

    def ready(self, toolchain: buildroot.Toolchain) -> None:
        """The host's compiler, else a build root made now (cached); if neither can be had,
        a RecipeError that names the compiler, its package and why no build root."""
        if toolchain.on_host():
            return
        why = toolchain.cannot_make_root()
        if why:
            package = toolchain.packages[0]
            raise RecipeError(
                self.recipe.path, recipe_line(self.recipe, "kernel"), "kernel",
                f"the kernel's headers build modules with {toolchain.compiler}, the compiler "
                f"that built this kernel; this host has no {toolchain.compiler}, and {why}: "
                f"install the Debian package {package}"
                + ("" if hosttools.apt_candidate(package) else
                   f" (this host's apt sources do not offer {package}: use a host of the "
                   "distribution release that has it)")
                + "; livepatch modules built by another compiler would not match the kernel")
        buildroot.ensure(toolchain, self.mirror())


class _DebianFilesBuild(_DebianPackageBuild):
    """Candidate kernel packages given as .deb files: checked against each other (one
    kernel image, headers of the same release, the arch's packages) before anything is
    unpacked; linux-source from the suite unless given."""

    def input_hash(self) -> str:
        h = cache.InputHash("candidate").text("recipe", super().input_hash())
        for f in self.recipe.kernel["files"]:
            h.file(Path(f).name, f)
        return h.hexdigest()

    def kernel_label(self) -> str:
        return f"candidate packages {', '.join(Path(f).name for f in self.recipe.kernel['files'])}"

    @functools.cached_property
    def _files(self) -> Dict[str, List[Tuple[str, Dict[str, str]]]]:
        """The files by role: image, headers, source, other; each with its control fields
        (read once: kernel_packages and source_package both need them)."""
        roles: Dict[str, List[Tuple[str, Dict[str, str]]]] = {
            "image": [], "headers": [], "source": [], "other": []}
        for f in self.recipe.kernel["files"]:
            fields = debian.deb_fields(f)
            package = fields["Package"]
            role = ("image" if re.match(r"linux-image-\d.*(?<!-dbg)$", package) else
                    "headers" if re.match(r"linux-headers-\d.*(?<!-common)$", package) else
                    "source" if package.startswith("linux-source-") else "other")
            if fields["Architecture"] not in (self.profile.debian_arch, "all"):
                self._fail(f"{Path(f).name} is a package for {fields['Architecture']}, not "
                           f"{self.profile.debian_arch} ({self.profile.name})")
            roles[role].append((f, fields))
        for role, want in (("image", "one linux-image-<release> package"),
                           ("headers", "one linux-headers-<release> package (not -common)")):
            if len(roles[role]) != 1:
                self._fail(f"the files must hold {want}; they hold "
                           f"{len(roles[role])}: " + (", ".join(Path(f).name for f, _ in
                                                            roles[role]) or "none"))
        if len(roles["source"]) > 1:
            self._fail("the files hold more than one linux-source package")
        image = roles["image"][0][1]["Package"][len("linux-image-"):].replace("-unsigned", "")
        headers = roles["headers"][0][1]["Package"][len("linux-headers-"):]
        if image != headers:
            self._fail(f"the kernel image is release {image} but the headers are for "
                       f"{headers} ({Path(roles['headers'][0][0]).name}): give the headers "
                       "of the same build")
        return roles

    def _fail(self, message: str) -> None:
        raise RecipeError(self.recipe.path, recipe_line(self.recipe, "kernel"), "kernel.files",
                          message)

    def kernel_packages(self) -> List[str]:
        roles = self._files
        return [f for role in ("image", "headers", "other") for f, _ in roles[role]]

    def source_package(self, headers: Path) -> str:
        roles = self._files
        if roles["source"]:
            return roles["source"][0][0]
        # Not given: the suite's source package of that Linux version (a mismatch is
        # reported by _extract_source, which then asks for the file).
        version = roles["image"][0][1]["Version"]
        return "linux-source-" + ".".join(version.split(".")[:2])


def kernel_inputs(name: str, arch: str, mirror: Optional[str] = None,
                  kernel_tree: Optional[Path] = None):
    """(source, profile, fragments) of a source-built image's kernel, for benchmarks."""
    recipe = Recipe.load(recipe_path(name))
    if not recipe.builds_kernel:
        raise RecipeError(recipe.path, recipe_line(recipe, "kernel"), "kernel",
                          f"image '{name}' does not build its kernel from source")
    b = _SourceBuild(recipe, archmod.get(arch), lambda: debian_mirror(mirror), kernel_tree)
    return b.source, b.profile, b.fragments


def recipe_fragments(recipe: Recipe, profile: archmod.ArchProfile) -> List[Path]:
    """The config fragments of a source-built recipe's kernel for ``profile``, in the order
    they are applied: the recipe's, its per-arch ones, then the arch's own."""
    k = recipe.kernel
    names = k["config"] + k.get("arch-config", {}).get(profile.name, [])
    return [KCONFIG_DIR / f for f in names] + [KCONFIG_DIR / profile.kconfig_fragment]


def config_variant(recipe: Recipe) -> str:
    """Fragments beyond the common base make a variant (debug.config): it keeps a build
    dir of its own, as switching one dir between the two configs recompiles nearly all."""
    return "+".join(Path(f).stem for f in recipe.kernel["config"] if f != "common.config")


def figures_inputs(recipe: Recipe, profile: archmod.ArchProfile) -> str:
    """What the shipped build figures of ``recipe`` on ``profile`` were measured on."""
    return buildfigures.inputs(recipe.kernel, recipe_fragments(recipe, profile))


class _SourceBuild(_Build):
    """A kernel built from source with our config fragments, in a kept build dir."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        k = self.recipe.kernel
        self.fragments = recipe_fragments(self.recipe, self.profile)
        self.variant = config_variant(self.recipe)
        if self.kernel_tree is not None:
            self.source = kernelsource.local_tree(self.kernel_tree)
        else:
            self.source = kernelsource.debian_package(k["package"], k["suite"], self.mirror)
        if self.kernel_patches:   # built on its own, from a copy of the unpatched build
            self.source = kernelsource.patched(self.source, self.kernel_patches)
        # Where klp-build can run, the kernel is built as its original build (klporig), not
        # once for the image and again for klp-build. Not for a tree of one's own (bisect):
        # its O= build dir keeps steps incremental, and it is no klp-build workspace.
        self.klp_vars = (klporig.make_vars(self.source.tree, self.profile)
                         if self.kernel_tree is None and self.build_dir is None else None)

    def kernel_label(self) -> str:
        where = (f"the tree {self.source.tree}" if self.kernel_tree is not None
                 else f"{self.recipe.kernel['package']} from {self.recipe.kernel['suite']}")
        return f"Linux {self.source.label} from {where}"

    def check_livepatch_arch(self) -> None:
        try:
            version = kernelsource.version_tuple(self.source.version)
        except ValueError:   # a Makefile without a version: configuring will say so
            return
        since = self.profile.livepatch_since
        if version < since:
            where = (f"the kernel tree {self.source.tree}" if self.kernel_tree is not None
                     else f"image '{self.recipe.name}'")
            raise UnsupportedArch(
                f"{where} is Linux {self.source.version}, which has no livepatch on "
                f"{self.profile.name} (it came with Linux {since[0]}.{since[1]}): choose "
                f"another --arch, or a kernel of {since[0]}.{since[1]} or later")

    def input_hash(self) -> str:
        kernel = kernelbuild.identity(self.source, self.profile, self.fragments, self.klp_vars)
        h = cache.InputHash("source-image").text("base", super().input_hash()).text(
            "kernel", kernel)
        if self.build_dir is not None:   # the manifest names it: an image per build dir
            h.text("build_dir", str(Path(self.build_dir).resolve()))
        return h.hexdigest()

    def sync_kbuild(self) -> None:
        # The kept build dir is shared by every image of this source and arch: after another
        # config or commit was built there, a cached image would hand modules a build dir of
        # another kernel. Its stamp says; make brings it back (incrementally) if needed.
        self._kernel()

    def _kernel(self) -> kernelbuild.KernelBuild:
        return kernelbuild.build(self.source, self.profile, self.fragments,
                                 self.kept_build_dir(), klp_vars=self.klp_vars,
                                 figures=self.figures(), seed=self.seed_build_dir())

    def figures(self) -> Optional[buildfigures.Figures]:
        """The recipe's shipped build figures for this arch (for a first build's ETA)."""
        return buildfigures.lookup(BUILD_FIGURES, self.recipe.name, self.profile.name,
                                   self.figures_inputs(), self.variant)

    def figures_inputs(self) -> str:
        return figures_inputs(self.recipe, self.profile)

    def seed_build_dir(self) -> Optional[Path]:
        """The unpatched kernel's build dir, which a patched one starts as a copy of."""
        if self.source.base is None or self.build_dir is not None:
            return None
        return kernelbuild.default_build_dir(self.source.base, self.profile, self.variant,
                                             self.klp_vars is not None)

    def kept_build_dir(self) -> Optional[Path]:
        if self.build_dir is not None or not self.variant:
            return self.build_dir
        return kernelbuild.default_build_dir(self.source, self.profile, self.variant,
                                             self.klp_vars is not None)

    def run(self, out: Path) -> None:
        log = out / "build.log"
        kb = self._kernel()
        shutil.copy(kb.image, out / "kernel")
        shutil.copy(kb.build_dir / ".config", out / "config")
        for rel in self.recipe.selftest_paths:
            if not (self.source.tree / rel).exists():
                raise KernelBuildError(f"selftest path {rel} is not in the kernel tree "
                                       f"{self.source.tree} (Linux {self.source.version})")
            shutil.copytree(self.source.tree / rel, out / "source" / rel, symlinks=True)
        host_key = self.initrd(out, log)
        self.manifest(out, kb.release, host_key, kb.build_dir)


BUILDERS = {"debian-package": _DebianPackageBuild, "debian-files": _DebianFilesBuild,
            "debian-source": _SourceBuild}


def _kernel_release(pkgs: Path) -> str:
    """The release of the one kernel in an image package: /boot/vmlinuz-<release>, or
    /usr/lib/modules/<release>/vmlinuz in newer packages (trixie-backports' 7.x)."""
    kernels = [k.name[len("vmlinuz-"):] for k in (pkgs / "boot").glob("vmlinuz-*")] + \
        [k.parent.name for k in (pkgs / "usr/lib/modules").glob("*/vmlinuz")]
    if len(set(kernels)) != 1:
        raise BuildError(f"expected one kernel in the image package, found {len(kernels)}: "
                         + ", ".join(sorted(kernels)))
    return kernels[0]


def _kernel_file(pkgs: Path, release: str, name: str) -> Path:
    """The package's vmlinuz or config, where either packaging puts it."""
    old = pkgs / "boot" / f"{name}-{release}"
    return old if old.exists() else pkgs / "usr/lib/modules" / release / name


def _keep_kbuild(pkgs: Path, dest: Path, release: str) -> Path:
    """Move the headers and kbuild packages' trees to ``dest``; return the M= build dir."""
    for sub in ("usr/src", "usr/lib"):
        for path in (pkgs / sub).glob("linux-*"):
            if path.name.endswith(".tar.xz"):
                continue
            target = dest / sub / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
    headers = dest / "usr/src" / f"linux-headers-{release}"
    makefile = headers / "Makefile"
    if not makefile.is_file():
        raise BuildError(f"headers for {release} not found in the headers package")
    # Debian's arch headers include the common ones by absolute path; make it relative to
    # the headers dir (make -C runs there) so the tree works wherever the cache is.
    makefile.write_text(makefile.read_text().replace("/usr/src/", "../"))
    return headers


def _extract_source(pkgs: Path, dest: Path, paths: List[str], headers: Path, log: Path) -> None:
    """Unpack only ``paths`` (and the top Makefile) from the linux-source tarball, and check
    that it is the same Linux version as the kernel whose ``headers`` we have."""
    tarballs = sorted((pkgs / "usr/src").glob("linux-source-*.tar.xz"))
    if not tarballs:
        raise BuildError("no linux-source tarball in the source package")
    top = tarballs[0].name[: -len(".tar.xz")]
    dest.mkdir(parents=True)
    members = [f"{top}/Makefile"] + [f"{top}/{p}" for p in paths]
    cmd = ["tar", "-xJf", str(tarballs[0]), "-C", str(dest), "--strip-components=1", *members]
    with open(log, "a") as out:
        if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
            raise BuildError(f"unpacking {', '.join(paths)} from {tarballs[0].name}", log)
    common = next(headers.parent.glob("linux-headers-*-common"), None)
    if common is not None:
        source_v = kernelsource.makefile_version((dest / "Makefile").read_text())
        kernel_v = kernelsource.makefile_version((common / "Makefile").read_text())
        if source_v != kernel_v:
            raise BuildError(f"source package is Linux {source_v} but the kernel package is "
                             f"{kernel_v}: the mirror's packages are out of step (with candidate "
                             "files: give the build's own linux-source .deb among them)")


def _add_boot_modules(pkgs: Path, rootfs: Path, release: str, names: List[str]) -> None:
    """Copy the named modules and those they depend on (modules.dep) into the rootfs."""
    # /usr/lib/modules in releases with a merged /usr (trixie), /lib/modules before.
    base = pkgs / "usr" if (pkgs / "usr/lib/modules" / release).is_dir() else pkgs
    moddir = base / "lib/modules" / release
    deps: Dict[str, List[str]] = {}
    by_name: Dict[str, str] = {}
    if not (moddir / "modules.dep").exists():  # made by the package's postinst, not shipped
        subprocess.run(["depmod", "-b", str(base), release], check=True)
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[module_name(path)] = path
    builtin_list = moddir / "modules.builtin"
    builtin = {module_name(line) for line in builtin_list.read_text().splitlines()} \
        if builtin_list.exists() else set()
    wanted, todo = set(), []
    for name in names:
        key = name.replace("-", "_")
        if key in builtin:   # built into this kernel (trixie's virtio drivers): none to load
            continue
        if key not in by_name:
            raise BuildError(f"boot module '{name}' is not a module of kernel {release} "
                             "(built in, or misspelled?)")
        todo.append(by_name[key])
    while todo:
        path = todo.pop()
        if path not in wanted:
            wanted.add(path)
            todo.extend(deps[path])
    target = rootfs / "lib/modules" / release
    target.mkdir(parents=True, exist_ok=True)   # modprobe knows built-in ones from here
    for path in wanted:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(moddir / path, target / path)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (moddir / meta).exists():
            shutil.copy(moddir / meta, target / meta)
    subprocess.run(["depmod", "-b", str(rootfs), release], check=True)


def module_name(path: str) -> str:
    """The name a module file loads as: "test-klp.ko.xz" -> "test_klp"."""
    base = os.path.basename(path)
    return base.split(".ko")[0].replace("-", "_")
