"""Livepatches built from source patches by the kernel's own ``scripts/livepatch/klp-build``.

klp-build (Linux 6.19, x86_64 only as of 7.3) builds the original kernel with
``-ffunction-sections -fdata-sections``, applies the patches, rebuilds, diffs the objects
with ``objtool klp diff`` and links a livepatch module. It works in-tree only (no ``O=``),
one run per tree at a time, and a run that starts at step 1 begins with ``make clean``.
So each image gets a *workspace* in the cache: a copy of its kernel source with the
image's ``.config``, keyed by the image's kernel build. The first run builds the original
kernel there and keeps it (``-T``: ``klp-tmp/1-orig``); every later patch restarts at step
2 (``-S 2``) and costs only the patched rebuild and the diff. Each livepatch (and each
refusal: the same inputs are refused again) is cached by a hash of the workspace and the
patches.

The livepatch is loaded into the image's own kernel, built with the same source, config
and compiler (function sections change where code is placed, not what a function is).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import arch as archmod
from . import cache, hosttools, kernelbuild, kernelsource, klporig, modules, phases
from . import progress as ticker
from .errors import HarnessError
from .image import Image
from .log import progress
from .skips import Skip

SCRIPT = "scripts/livepatch/klp-build"
# Module names klp-build accepts unchanged (it turns others into '-', and cuts at 55).
NAME = re.compile(r"[a-z0-9_]{1,55}")


@dataclass(frozen=True)
class LivepatchSource:
    """A livepatch to build: its module name, the patches (applied in order) and whether
    it replaces the livepatches before it (klp-build's default; --no-replace if not)."""
    name: str
    patches: Tuple[Path, ...]
    replace: bool = True
    # The scenario file and line that name it (`livepatches.<name>`), for errors about it;
    # not part of what is built, so two scenarios naming the same patches share one.
    declared: Optional[Tuple[Path, Optional[int]]] = field(default=None, compare=False)


class Unsupported(HarnessError):
    """The image's kernel or arch cannot run klp-build (one line: why)."""


class Refused(HarnessError):
    """klp-build did not make a livepatch of these patches; the message is its reason."""

    def __init__(self, source: LivepatchSource, reason: str, log: Optional[Path] = None):
        self.source, self.reason, self.log = source, reason, log
        patches = ", ".join(p.name for p in source.patches)
        super().__init__(f"klp-build refused {patches} (livepatch {source.name}): {reason}"
                         + (f"\nklp-build's log: {log}" if log else ""))


def source_tree(image: Image) -> Optional[Path]:
    """The kernel source the image's kernel was built from (its build dir's ``source``
    link, which Kbuild makes for O= builds; the build dir itself for an in-tree build);
    None for a distribution kernel."""
    if klporig.is_shared(image.kbuild_dir):
        return image.kbuild_dir
    link = image.kbuild_dir / "source"
    return link.resolve() if link.is_symlink() else None


def unsupported(image: Image) -> Optional[str]:
    """Why klp-build cannot build livepatches for ``image``, in one line; None if it can."""
    skip = unsupported_skip(image)
    return skip.reason if skip else None


def unsupported_skip(image: Image) -> Optional[Skip]:
    """unsupported's answer with its cause: the skip of a scenario that builds livepatches."""
    if image.prebuilt:   # from a bundle: as the build machine answered (it has the tree)
        skip = image.prebuilt.get("klp_build_skip")
        return Skip(*skip) if skip else None
    tree = source_tree(image)
    if tree is None:
        return Skip(f"image {image.name} boots a kernel built elsewhere; klp-build needs the "
                    "kernel built from its source tree (an image built from source, e.g. "
                    "linux-7.3)", "need klp-build, which needs an image built from source")
    version = kernelsource.makefile_version((tree / "Makefile").read_text())
    if not (tree / SCRIPT).is_file():
        return Skip(f"Linux {version} (image {image.name}) has no klp-build: it came with "
                    "Linux 6.19 (scripts/livepatch/klp-build)",
                    f"need klp-build, which Linux {version} has not (it came with 6.19)")
    if image.config_symbols().get("CONFIG_HAVE_KLP_BUILD") != "y":
        return Skip(f"klp-build does not support {image.arch} in Linux {version} (the arch "
                    "does not select HAVE_KLP_BUILD; as of 7.3 only x86_64 does)",
                    f"need klp-build, which Linux {version} has only where the arch selects "
                    "HAVE_KLP_BUILD (x86_64 as of 7.3)")
    if archmod.get(image.arch).cross_compile():
        return Skip(f"klp-build does not cross-compile: building {image.arch} livepatches "
                    f"needs a {image.arch} host",
                    "need klp-build, which does not cross-compile (a host of the arch)")
    if image.config_symbols().get("CONFIG_KLP_BUILD") != "y":
        return Skip(f"the kernel config of image {image.name} lacks CONFIG_KLP_BUILD",
                    f"need klp-build, which image {image.name}'s kernel config lacks "
                    "(CONFIG_KLP_BUILD)")
    return None


def default_name(patches: Sequence[Path]) -> str:
    """livepatch_<first patch's name>, as klp-build names its output (with _ for -)."""
    stem = re.sub(r"[^a-z0-9_]+", "_", Path(patches[0]).stem.lower())
    return f"livepatch_{stem}"[:55]


def check_patches(patches: Iterable[Path]) -> None:
    """Each patch is a file holding a unified diff that klp-build can take (before anything
    is built)."""
    for patch in patches:
        if not Path(patch).is_file():
            raise HarnessError(f"patch {patch}: no such file")
        text = Path(patch).read_text(errors="replace")
        if not re.search(r"^--- \S", text, re.M) or not re.search(r"^\+\+\+ \S", text, re.M):
            raise HarnessError(f"patch {patch}: not a unified diff (no '--- a/...' and "
                               "'+++ b/...' lines): make it with git diff or diff -u")
        created = new_files(text)
        if created:
            raise HarnessError(
                f"patch {patch} creates {', '.join(created)}: klp-build cannot take a patch "
                "that adds a file (its refresh_patch copies the original of each file the "
                "patch changes, and a new file has none; nor would a new object have an "
                "original to diff against): put the new code into an existing file, e.g. "
                "the one whose function calls it")


# How a diff marks a file it creates: `--- /dev/null` (git diff), or the epoch as the old
# file's date (diff -N); klp-build's get_patch_input_files drops such files the same way.
NEW_FILE = re.compile(r"^--- (/dev/null|\S+\s+(1969-12-31|1970-01-01)\b)")


def new_files(patch_text: str) -> List[str]:
    """The files a patch creates (by their `+++` name, without its a/ or b/ prefix)."""
    found, creating = [], False
    for line in patch_text.splitlines():
        if line.startswith("--- "):
            creating = bool(NEW_FILE.match(line))
        elif line.startswith("+++ ") and creating:
            found.append(_patch_path(line))
            creating = False
    return found


def _patch_path(line: str) -> str:
    """The file a `---`/`+++` line names, without its first directory (a/, b/)."""
    return re.sub(r"^[^/]*/", "", line[4:].split("\t")[0].strip())


def build(image: Image, source: LivepatchSource) -> Path:
    """The ``.ko`` klp-build makes of ``source`` for ``image``, built now if not cached;
    Unsupported or Refused (with klp-build's reason) if there is none."""
    reason = unsupported(image)
    if reason:
        raise Unsupported(reason)
    check_patches(source.patches)
    if not image.prebuilt:   # a bundle's image: its livepatches are looked up, not built
        _require_tools()
    space = Workspace(image)
    h = cache.InputHash("livepatch").text("workspace", space.key).text("name", source.name)
    h.text("replace", str(source.replace))
    for i, patch in enumerate(source.patches):
        h.file(f"patch{i}", patch)
    what = f"livepatch {source.name} from {', '.join(p.name for p in source.patches)}"
    out = cache.entry("livepatches", f"{space.name}-{source.name}-{h.hexdigest()}",
                      lambda tmp: space.run(source, tmp), f"{what} for {image.name}",
                      checked=True, unbuildable=modules.unbuildable(image))
    log = out / "klp-build.log"
    if (out / "refused").exists():   # the reason is read anew: its reading may improve
        raise Refused(source, refusal(log.read_text(errors="replace"), source.patches), log)
    return out / f"{source.name}.ko"


def forget(image: Image) -> None:
    """Remove the workspace and livepatches of an image made for one commit (bisect)."""
    name = Workspace(image).name
    for kind in ("klp-build", "livepatches"):
        for entry in (cache.root() / kind).glob(f"{name}*"):
            shutil.rmtree(entry, ignore_errors=True)


def _require_tools() -> None:
    for program, package in hosttools.KLP_BUILD.items():
        hosttools.require(program, package, "to build livepatches with klp-build")


class Workspace:
    """A copy of an image's kernel source where klp-build runs, with the original build
    kept between runs; under ``root`` (default: the cache's klp-build/). Where the image's
    kernel was built as klp-build's original build (klporig), the copy is of that built
    tree, and the original build is not run again."""

    def __init__(self, image: Image, root: Optional[Path] = None):
        self.image = image
        self.root = Path(root) if root else cache.root() / "klp-build"
        # What the key reads, a bundle's image keeps in its stand-in kbuild dir (bundle.py).
        stamp = image.kbuild_dir / kernelbuild.STAMP
        self.key = (cache.InputHash("klp-build-workspace")
                    .text("kernel", stamp.read_text() if stamp.exists() else image.kernel_release)
                    .file("config", image.kbuild_dir / ".config").hexdigest())
        self.name = f"{image.name}-{image.arch}-{self.key}"
        self.dir = self.root / self.name

    def _make(self) -> None:
        """The workspace, made (a copy of the source tree) if need be, through a
        temporary dir renamed into place. A run that died without klp-build's own clean-up
        (the patches still applied) left a marker: such a tree is made anew, never
        trusted."""
        if (self.dir / "running").exists():
            progress(f"klp-build workspace {self.dir}: a run died in it; making it anew")
            shutil.rmtree(self.dir)
        if self.dir.exists():
            return
        tree, tmp = source_tree(self.image), self.dir.with_name(f".{self.name}.tmp")
        shared = klporig.is_shared(self.image.kbuild_dir)
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "tree").mkdir(parents=True)
        started = time.monotonic()
        kbuild = self.image.kbuild_dir
        with cache.locked(kbuild.with_name(kbuild.name + ".lock")):   # no build under way
            copied = kernelsource.copy_tree(tree, tmp / "tree")
        if not copied:
            raise HarnessError(f"copying the kernel source {tree} to {tmp / 'tree'} failed")
        if shared:
            try:
                klporig.settle_copy(kbuild, tmp / "tree", archmod.get(self.image.arch))
            except RuntimeError as e:
                raise HarnessError(f"klp-build workspace for {self.image.name}: {e}")
            klporig.seed(tmp / "tree")
        else:
            shutil.copy(self.image.kbuild_dir / ".config", tmp / "tree" / ".config")
        tmp.rename(self.dir)
        progress(f"klp-build workspace for {self.image.name} {self.image.arch}: the "
                       + ("image's kernel build (klp-build's original build)" if shared
                          else "kernel source")
                       + f" copied to {self.dir} in {time.monotonic() - started:.0f}s")

    def run(self, source: LivepatchSource, out: Path) -> None:
        """Run klp-build for ``source``; the module (or a `refused` mark) goes to ``out``."""
        with cache.locked(self.root / f".{self.name}.lock"), phases.phase("klp-build"):
            self._make()
            tree = self.dir / "tree"
            orig_done = (tree / "klp-tmp/1-orig/.complete").exists()
            ko = out / f"{source.name}.ko"
            cmd = ["bash", SCRIPT, "-T", kernelbuild.jobs(), "-o", str(ko)]
            cmd += [] if source.replace else ["--no-replace"]
            cmd += ["-S", "2"] if orig_done else []
            cmd += [str(Path(p).resolve()) for p in source.patches]
            log = out / "klp-build.log"
            step = "patched build" if orig_done else "original build"
            ticker = _Progress(f"klp-build {source.name}", tree, self.image.kbuild_dir,
                               orig_done)
            (self.dir / "running").touch()
            try:
                rc = _call(cmd, tree, log, ticker)
            finally:   # klp-build has reverted the patches itself (its EXIT/INT trap)
                (self.dir / "running").unlink()
            if rc != 0 or not ko.exists():
                reason = refusal(log.read_text(errors="replace"), source.patches)
                if not reason:   # not klp-build's own verdict: not cached as one
                    raise HarnessError(f"klp-build stopped without saying why ({step}, exit "
                                       f"status {rc}); its log: {_keep(log, self.name)}")
                (out / "refused").write_text(reason + "\n")


def _call(cmd: List[str], tree: Path, log: Path, ticker: "_Progress") -> int:
    env = kernelbuild.c_locale_env()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = phases.Popen(cmd, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", env=env)
        ticker.start()
        try:
            for line in proc.stdout:
                f.write(line)
                ticker.line(line.rstrip("\n"))
            return proc.wait()
        except BaseException:   # Ctrl-C: klp-build got it too; let its trap revert
            proc.wait()
            raise
        finally:
            ticker.stop()


def _keep(log: Path, name: str) -> Path:
    kept = cache.root() / "failed-builds" / f"klp-build-{name}.log"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, kept)
    return kept


# klp-build's own steps, as its status() prints them.
STEPS = ("Validating patch(es)", "Building original kernel", "Copying original object files",
         "Fixing patch(es)", "Building patched kernel", "Copying patched object files",
         "Generating original checksums", "Generating patched checksums", "Diffing objects",
         "Building patch module")


class _Progress(ticker.Ticker):
    """klp-build's step lines as they come, and during the original build (the one long
    step) a line every ticker.EVERY seconds with objects built so far out of those the
    image's own build of the same config has."""

    def __init__(self, what: str, tree: Path, kbuild_dir: Path, orig_done: bool):
        super().__init__(what)
        self.tree, self.kbuild_dir = tree, kbuild_dir
        self.step, self.step_started = "starting", self.started
        self._total = 0
        self.say("restarting at the patched build (the original build is kept)" if orig_done
                 else "first run for this image: the original kernel is built once, with "
                      "function sections")

    def line(self, line: str) -> None:
        if any(line.startswith(s) for s in STEPS) or line == "SUCCESS":
            now = time.monotonic()
            self.say(f"{line} (at {now - self.started:.0f}s)")
            self.step, self.step_started = line, now

    def tick(self) -> Optional[str]:
        if not self.step.startswith("Building original kernel"):
            return None
        if not self._total:
            self._total = _objects(self.kbuild_dir)
        done = _objects(self.tree)
        elapsed = time.monotonic() - self.step_started
        return (f"original kernel {done} of ~{self._total} objects, {elapsed:.0f}s"
                f"{ticker.time_left(done, self._total, elapsed)}")


def _objects(top: Path) -> int:
    """Object files of a kernel build (not klp-build's copies, not tools/)."""
    count = 0
    for here, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("klp-tmp", "tools", ".git")]
        count += sum(f.endswith(".o") for f in files)
    return count


# -- klp-build's reasons ------------------------------------------------------------------

def refusal(log: str, patches: Sequence[Path]) -> str:
    """klp-build's reason for not making a livepatch, from its output; "" if it gave none.
    Its own `error: klp-build: ...` line, with what led to it: the rejected hunks of a
    patch that does not apply, objtool's complaints, the compiler's errors."""
    lines = log.splitlines()
    final = [l[len("error: klp-build: "):] for l in lines if l.startswith("error: klp-build: ")]
    if not final:
        return ""
    # A die() in a subshell is echoed by the ERR trap as "line N: '<the subshell's code>'":
    # the die's own words came first.
    said = next((l for l in final if not ERR_TRAP.match(l)), None)
    if said is None:   # only the ERR trap spoke: a command failed without a die() of its own
        return _failed_command(final[0], lines)   # the innermost: it failed first
    m = re.match(r"(.*) did not apply$", said)
    if m:
        return _not_applied(Path(m.group(1)), lines, patches)
    context = [l.strip() for l in lines
               if re.match(r"\s*objtool\b|.*\berror:|.*\bwarning: objtool", l)
               and not l.startswith("error: klp-build: ")]
    context = list(dict.fromkeys(context))[:12]
    return "\n".join([said] + context)


# klp-build's ERR trap: `die "line ${BASH_LINENO[0]}: '$BASH_COMMAND'"` (the command may
# span lines; then the quote closes on a later one).
ERR_TRAP = re.compile(r"line (\d+): '(.*?)'?$")


def _failed_command(trap: str, lines: List[str]) -> str:
    """The ERR trap's echo in words, with the output just before it: what the failing
    command itself said, if anything (``cp: missing file operand``)."""
    m = ERR_TRAP.match(trap)
    words = f"klp-build failed running {m.group(2)} (its line {m.group(1)}) without saying why"
    end = lines.index(f"error: klp-build: {trap}")
    said = [l.strip() for l in lines[max(0, end - 3):end] if l.strip()]
    return "\n".join([words] + (["its last output:"] + said if said else []))


def _not_applied(patch: Path, lines: List[str], patches: Sequence[Path]) -> str:
    """Which hunks of ``patch`` were rejected, by file, with each hunk's header."""
    original = next((p for p in patches if Path(p).resolve() == patch.resolve()
                     or Path(p).name == patch.name), patch)
    hunks = hunk_headers(Path(original)) if Path(original).is_file() else {}
    found, current = [], None
    for line in lines:
        m = re.match(r"(?:checking|patching) file (\S+)", line)
        if m:
            current = m.group(1)
        m = re.match(r"Hunk #(\d+) FAILED at (\d+)", line)
        if m and current:
            n = int(m.group(1))
            header = hunks.get(current, [])[n - 1] if n <= len(hunks.get(current, [])) else ""
            found.append(f"hunk #{n} of {current} ({header}) does not match the source "
                         f"(tried at line {m.group(2)})")
        m = re.match(r"can't find file to patch|No file to patch", line)
        if m:
            found.append("a file it patches is not in the kernel tree")
    return f"{original} does not apply to the image's kernel source:\n" + \
        "\n".join(found or [l for l in lines if "FAILED" in l or "malformed" in l][:10])


def hunk_headers(patch: Path) -> Dict[str, List[str]]:
    """file -> the @@ headers of its hunks, in order, as written in ``patch``."""
    found: Dict[str, List[str]] = {}
    current = None
    for line in patch.read_text(errors="replace").splitlines():
        if line.startswith("+++ "):
            current = _patch_path(line)
            found.setdefault(current, [])
        elif line.startswith("@@") and current is not None:
            found[current].append(line.split(" @@")[0] + " @@")
    return found
