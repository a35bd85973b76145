"""Debian packages of any architecture, unpacked into a directory without emulation.

mmdebstrap's ``extract`` variant downloads the named packages with their dependencies and
unpacks them (no maintainer scripts run), for a foreign architecture as easily as for the
host's own.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

from . import hosttools, phases
from .errors import BuildError
from .log import progress


def extract(packages: Sequence[str], suite: str, debian_arch: str, mirror: str,
            dest: Path, log: Path) -> Dict[str, str]:
    """Unpack ``packages`` (and their dependencies) of ``debian_arch`` into ``dest``; return
    the version of each package unpacked (name -> version), for the record of a run."""
    hosttools.require("mmdebstrap", "mmdebstrap", "to fetch Debian packages")
    progress(f"fetching {len(packages)} Debian package(s) for {debian_arch} from {suite}: "
             + ", ".join(Path(p).name if p.startswith("/") else p for p in packages))
    # Local .deb files each in an --include of their own (mmdebstrap takes a value with a
    # slash as one path); names together.
    files = [p for p in packages if p.startswith("/")]
    names = [from_suite(p, suite) for p in packages if not p.startswith("/")]
    cmd = ["mmdebstrap", "--variant=extract", f"--architectures={debian_arch}",
           *(f"--include={f}" for f in files),
           *([f"--include={','.join(names)}"] if names else []),
           "--skip=cleanup/apt/cache",   # the downloaded .debs name their versions
           base_suite(suite), str(dest), *sources(suite, mirror)]
    mmdebstrap(cmd, log, f"fetching {', '.join(packages)} ({suite}, {debian_arch})")
    versions = {}
    archives = dest / "var/cache/apt/archives"
    for deb in archives.glob("*.deb"):   # name_version_arch.deb, the epoch's colon as %3a
        name, version, _ = deb.name.split("_")
        versions[name] = version.replace("%3a", ":")
    for path in files:   # local files are unpacked from where they are
        fields = deb_fields(path)
        versions[fields["Package"]] = fields["Version"]
    shutil.rmtree(archives, ignore_errors=True)
    return versions


def mmdebstrap(cmd: List[str], log: Path, what: str) -> None:
    """Run an mmdebstrap command line, its output appended to ``log``; a failure is a
    BuildError saying ``what`` with the log's last lines."""
    with open(log, "a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        result = phases.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-15:])
        raise BuildError(what, log, tail)


def from_suite(package: str, suite: str) -> str:
    """``package`` as apt is to take it: from a backports suite (``pkg/trixie-backports``)
    where the release itself has the same name (linux-image-amd64), unless a version
    (``=``), a suite (``/``) or a local file is given already."""
    if suite == base_suite(suite) or any(c in package for c in "=/"):
        return package
    return f"{package}/{suite}"


def deb_fields(path: str) -> Dict[str, str]:
    """A .deb file's Package, Version and Architecture (dpkg-deb)."""
    names = ["Package", "Version", "Architecture"]
    result = subprocess.run(["dpkg-deb", "--field", path, *names], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"reading {path} with dpkg-deb: {result.stderr.strip()}")
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return {n: fields.get(n, "") for n in names}


def base_suite(suite: str) -> str:
    """The release a suite belongs to: "trixie" for "trixie-backports"."""
    return suite.split("-", 1)[0]


def sources(suite: str, mirror: str) -> List[str]:
    """apt source lines for ``suite``. A backports suite holds only the backported packages:
    their dependencies come from the release it belongs to, so both are listed (apt takes
    a package that only backports has from there, and everything else from the release)."""
    lines = [f"deb {mirror} {base_suite(suite)} main"]
    if suite != base_suite(suite):
        lines.append(f"deb {mirror} {suite} main")
    return lines


def host_arch() -> str:
    """This host's Debian architecture (architecture-independent packages come with it)."""
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
