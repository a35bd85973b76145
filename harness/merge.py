"""One report from many: the run dirs of a sharded run's shards joined into one dir, as if
one machine had run the whole selection (report.html, junit.xml, results.ktap,
summary.txt, versions.json, kcidb.json, outcomes.json and run.json, and each failure's
artifacts), written by report.py's own writers.

Refused, naming the run dir, before anything is written: a dir without the run's records;
a run that was interrupted; runs of another harness commit, image (its build) or
selection; shards of another N; a shard given twice or missing; shards whose cells do not
add up to the selection (split by other durations); a shard without an outcome for a
scenario it had to run. Nothing else makes a merge "green": its exit status is the run's.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import report, shard as shardmod
from .errors import HarnessError
from .outcome import Outcome
from .runrecord import RunRecord, cells_of, read_outcomes

FAILED, MACHINES = "failed", "machines"


class MergeError(HarnessError):
    """Run dirs that do not make one run; the message names the dir and why."""


@dataclass
class Part:
    """One run dir given to the merge: its records and outcomes."""
    dir: Path
    record: RunRecord
    outcomes: List[Outcome]

    @property
    def name(self) -> str:
        return f"{self.record.label} ({self.dir})"


def load(dirs: Sequence[Path]) -> List[Part]:
    parts = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise MergeError(f"{d}: no such run dir")
        record = RunRecord.read(d)
        outcomes, interrupted = read_outcomes(d)
        if interrupted:
            raise MergeError(f"{record.label} ({d}) was interrupted (Ctrl-C): its results are "
                             "partial; run that shard again")
        parts.append(Part(d, record, outcomes))
    return parts


def check(parts: List[Part]) -> None:
    """Every refusal of the module's doc, naming the run dir."""
    if not parts:
        raise MergeError("no run dir given")
    first = parts[0]
    for p in parts[1:]:
        for what, mine, theirs in (
                ("klp-harness", p.record.harness, first.record.harness),
                ("image", p.record.image, first.record.image),
                ("selection (sha256)", p.record.selection_sha256[:16],
                 first.record.selection_sha256[:16])):
            if mine != theirs:
                raise MergeError(f"{p.name} is of another {what}: {mine}, where {first.name} "
                                 f"is of {theirs}")
    _check_builds(parts)
    _check_shards(parts)
    shardmod.check_partition(first.record.selection,
                             {str(p.record.shard or "-"): p.record.cells for p in parts})
    for p in parts:
        ran = cells_of(p.outcomes)
        stray = sorted(set(ran) - set(p.record.cells))
        missing = sorted(set(p.record.reported) - set(ran))
        if stray:
            raise MergeError(f"{p.name} has an outcome of {stray[0]}, which is not its cell")
        if missing:
            raise MergeError(f"{p.name} has no outcome for {len(missing)} of its cells, the "
                             f"first {missing[0]}: the run stopped early, or an error came "
                             "before the scenario ran (see its log); run that shard again")


def _check_builds(parts: List[Part]) -> None:
    """The same image build (its cache key) on each arch, whichever shard made it."""
    seen: Dict[str, tuple] = {}
    for p in parts:
        for arch, d in report.images(p.dir).items():
            key = Path(d.get("image_dir", "")).name
            if arch in seen and seen[arch][0] != key:
                raise MergeError(f"{p.name} ran image {key} on {arch}, where "
                                 f"{seen[arch][1].name} ran {seen[arch][0]}: another build")
            seen.setdefault(arch, (key, p))


def _check_shards(parts: List[Part]) -> None:
    unsharded = [p for p in parts if p.record.shard is None]
    if unsharded and len(parts) > 1:
        raise MergeError(f"{unsharded[0].name} is not a shard (no --shard K/N): merge joins "
                         "the shards of one run")
    if unsharded:
        return
    total = parts[0].record.shard.total
    by_index: Dict[int, Part] = {}
    for p in parts:
        if p.record.shard.total != total:
            raise MergeError(f"{p.name} is one of {p.record.shard.total} shards, "
                             f"{parts[0].name} one of {total}")
        if p.record.shard.index in by_index:
            raise MergeError(f"shard {p.record.shard} is given twice: "
                             f"{by_index[p.record.shard.index].dir} and {p.dir}")
        by_index[p.record.shard.index] = p
    missing = [f"{k}/{total}" for k in range(1, total + 1) if k not in by_index]
    if missing:
        given = ", ".join(str(p.record.shard) for p in parts)
        raise MergeError(f"shard {', '.join(missing)} missing: given {given} of {total}")


def merge(dirs: Sequence[Path], out: Path, artifacts_url: Optional[str] = None):
    """Check the run dirs, then write their joined report into ``out`` (new, or empty);
    return (the merged outcomes, the summary table, the report page)."""
    parts = load(dirs)
    check(parts)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"-o {out}: the dir is not empty: give a new one")
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for p in sorted(parts, key=lambda p: p.record.shard.index if p.record.shard else 0):
        outcomes += _carry(p, out)
    first = parts[0].record
    order = {a: i for i, a in enumerate(first.arches)}
    outcomes.sort(key=lambda o: (order.get(o.arch, len(order)), o.scenario, o.run))
    runs = sorted(p.record.run_id for p in parts)
    RunRecord(first.harness, first.image, first.arches, first.selection, first.selection,
              sorted({c for p in parts for c in p.record.reported}), None,
              first.durations_sha256, first.repeat, first.front_end,
              "merge-" + hashlib.sha256(" ".join(runs).encode()).hexdigest()[:16],
              runs).write(out)
    table = report.summary(outcomes, first.repeat)
    return outcomes, table, report.write(out, outcomes, table, artifacts_url=artifacts_url)


def _carry(p: Part, out: Path) -> List[Outcome]:
    """``p``'s image records, failures' artifacts and guests' consoles into ``out``: the
    outcomes then point to their copies."""
    (out / "images").mkdir(exist_ok=True)
    for record in sorted((p.dir / "images").glob("*.json")):
        if not (out / "images" / record.name).exists():
            shutil.copy(record, out / "images" / record.name)
    top = p.dir.resolve()
    for o in p.outcomes:
        kept = Path(o.artifacts).resolve() if o.artifacts else None
        if kept is None or not kept.is_relative_to(top) or not kept.is_dir():
            continue
        target = out / kept.relative_to(top)
        if target.exists():
            raise MergeError(f"{p.name}: {target.relative_to(out)} came from another shard too")
        shutil.copytree(kept, target)
        o.artifacts = str(target)
    if (p.dir / MACHINES).is_dir():   # every guest's console, per shard
        label = f"shard-{p.record.shard.index}" if p.record.shard else "run"
        shutil.copytree(p.dir / MACHINES, out / MACHINES / label, symlinks=True)
    return p.outcomes
