"""What a run's dir records so that `klp-harness merge` can join it with others:

- ``run.json``: what the run was: the harness (version and commit), the image and arches,
  the selection (every cell of the unsharded run, sorted; and its sha256), its shard K/N
  and the cells that shard ran, and the durations the split went by. Written as the run
  starts, so that a shard with nothing to run has one too.
- ``outcomes.json``: every outcome, as ``Outcome.to_properties`` writes it (so a merge
  rebuilds them field by field), artifacts relative to the run dir (a CI engine moves
  it), and whether the run was interrupted.

Both front ends write them (``klp-harness run``; pytest's controller under xdist).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import cache
from .errors import HarnessError
from .outcome import Outcome
from .shard import Shard, cell

RUN, OUTCOMES = "run.json", "outcomes.json"
FORMAT = 1


class RunDirError(HarnessError):
    """A run dir without the records a merge needs, or with unreadable ones."""


@dataclass
class RunRecord:
    harness: str                 # report.harness_version(): version and commit
    image: str
    arches: List[str]
    selection: List[str]         # every cell of the unsharded run (shard.cell names)
    cells: List[str]             # those this run (its shard) had to run
    reported: List[str]          # of those, the ones that report an outcome: scenarios
    shard: Optional[Shard] = None
    durations_sha256: str = ""   # what the split went by (shard.Plan)
    repeat: int = 1
    front_end: str = "run"       # "run" or "pytest"
    run_id: str = ""
    merged_from: List[str] = field(default_factory=list)   # a merge's shards' run ids

    def __post_init__(self):
        self.selection, self.cells = sorted(set(self.selection)), sorted(set(self.cells))
        self.reported = sorted(set(self.reported))

    @property
    def selection_sha256(self) -> str:
        return hashlib.sha256("\n".join(self.selection).encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"shard {self.shard}" if self.shard else "the unsharded run"

    def write(self, run_dir: Path) -> Path:
        data = dataclasses.asdict(self)
        data.update(format=FORMAT, selection_sha256=self.selection_sha256,
                    shard=dataclasses.asdict(self.shard) if self.shard else None)
        path = Path(run_dir) / RUN
        path.parent.mkdir(parents=True, exist_ok=True)
        cache.write_whole(path, json.dumps(data, indent=1) + "\n")   # xdist workers too
        return path

    @classmethod
    def read(cls, run_dir: Path) -> "RunRecord":
        data = _json(Path(run_dir) / RUN, "a run of this harness writes it as it starts")
        try:
            shard = Shard(**data["shard"]) if data.get("shard") else None
            names = {f.name for f in dataclasses.fields(cls)} - {"shard"}
            return cls(shard=shard, **{k: v for k, v in data.items() if k in names})
        except (TypeError, KeyError) as e:
            raise RunDirError(f"{Path(run_dir) / RUN}: not a run record of this harness "
                              f"({e})") from None


def _json(path: Path, hint: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: no such file: {hint}") from None
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path}: not readable as JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RunDirError(f"{path}: not of format {FORMAT} (made by another harness version?)")
    return data


def write_outcomes(run_dir: Path, outcomes: List[Outcome], image: str,
                   interrupted: bool = False) -> Path:
    """outcomes.json: each outcome's properties, its artifacts relative to ``run_dir``."""
    top = Path(run_dir).resolve()
    rows = []
    for o in outcomes:
        props = dict(o.to_properties(image))
        kept = Path(o.artifacts).resolve() if o.artifacts else None
        if kept is not None and kept.is_relative_to(top):
            props["klp_artifacts"] = str(kept.relative_to(top))
        rows.append(props)
    path = Path(run_dir) / OUTCOMES
    cache.write_whole(path, json.dumps({"format": FORMAT, "interrupted": interrupted,
                                        "outcomes": rows}, indent=1) + "\n")
    return path


def read_outcomes(run_dir: Path) -> Tuple[List[Outcome], bool]:
    """The outcomes (artifacts as paths under ``run_dir``) and whether the run was
    interrupted."""
    data = _json(Path(run_dir) / OUTCOMES, "the run did not end (killed?), or it is no run dir")
    outcomes = []
    for props in data.get("outcomes", []):
        o = Outcome.from_properties({k: str(v) for k, v in props.items()})
        if o is None:
            raise RunDirError(f"{Path(run_dir) / OUTCOMES}: an outcome without a status")
        if o.artifacts and not Path(o.artifacts).is_absolute():
            o.artifacts = str(Path(run_dir).resolve() / o.artifacts)
        outcomes.append(o)
    return outcomes, bool(data.get("interrupted"))


def cells_of(outcomes: List[Outcome]) -> Dict[str, List[Outcome]]:
    """Cell name (shard.cell) -> its outcomes (every run of it)."""
    found: Dict[str, List[Outcome]] = {}
    for o in outcomes:
        found.setdefault(cell(o.scenario, o.arch), []).append(o)
    return found
