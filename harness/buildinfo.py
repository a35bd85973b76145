"""What a run's kernel was built from and booted with, for a QA team to reproduce it: the
kernel source (the Debian source package's version, or a tree's git commit), the compiler,
the kernel config's name and sha256, and the QEMU that ran it.

Read from what the image itself holds wherever possible, so that a test machine that
imported a bundle (no kernel source, no compiler) says the same as the build machine: the
compiler is the config's CONFIG_CC_VERSION_TEXT, which Kbuild takes from the first line of
``$(CC) --version`` of the compiler that built the kernel (the cross compiler for another
arch), and the config is the image's own copy. Only the source's version is known to the
build machine alone (its cache's source package, or the tree): a bundle carries it in the
image's manifest (``prebuilt.source``).
"""
from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Dict, Optional

from . import arch as archmod, hosttools, kernelsource
from .errors import HarnessError
from .image import Image, Recipe, recipe_fragments, recipe_path

Facts = Dict[str, object]


def source(image: Image, recipe_name: str, kernel_tree: Optional[Path] = None) -> Dict[str, str]:
    """The kernel source ``image`` was built from: {"package", "version", "suite"} for a
    Debian source package (or, for a distribution kernel, its kernel package), {"tree",
    "git_commit"} for a tree of one's own; {} where it is not known here."""
    if image.prebuilt and isinstance(image.prebuilt.get("source"), dict):
        return dict(image.prebuilt["source"])
    if kernel_tree is not None:
        return {"tree": str(kernel_tree), **_git_commit(Path(kernel_tree))}
    recipe = Recipe.load(recipe_path(recipe_name))
    k = recipe.kernel
    if recipe.builds_kernel:   # the version kernelsource fetched once into the cache
        version = kernelsource.fetched_version(str(k["package"]), str(k["suite"]))
        if not version:
            return {}
        found = {"package": str(k["package"]), "suite": str(k["suite"]), "version": version}
        return dict(found, patches=", ".join(image.kernel_patches)) if image.kernel_patches \
            else found
    names = sorted(image.packages)
    name = next((n for n in names if n.startswith("linux-source")),
                next((n for n in names if n.startswith("linux-image")), None))
    return {"package": name, "version": image.packages[name],
            "suite": str(k["suite"])} if name else {}


def _git_commit(tree: Path) -> Dict[str, str]:
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode != 0:
        return {}
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True)
    return {"git_commit": head.stdout.strip(),
            "dirty": "yes" if dirty.stdout.strip() else "no"}


def compiler(image: Image) -> str:
    """The first line of ``--version`` of the compiler that built the kernel, as its config
    recorded it; "" for a config without it (kernels before 5.8)."""
    return image.config_symbols().get("CONFIG_CC_VERSION_TEXT", "").strip('"')


def config_sha256(image: Image) -> str:
    path = image.dir / "config"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def config_name(image: Image, recipe_name: str) -> str:
    """How the config was made: allnoconfig and the recipe's fragments, or the package's."""
    try:
        recipe = Recipe.load(recipe_path(recipe_name))
    except HarnessError:   # a recipe gone since the image was made: its hash still says
        return "the image's config"
    if not recipe.builds_kernel:
        return f"the config of Debian's {recipe.kernel.get('image', 'kernel package')}"
    fragments = recipe_fragments(recipe, archmod.get(image.arch))
    return "allnoconfig + " + " + ".join(f.name for f in fragments)


@functools.lru_cache(maxsize=None)   # one answer per binary and run
def qemu_version(arch: str) -> str:
    """The first line of this host's ``qemu-system-<arch> --version``; "" if it is missing."""
    binary = archmod.get(arch).qemu_binary
    if hosttools.missing({binary: archmod.get(arch).qemu_package}):
        return ""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True)
    return (done.stdout.splitlines() or [""])[0].strip()


def facts(image: Image, recipe_name: str, kernel_tree: Optional[Path] = None) -> Facts:
    """Everything above, for versions.json (per arch) and KCIDB's builds."""
    return {"source": source(image, recipe_name, kernel_tree), "compiler": compiler(image),
            "config_name": config_name(image, recipe_name),
            "config_sha256": config_sha256(image), "qemu": qemu_version(image.arch)}
