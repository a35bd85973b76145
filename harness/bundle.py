"""Bundles: what a test machine needs to run scenarios on an image, built once elsewhere.

``export`` finds (building what is missing) an image's arches in the cache with every
module the scenarios load (ours, the image's upstream test modules and in-tree modules,
the shadow counter, the livepatches klp-build makes of their patches, a refusal too) and
the guest programs, and writes them as cache entries into one tar with a manifest
(``bundle.json``, its first member): each file's size and sha256, the entries' keys, the
harness version, the image and its arches. ``load`` unpacks one into a temporary dir of
the cache, checks every file against the manifest, and only then renames each entry into
place: a damaged bundle leaves nothing behind.

Lookups find the entries by their keys, which hash the project's sources and the image's
dir name, with one exception: an image's key hashes its kernel source and build, which a
test machine has not. Its record (prebuilt.py) and the image's own manifest (``prebuilt``)
say instead what those lookups need; its ``kbuild_dir`` is a stand-in that holds only the
kernel build's ``.config``, stamp and in-tree modules.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import (applicability, buildinfo, cache, image as imagemod, kernelbuild, klpbuild,
               modules)
from . import prebuilt, programs, shadow
from .errors import BuildError, HarnessError
from .log import progress
from .report import harness_version

FORMAT = 1
MANIFEST = "bundle.json"
STAND_IN = "prebuilt-kbuild"   # an exported image's kbuild dir: what lookups read of it


class BundleError(HarnessError):
    """A bundle that cannot be imported here; the message says why."""


@dataclass
class ArchParts:
    """What one arch of a bundle holds: its image and the cache entries scenarios use."""
    image: imagemod.Image
    entries: List[Path] = field(default_factory=list)   # cache dirs, besides the image's


def collect(name: str, arch: str, scenarios: Sequence, mirror: Optional[str] = None) -> ArchParts:
    """Image ``name`` for ``arch`` and what ``scenarios`` load on it, from the cache (built
    first where missing), as a run would make them (archstate.ArchState.make)."""
    image = imagemod.build(name, arch, mirror)
    catalog = modules.ModuleCatalog(image)
    found = [*catalog.modules.values(), *programs.guest_programs(image).values()]
    try:
        found.append(shadow.build(image))
    except BuildError:   # a kernel the counter does not build for: runs say so, as here
        pass
    for sc in scenarios:
        if applicability.skip(sc, arch, image, catalog) is not None:
            continue
        for source in sc.livepatches.values():
            try:
                found.append(klpbuild.build(image, source))
            except klpbuild.Refused as e:   # a negative control expects the refusal
                found.append(e.log)
            except klpbuild.Unsupported:
                pass
    entries = {_entry_of(p) for p in found} - {None}
    return ArchParts(image, sorted(entries))


ENTRY_KINDS = ("modules", "programs", "livepatches")   # what a bundle carries besides images


def _entry_of(path: Path) -> Optional[Path]:
    """The cache entry (<cache>/<kind>/<key>) that holds ``path``; None if it is in none
    that a bundle carries (an in-tree module is in the kernel's build dir: see STAND_IN)."""
    root = cache.root().resolve()
    path = path.resolve()
    if not path.is_relative_to(root):
        return None
    parts = path.relative_to(root).parts
    return root / parts[0] / parts[1] if parts[0] in ENTRY_KINDS and len(parts) > 2 else None


def _stage_image(image: imagemod.Image, into: Path, bundle_name: str, recipe: str) -> Path:
    """A copy of ``image``'s cache entry as a bundle carries it (hard links where it can):
    without a kbuild dir of its own, with the stand-in and a manifest that says so."""
    staged = into / "images" / image.dir.name
    kbuild_rel = _inside(image.kbuild_dir, image.dir)
    skip_top = Path(kbuild_rel).parts[0] if kbuild_rel else None
    for item in image.dir.iterdir():
        if item.name in (cache.COMPLETE, "manifest.json", skip_top):
            continue
        target = staged / item.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, target)
    stand_in = staged / STAND_IN
    stand_in.mkdir()
    for name in (".config", kernelbuild.STAMP):
        if (image.kbuild_dir / name).is_file():
            shutil.copy(image.kbuild_dir / name, stand_in / name)
    for ko in modules.in_tree(image).values():
        rel = ko.relative_to(image.kbuild_dir)
        (stand_in / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ko, stand_in / rel)
    manifest = json.loads((image.dir / "manifest.json").read_text())
    skip = klpbuild.unsupported_skip(image)
    manifest.update(kbuild_dir=STAND_IN, prebuilt={
        "bundle": bundle_name,
        "klp_build_skip": [skip.reason, skip.group] if skip else None,
        # What a test machine cannot tell (no kernel source there), for versions.json.
        "source": buildinfo.source(image, recipe)})
    (staged / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    cache.complete(staged)
    return staged


def _inside(path: Path, top: Path) -> Optional[str]:
    return str(path.relative_to(top)) if path.is_relative_to(top) else None


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def export(name: str, arches: Sequence[str], scenarios: Sequence, out: Path,
           mirror: Optional[str] = None) -> dict:
    """Write the bundle of image ``name`` for ``arches`` and ``scenarios`` to ``out`` (a
    .tar, or .tar.gz/.tgz/.tar.xz compressed); return its manifest."""
    return write(name, {a: collect(name, a, scenarios, mirror) for a in arches}, out)


def write(name: str, parts: Dict[str, ArchParts], out: Path) -> dict:
    """Write the bundle of image ``name``'s ``parts`` (by arch) to ``out``."""
    recipe = imagemod.Recipe.load(imagemod.recipe_path(name))
    manifest = {"format": FORMAT, "harness": harness_version(), "image": recipe.name,
                "arches": list(parts), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime()),
                "images": {}, "entries": [], "files": {}}
    staging = cache.root() / f".bundle-export-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        dirs = []
        for a, p in parts.items():
            staged = _stage_image(p.image, staging, out.name, name)
            manifest["images"][a] = {"key": p.image.dir.name,
                                     "base_key": imagemod.input_hash(recipe, a),
                                     "kernel": p.image.kernel_name}
            dirs += [staged] + p.entries
        for d in dirs:
            rel = f"{d.parent.name}/{d.name}"
            manifest["entries"].append(rel)
            manifest["files"].update({f"{rel}/{f}": v for f, v in cache.files_of(d).items()})
        _tar(out, manifest, dirs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _tar(out: Path, manifest: dict, dirs: List[Path]) -> None:
    """The tar, through a temporary file: a bundle is whole or not there."""
    mode = {".gz": "w:gz", ".tgz": "w:gz", ".xz": "w:xz"}.get(out.suffix, "w")
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(manifest, indent=1) + "\n").encode()
    with tarfile.open(tmp, mode, **({"compresslevel": 6} if mode == "w:gz" else {})) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
        for d in dirs:
            tar.add(d, f"{d.parent.name}/{d.name}")
    tmp.replace(out)


def load(path: Path, image: Optional[str] = None, arches: Sequence[str] = ()) -> dict:
    """Import the bundle at ``path`` into the cache; return its manifest. ``image`` and
    ``arches``: what the caller means to run, which the bundle must hold. A bundle of
    another harness version, image or arch, or one whose files differ from its manifest
    (a changed byte), is refused naming why, and leaves nothing in the cache."""
    with _open(path) as tar:
        first = tar.next()
        if first is None or first.name != MANIFEST:
            raise BundleError(f"{path}: not a klp-harness bundle (its first member is not "
                              f"{MANIFEST})")
        manifest = json.loads(tar.extractfile(first).read())
        refusal(manifest, image, arches)
        tmp = cache.root() / f".bundle-import-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _unpack(tar, tmp, manifest, path)
            _check(tmp, manifest, path)
            placed = _place(tmp, manifest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for arch, found in manifest["images"].items():
        if imagemod.Image.from_dir(cache.root() / "images" / found["key"]).prebuilt:
            prebuilt.record(manifest["image"], arch, found["base_key"], found["key"], path.name)
    progress(f"bundle {path.name}: {placed} of {len(manifest['entries'])} cache entries "
             "imported (the others were there already)")
    return manifest


def _open(path: Path) -> tarfile.TarFile:
    """The bundle's tar; a path that is none (a typo, a build job that made no bundle) is a
    BundleError naming it."""
    try:
        return tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as e:
        why = "no such file" if isinstance(e, FileNotFoundError) else f"not a tar file ({e})"
        raise BundleError(f"{path}: {why}: give a bundle written by `klp-harness bundle "
                          "export`") from None


def refusal(manifest: dict, image: Optional[str], arches: Sequence[str]) -> None:
    """A BundleError if this checkout cannot use the bundle of ``manifest``."""
    if manifest.get("format") != FORMAT:
        raise BundleError(f"the bundle is of format {manifest.get('format')}; this harness "
                          f"reads format {FORMAT}: export it again with this harness")
    if manifest["harness"] != harness_version():
        raise BundleError(f"the bundle was made by klp-harness {manifest['harness']}, this is "
                          f"{harness_version()}: export it with this version (its keys and "
                          "builds may differ)")
    if image is not None and imagemod.recipe_path(image).stem != manifest["image"]:
        raise BundleError(f"the bundle holds image {manifest['image']}, not {image}")
    missing = [a for a in arches if a not in manifest["images"]]
    if missing:
        raise BundleError(f"the bundle of image {manifest['image']} holds "
                          f"{', '.join(manifest['images'])}, not {', '.join(missing)}")
    recipe = imagemod.Recipe.load(imagemod.recipe_path(manifest["image"]))
    for arch, found in manifest["images"].items():
        if imagemod.input_hash(recipe, arch) != found["base_key"]:
            raise BundleError(f"the bundle's image {manifest['image']} for {arch} was made "
                              f"from another recipe, guest files or image builder than "
                              "this checkout's: export it from this checkout")


def _unpack(tar: tarfile.TarFile, into: Path, manifest: dict, path: Path) -> None:
    """Unpack the bundle's entries: only under the entries its manifest names, and only
    files, dirs and links that stay inside (tarfile's data filter)."""
    entries = set(manifest["entries"])
    for member in tar:
        if member.name == MANIFEST:
            continue
        top = "/".join(Path(member.name).parts[:2])
        if top not in entries:
            raise BundleError(f"{path}: {member.name} is not in an entry its manifest names")
        try:
            tar.extract(member, into, filter="data")
        except tarfile.FilterError as e:
            raise BundleError(f"{path}: {member.name}: {e}") from e


def _check(tmp: Path, manifest: dict, path: Path) -> None:
    """Every file as the manifest records it, and no other; and each entry's own record
    (its .complete, which lookups check) the same."""
    found: Dict[str, list] = {}
    for rel in manifest["entries"]:
        if not (tmp / rel).is_dir():
            raise BundleError(f"{path}: entry {rel} is missing from the bundle")
        found.update({f"{rel}/{f}": v for f, v in cache.files_of(tmp / rel).items()})
    _check_files(manifest["files"], found, path)   # first: a changed file is named
    for rel in manifest["entries"]:
        try:
            record = json.loads((tmp / rel / cache.COMPLETE).read_text()).get("files")
        except (OSError, ValueError):
            record = None
        prefix = rel + "/"
        if record != {n[len(prefix):]: v for n, v in found.items() if n.startswith(prefix)}:
            raise BundleError(f"{path}: {rel}/{cache.COMPLETE} does not record the entry's "
                              "files: the bundle is damaged; nothing was imported")


def _check_files(recorded: Dict[str, list], found: Dict[str, list], path: Path) -> None:
    for name in sorted(set(recorded) | set(found)):
        want, got = recorded.get(name), found.get(name)
        if want != got:
            why = ("is missing" if got is None else "is not in its manifest" if want is None
                   else f"differs from its manifest ({got[0]} bytes, sha256 {got[1][:12]}; "
                        f"recorded {want[0]} bytes, sha256 {str(want[1])[:12]})")
            raise BundleError(f"{path}: {name} {why}: the bundle is damaged; nothing was "
                              "imported")


def _place(tmp: Path, manifest: dict) -> int:
    """Rename each entry into the cache, unless the cache has it intact already; return
    how many were placed. Each rename is whole, so an interruption leaves whole entries."""
    placed = 0
    for rel in manifest["entries"]:
        final = cache.root() / rel
        with cache.locked(final.parent / f".{final.name}.lock"):
            if cache.intact(final):
                continue
            shutil.rmtree(final, ignore_errors=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).rename(final)
            placed += 1
    return placed
