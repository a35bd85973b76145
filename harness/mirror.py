"""Which Debian mirror to fetch packages from: the host's own apt configuration, or an override.

The harness never names a mirror itself. ``KLP_HARNESS_MIRROR`` (or ``--mirror``) overrides;
otherwise the first apt source of type ``deb`` that serves the main Debian archive is taken.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable, List, Optional

from .errors import HarnessError

ENV = "KLP_HARNESS_MIRROR"


def _deb822_entries(text: str) -> Iterable[dict]:
    """Paragraphs of a deb822 .sources file as dicts (keys lower-cased)."""
    entry: dict = {}
    key = None
    for raw in text.splitlines() + [""]:
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if not line:
            if entry:
                yield entry
            entry, key = {}, None
        elif line[0] in " \t" and key:
            entry[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            entry[key] = value.strip()


def _one_line_entries(text: str) -> Iterable[dict]:
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "deb":
            rest = words[1:]
            if rest[0].startswith("["):  # options such as [arch=amd64 signed-by=...]
                while rest and not rest[0].endswith("]"):
                    rest = rest[1:]
                rest = rest[1:]
            if len(rest) >= 2:
                yield {"types": "deb", "uris": rest[0], "suites": rest[1]}


def candidates(root: str = "/") -> List[str]:
    """Mirror URIs of the host's apt sources that serve the main archive, in file order."""
    found: List[str] = []
    etc = Path(root, "etc/apt")
    files = [etc / "sources.list"] + sorted(Path(p) for p in glob.glob(str(etc / "sources.list.d/*")))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            entries = _deb822_entries(text)
        elif path.suffix == ".list" or path.name == "sources.list":
            entries = _one_line_entries(text)
        else:
            continue
        for entry in entries:
            if "deb" not in entry.get("types", "").split():
                continue
            if entry.get("enabled", "yes").lower() == "no":
                continue
            suites = entry.get("suites", "").split()
            # The main archive carries plain suite names (bookworm); security and
            # updates suites live elsewhere or carry a suffix.
            if not any("-" not in s and "/" not in s for s in suites):
                continue
            for uri in entry.get("uris", "").split():
                if uri not in found:
                    found.append(uri)
    return found


def debian_mirror(override: Optional[str] = None, root: str = "/") -> str:
    if override:
        return override
    if os.environ.get(ENV):
        return os.environ[ENV]
    found = candidates(root)
    if not found:
        raise HarnessError(
            "no Debian mirror found in this host's apt configuration (/etc/apt/sources.list*): "
            f"set {ENV}=<mirror URL> or pass --mirror")
    return found[0]
