"""Small C programs run in the guest, built statically for the image's architecture.

The guest's userspace is a handful of Debian programs with their libraries; a static
program needs none of them. Each ``.c`` file of a set is one program, named after the
file (``test_klp-call_getpid.c`` -> ``test_klp-call_getpid``), compiled with the arch's
(cross) compiler. Builds are cached by a hash of the image and the sources, like modules.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict

from . import arch as archmod
from . import cache, hosttools, modules, phases
from .errors import BuildError
from .image import Image
from .kernelsource import SELFTESTS
from .paths import OUR_PROGRAMS

SOURCE_SUFFIXES = (".c", ".h")
CFLAGS = ("-static", "-O2")


def build_set(image: Image, sources: Path, label: str) -> Dict[str, Path]:
    """Build every program in ``sources`` (its ``.c`` files) for ``image``; return
    name -> path of the static executable. A set without ``.c`` files is empty."""
    if not sources.is_dir():
        raise BuildError(f"program sources for '{label}' not found at {sources}")
    if not any(sources.glob("*.c")):
        return {}
    key = (cache.InputHash("programs").text("image", image.dir.name)   # see modules.build_set
           .text("cflags", " ".join(CFLAGS))
           .file("builder", Path(__file__))
           .tree("src", sources, SOURCE_SUFFIXES).hexdigest())
    out = cache.entry("programs", f"{image.dir.name}-{label}-{key}",
                      lambda tmp: _compile(image, sources, tmp),
                      f"{label} programs for {image.name} {image.arch}",
                      checked=True, unbuildable=modules.unbuildable(image))
    return {p.stem: out / p.stem for p in sorted(out.glob("*.c"))}


def _compile(image: Image, sources: Path, out: Path) -> None:
    profile = archmod.get(image.arch)
    why = f"to build static {image.arch} guest programs"
    compiler = hosttools.require(*hosttools.compiler_for(profile), why)
    hosttools.require(*hosttools.static_libc_for(profile), why)
    # Only this dir's files: a set is one flat dir, like the selftests' own Makefile.
    for src in sources.iterdir():
        if src.is_file() and src.suffix in SOURCE_SUFFIXES:
            shutil.copy(src, out / src.name)
    log = out / "build.log"
    failed = []
    with open(log, "w") as f:
        for src in sorted(out.glob("*.c")):
            cmd = [compiler, *CFLAGS, f"-I{out}", "-o", str(out / src.stem), str(src)]
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            if phases.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                failed.append(src.name)
    if failed:
        text = log.read_text(errors="replace").splitlines()
        errors = [l for l in text if "error" in l.lower()] or text[-20:]
        kept = cache.root() / "failed-builds" / out.name
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(out, kept)
        raise BuildError(f"building static {image.arch} programs {', '.join(failed)}",
                         kept / "build.log", "\n".join(errors[:30]))


def guest_programs(image: Image) -> Dict[str, Path]:
    """The helper programs scenarios run: the upstream selftests' (test_klp-call_getpid)
    and ours in scenarios/programs/."""
    found: Dict[str, Path] = {}
    source = image.dir / "source" / SELFTESTS
    if source.is_dir():
        found.update(build_set(image, source, "kselftest"))
    if OUR_PROGRAMS.is_dir():
        found.update(build_set(image, OUR_PROGRAMS, "scenario"))
    return found
