"""Shards: one run's cells split among the N jobs of a CI engine, each job running its share
(``--shard K/N``, or the engine's own variables), by one rule for ``klp-harness run`` and
pytest alike.

A cell is a scenario on an arch, named as its test id (``parity/livepatch/x[x86_64]``,
repeat.item_id); under pytest another test is a cell by its node id. All of a cell's
``--repeat`` runs stay in its shard (--until-fail stops a cell where it runs).

The rule: every shard computes the whole split from the same selection and durations, and
keeps its part. Longest expected first, each onto the shard with the least expected work
so far; ties go by the cell's name, then to the lowest shard. Expected durations come from
the shipped file (``scenarios/shard-durations.json``, measured from a real run), overlaid
by ``--shard-durations FILE`` (such a file, or a previous run's ``outcomes.json``, or its
run dir); a cell in neither counts as the median of the selection's known cells. No cell
counts less than MIN_SECONDS, so with N at most the number of cells no shard is empty:
a shard gets nothing only when N exceeds the cells (it says so, and exits 0: a CI engine
runs a fixed number of jobs, and the merge still checks that the shards add up to the
selection). A job's own time records (the cache's durations.json, which differ from
machine to machine) are not used: the split must be the same on every job.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from . import repeat
from .errors import HarnessError
from .paths import SHARD_DURATIONS

MIN_SECONDS = 0.5        # what any cell costs (its applicability check, its record)
DEFAULT_SECONDS = 10.0   # a cell's expected time when no cell of the selection is known
TOTAL_ENV = "KLP_HARNESS_SHARD_TOTAL"   # N beside a Kubernetes Indexed Job's index
ENGINE_VARIABLES = ("CI_NODE_INDEX", "CI_NODE_TOTAL", "JOB_COMPLETION_INDEX", TOTAL_ENV)


class ShardError(HarnessError):
    """A shard asked for wrongly (K/N, the engine's variables, a durations file), or shards
    that do not add up to their selection; the message names the input."""


@dataclass(frozen=True)
class Shard:
    index: int   # 1..total, as GitLab's CI_NODE_INDEX
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse(text: str, what: str = "--shard") -> Shard:
    """``K/N`` with 1 <= K <= N; else a ShardError saying what ``what`` takes."""
    k, slash, n = str(text).strip().partition("/")
    if not (slash and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ShardError(f"{what} takes K/N, shard K of N with 1 <= K <= N (as GitLab's "
                         f"CI_NODE_INDEX/CI_NODE_TOTAL), got {text!r}")
    return Shard(int(k), int(n))


def _whole(environ: Mapping[str, str], name: str, least: int) -> int:
    text = environ.get(name, "")
    if not text.strip().isdigit() or int(text) < least:
        raise ShardError(f"${name}={text!r}: a whole number of at least {least} expected")
    return int(text)


def from_environment(total: Optional[int] = None,
                     environ: Mapping[str, str] = os.environ) -> Optional[Shard]:
    """The shard the CI engine's variables name: GitLab's CI_NODE_INDEX (1-based) and
    CI_NODE_TOTAL (``parallel: N``), or a Kubernetes Indexed Job's JOB_COMPLETION_INDEX
    (0-based) with N from ``total`` (--shard-total) or $KLP_HARNESS_SHARD_TOTAL; None if
    none is set. An index without its N is an error: each job would run everything."""
    if "CI_NODE_INDEX" in environ:
        if "CI_NODE_TOTAL" not in environ:
            raise ShardError("$CI_NODE_INDEX is set without $CI_NODE_TOTAL")
        index, n = _whole(environ, "CI_NODE_INDEX", 1), _whole(environ, "CI_NODE_TOTAL", 1)
        return parse(f"{index}/{n}", "$CI_NODE_INDEX/$CI_NODE_TOTAL")
    if "JOB_COMPLETION_INDEX" in environ:
        index = _whole(environ, "JOB_COMPLETION_INDEX", 0)
        n = total or (_whole(environ, TOTAL_ENV, 1) if TOTAL_ENV in environ else None)
        if n is None:
            raise ShardError(f"$JOB_COMPLETION_INDEX={index} (a Kubernetes Indexed Job) "
                             f"needs the number of shards: give --shard-total N (the Job's "
                             f"completions) or ${TOTAL_ENV}")
        return parse(f"{index + 1}/{n}", "$JOB_COMPLETION_INDEX + 1 / N")
    if total is not None:
        raise ShardError(f"--shard-total {total} without a shard index: it goes with "
                         "$JOB_COMPLETION_INDEX (a Kubernetes Indexed Job); else give "
                         "--shard K/N")
    return None


def read_durations(path: Path) -> Dict[str, float]:
    """Cell -> seconds from ``path``: a durations file ({"cells": {cell: seconds}}), a run's
    outcomes.json ({"outcomes": [...]}: a repeated cell's median), or a run dir holding
    one. Anything else is a ShardError naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "outcomes.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ShardError(f"--shard-durations {path}: not readable as JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("cells"), dict):
        found = data["cells"]
    elif isinstance(data, dict) and isinstance(data.get("outcomes"), list):
        found = dict(repeat.median_times(
            (repeat.item_id(o["klp_scenario"], o["klp_arch"]), float(o["klp_seconds"]))
            for o in data["outcomes"] if "klp_scenario" in o))
    else:
        raise ShardError(f"--shard-durations {path}: expected {{\"cells\": {{cell: "
                         "seconds}}}} or a run's outcomes.json")
    bad = [k for k, v in found.items() if not isinstance(v, (int, float)) or v < 0]
    if bad:
        raise ShardError(f"--shard-durations {path}: {bad[0]!r} has no number of seconds")
    return {k: float(v) for k, v in found.items()}


@dataclass(frozen=True)
class Plan:
    """Which shard this job is (None: it runs the whole selection) and the durations the
    split goes by (the same on every job of a run, or the shards do not add up)."""
    shard: Optional[Shard] = None
    durations: Dict[str, float] = field(default_factory=dict)

    @property
    def durations_sha256(self) -> str:
        text = json.dumps(self.durations, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def split(self, cells: Iterable[str]) -> List[List[str]]:
        """Every shard's cells (shard K is [K-1]), each sorted."""
        return split(cells, self.shard.total if self.shard else 1, self.durations)

    def mine(self, cells: Iterable[str]) -> List[str]:
        """This job's cells of the selection ``cells`` (all of them without a shard)."""
        parts = self.split(cells)
        return parts[self.shard.index - 1] if self.shard else parts[0]


def plan(flag: Optional[Shard] = None, total: Optional[int] = None,
         durations: Optional[Path] = None, environ: Mapping[str, str] = os.environ) -> Plan:
    """The plan of the options --shard, --shard-total and --shard-durations: the flag wins
    over the engine's variables."""
    if flag is not None and total is not None and total != flag.total:
        raise ShardError(f"--shard {flag} and --shard-total {total} disagree")
    shard = flag or from_environment(total, environ)
    known = read_durations(SHARD_DURATIONS) if SHARD_DURATIONS.is_file() else {}
    if durations is not None:
        known.update(read_durations(durations))
    return Plan(shard, known)


def split(cells: Iterable[str], total: int, durations: Mapping[str, float]) -> List[List[str]]:
    """``cells`` into ``total`` shards: longest expected first onto the least loaded shard
    (ties: by name, then the lowest shard); a duplicate cell counts once."""
    names = sorted(set(cells))
    known = [durations[c] for c in names if c in durations]
    default = statistics.median(known) if known else DEFAULT_SECONDS
    cost = {c: max(MIN_SECONDS, durations.get(c, default)) for c in names}
    loads, parts = [0.0] * total, [[] for _ in range(total)]
    for cell in sorted(names, key=lambda c: (-cost[c], c)):
        k = min(range(total), key=lambda n: (loads[n], n))
        parts[k].append(cell)
        loads[k] += cost[cell]
    return [sorted(p) for p in parts]


def check_partition(selection: Iterable[str], parts: Mapping[str, Sequence[str]]) -> None:
    """The shards' cells (by the shard's name) are exactly ``selection``, each in one shard;
    else a ShardError naming a cell in two shards, a cell in none, or one not selected."""
    wanted, seen = set(selection), {}
    for name, cells in parts.items():
        for cell in cells:
            if cell in seen:
                raise ShardError(f"cell {cell} is in shard {seen[cell]} and in shard {name}: "
                                 "the shards were split differently (other --shard-durations?)")
            if cell not in wanted:
                raise ShardError(f"cell {cell} of shard {name} is not in the selection")
            seen[cell] = name
    missing = sorted(wanted - set(seen))
    if missing:
        raise ShardError(f"{len(missing)} cell(s) of the selection are in no shard, the first "
                         f"{missing[0]}: the shards were split differently")


def cell(scenario_id: str, arch: str) -> str:
    """A scenario's cell on ``arch``: its test id (every run of it, with --repeat)."""
    return repeat.item_id(scenario_id, arch)
