"""Image recipes (images/*.yaml) and the images built from them.

An image is what a guest boots and what livepatch modules are built against: a kernel, an
initramfs (minimal userspace + our init + SSH host key), a kbuild dir for out-of-tree
modules, and the kernel source's livepatch selftests. It is built once into the cache,
keyed by a hash of its inputs (recipe, guest files, builder version).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from . import arch as archmod
from . import cache, debian, hosttools, initramfs, kernelfile
from .errors import BuildError, RecipeError
from .mirror import debian_mirror
from .yamlsrc import Fields, load

PROJECT = Path(__file__).resolve().parent.parent
IMAGES_DIR = Path(os.environ.get("KLP_HARNESS_IMAGES", PROJECT / "images"))
DEFAULT_IMAGE = "debian-bookworm"
# The code that decides what an image contains is one of its inputs: change it, and images
# are rebuilt rather than trusted.
BUILDER_SOURCES = ("image.py", "initramfs.py", "kernelfile.py", "debian.py")



@dataclass
class Recipe:
    name: str
    path: Path
    description: str
    arches: List[str]
    kernel: Dict[str, str]
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
        k.only(KERNEL_KINDS[kind])
        kernel = {key: k.get(key, str) for key in KERNEL_KINDS[kind]}
        s = f.sub("selftests")
        s.only(["paths", "modules"])
        u = f.sub("userspace")
        u.only(["suite", "packages", "programs"])
        return cls(name=path.stem, path=path, description=f.get("description", str, ""),
                   arches=arches, kernel=kernel, selftest_paths=s.strings("paths"),
                   selftest_modules=s.get("modules", str), boot_modules=f.strings("boot-modules", []),
                   userspace_suite=u.get("suite", str), userspace_packages=u.strings("packages"),
                   userspace_programs=u.strings("programs"), cmdline=f.strings("cmdline", []))


# Fields of `kernel:` for each kind of kernel source.
KERNEL_KINDS = {
    "debian-package": ["from", "suite", "image", "headers", "source"],
}


def arches_for(name: str, requested: Optional[List[str]] = None) -> List[str]:
    """The arches a run covers: those requested (validated), else every one the recipe has."""
    if requested:
        for a in requested:
            archmod.get(a)
        return list(requested)
    return Recipe.load(recipe_path(name)).arches


def recipe_path(name: str) -> Path:
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

    @property
    def kernel(self) -> Path:
        return self.dir / "kernel"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.cpio"

    @classmethod
    def from_dir(cls, path: Path) -> "Image":
        m = json.loads((path / "manifest.json").read_text())
        return cls(dir=path, name=m["name"], arch=m["arch"], kernel_release=m["kernel_release"],
                   host_key=m["host_key"], kbuild_dir=path / m["kbuild_dir"],
                   make_vars=m["make_vars"],
                   selftest_modules=path / m["selftest_modules"] if m["selftest_modules"] else None,
                   cmdline=m.get("cmdline", []))


def input_hash(recipe: Recipe, arch: str) -> str:
    h = cache.InputHash("image").text("arch", arch)
    for source in BUILDER_SOURCES:
        h.file(f"builder/{source}", Path(__file__).with_name(source))
    h.file("recipe", recipe.path).tree("guest", IMAGES_DIR / "guest")
    return h.hexdigest()


def build(name: str = DEFAULT_IMAGE, arch: str = "x86_64", mirror: Optional[str] = None) -> Image:
    """The image ``name`` for ``arch``, built now if the cache does not have it yet."""
    recipe = Recipe.load(recipe_path(name))
    profile = archmod.get(arch)
    if arch not in recipe.arches:
        raise RecipeError(recipe.path, None, "arches",
                          f"image '{name}' is not made for {arch} (it supports "
                          f"{', '.join(recipe.arches)}); choose another --image")
    for program, package in hosttools.COMMON.items():
        hosttools.require(program, package, "to build images")
    key = f"{name}-{arch}-{input_hash(recipe, arch)}"
    builder = _DebianPackageBuild(recipe, profile, lambda: debian_mirror(mirror))
    return Image.from_dir(cache.entry("images", key, builder.run, f"image {name} for {arch}"))


class _DebianPackageBuild:
    """A Debian distribution kernel package with its headers and source package."""

    def __init__(self, recipe: Recipe, profile: archmod.ArchProfile, mirror):
        self.recipe, self.profile, self.mirror = recipe, profile, mirror

    def run(self, out: Path) -> None:
        log = out / "build.log"
        k = self.recipe.kernel
        pkgs = out / "packages"
        debian.extract([k["image"], k["headers"], k["source"]], k["suite"],
                       self.profile.debian_arch, self.mirror(), pkgs, log)
        release = _kernel_release(pkgs)
        form = kernelfile.make_bootable(pkgs / "boot" / f"vmlinuz-{release}", out / "kernel")
        cache.progress(f"kernel {release}: {form}")
        shutil.copy(pkgs / "boot" / f"config-{release}", out / "config")
        kbuild = _keep_kbuild(pkgs, out / "kbuild", release)
        _extract_source(pkgs, out / "source", self.recipe.selftest_paths, kbuild, log)
        unpacked, rootfs = out / "userspace", out / "rootfs"
        debian.extract(self.recipe.userspace_packages, self.recipe.userspace_suite,
                       self.profile.debian_arch, self.mirror(), unpacked, log)
        host_key = initramfs.assemble(unpacked, rootfs, self.recipe.userspace_programs, [],
                                      self.recipe.boot_modules, log)
        _add_boot_modules(pkgs, rootfs, release, self.recipe.boot_modules)
        initramfs.pack(rootfs, out / "initrd.cpio")
        for tree in (pkgs, unpacked, rootfs):
            shutil.rmtree(tree)
        manifest = {
            "name": self.recipe.name, "arch": self.profile.name, "kernel_release": release,
            "host_key": host_key, "kbuild_dir": str(kbuild.relative_to(out)),
            "make_vars": {}, "cmdline": self.recipe.cmdline,
            "selftest_modules": f"source/{self.recipe.selftest_modules}",
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _kernel_release(pkgs: Path) -> str:
    kernels = sorted((pkgs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise BuildError(f"expected one kernel in the image package, found {len(kernels)}: "
                         + ", ".join(k.name for k in kernels))
    return kernels[0].name[len("vmlinuz-"):]


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


def _makefile_version(text: str) -> str:
    v = {k: re.search(rf"^{k} = (\d+)", text, re.M) for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL")}
    return ".".join(m.group(1) if m else "?" for m in v.values())


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
        source_v = _makefile_version((dest / "Makefile").read_text())
        kernel_v = _makefile_version((common / "Makefile").read_text())
        if source_v != kernel_v:
            raise BuildError(f"source package is Linux {source_v} but the kernel package is "
                             f"{kernel_v}: the mirror's packages are out of step")


def _add_boot_modules(pkgs: Path, rootfs: Path, release: str, names: List[str]) -> None:
    """Copy the named modules and those they depend on (modules.dep) into the rootfs."""
    moddir = pkgs / "lib/modules" / release
    deps: Dict[str, List[str]] = {}
    by_name: Dict[str, str] = {}
    if not (moddir / "modules.dep").exists():  # made by the package's postinst, not shipped
        subprocess.run(["depmod", "-b", str(pkgs), release], check=True)
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_module_name(path)] = path
    wanted, todo = set(), []
    for name in names:
        key = name.replace("-", "_")
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
    for path in wanted:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(moddir / path, target / path)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (moddir / meta).exists():
            shutil.copy(moddir / meta, target / meta)
    subprocess.run(["depmod", "-b", str(rootfs), release], check=True)


def _module_name(path: str) -> str:
    base = os.path.basename(path)
    return base.split(".ko")[0].replace("-", "_")
