"""--repeat N and --until-fail: each scenario x arch (a cell) run N times, and what a cell's
runs add up to. The same for ``klp-harness run`` (the scheduler's queues), pytest (N items
per cell) and bisect-run (its rounds).

A cell's runs are numbered 1..N; a cell run once has no number (0), so nothing about a run
without --repeat changes. Run 1 keeps the plain test id (``name[x86_64]``) and runs 2..N
add ``-runK`` inside the brackets (``name[x86_64-run2]``: the arch stays where pytest-xdist's
scheduling and ``-k x86_64`` find it); every run of a cell shares the plain id's duration
key, so longest-first scheduling knows repeats from the runs before them.

A cell's failures are the runs that failed (fail, or xfail: a known or expected failure),
of the runs that ran (skips are not runs of the test): k/N with its Wilson interval.

--until-fail stops a cell at its first failed run: that run's artifacts are kept (as every
failure's, in a dir of its own), and its later runs are not run. The scheduler's threads and
pytest-xdist's workers (separate processes) learn of the failure alike, from a file per
cell in the run's dir.
"""
from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from . import stats
from .artifacts import safe
from .outcome import Outcome, Status

T = TypeVar("T")
_RUN_SUFFIX = re.compile(r"-run(\d+)\]$")


def runs(n: int) -> List[int]:
    """The run numbers of a cell run ``n`` times: [0] (unnumbered) if once, else 1..n."""
    return [0] if n <= 1 else list(range(1, n + 1))


def expand(items: Sequence[T], n: int) -> List[Tuple[T, int]]:
    """(item, run) for each of ``items`` ``n`` times, round by round: every item's run 1,
    then every item's run 2, ...; the order bisect-run runs them in, and the scheduler's
    order among tests expected to take as long."""
    return [(item, run) for run in runs(n) for item in items]


def item_id(name: str, arch: str, run: int = 0) -> str:
    """A cell's run as a test id: ``name[arch]``, from run 2 on ``name[arch-runK]``."""
    return f"{name}[{arch}-run{run}]" if run > 1 else f"{name}[{arch}]"


def duration_key(item: str) -> str:
    """The key of a test's expected duration: every run of a cell shares its plain id's."""
    return _RUN_SUFFIX.sub("]", item)


def median_times(times: Iterable[Tuple[str, float]]) -> List[Tuple[str, float]]:
    """(duration key, seconds) for durations.json: a repeated test's median, not its last
    run's (one slow run must not reorder the next run's queue)."""
    by_key: Dict[str, List[float]] = {}
    for key, seconds in times:
        by_key.setdefault(duration_key(key), []).append(seconds)
    return [(key, statistics.median(s)) for key, s in by_key.items()]


@dataclass
class Cell:
    """The runs of one scenario on one arch."""
    scenario: str
    arch: str
    runs: List[Outcome] = field(default_factory=list)

    @property
    def ran(self) -> List[Outcome]:
        return [o for o in self.runs if o.status != Status.SKIP]

    @property
    def failures(self) -> int:
        """k: the runs that failed, expectedly (xfail) or not."""
        return sum(o.status.failed for o in self.runs)

    @property
    def status(self) -> Status:
        """The cell's: fail if any run failed, else xfail if any failed expectedly, else
        pass if any passed, else skip; a cell run once has its run's."""
        for status in (Status.FAIL, Status.XFAIL, Status.PASS):
            if any(o.status == status for o in self.runs):
                return status
        return Status.SKIP

    @property
    def repeated(self) -> bool:
        return any(o.run for o in self.runs)

    @property
    def seconds(self) -> float:
        """The mean time of the runs that ran (of all, if none did)."""
        timed = self.ran or self.runs
        return sum(o.seconds for o in timed) / len(timed) if timed else 0.0

    def rate(self) -> str:
        """'5/20 (95% CI 11%–47%)'."""
        return stats.rate(self.failures, len(self.ran))

    def text(self) -> str:
        """'xfail 5/20 (95% CI 11%–47%) 3.4s', or a cell of skips: 'skip    0.0s'."""
        if not self.ran:
            return f"{self.status:<5} {self.seconds:5.1f}s"
        return f"{self.status:<5} {self.rate()} {self.seconds:.1f}s"


def cells(outcomes: Iterable[Outcome]) -> Dict[Tuple[str, str], Cell]:
    """(scenario, arch) -> its Cell, in the order the outcomes name them."""
    found: Dict[Tuple[str, str], Cell] = {}
    for o in outcomes:
        found.setdefault((o.scenario, o.arch), Cell(o.scenario, o.arch)).runs.append(o)
    return found


class UntilFail:
    """--until-fail's record of the cells that failed, in ``run_dir``/until-fail: a file per
    cell, made by the first failed run (O_EXCL: a later one does not replace it)."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir) / "until-fail"

    def _path(self, scenario: str, arch: str) -> Path:
        return self.dir / safe(item_id(scenario, arch))

    def mark(self, outcome: Outcome) -> None:
        """Note a failed run (fail or xfail) of its cell; any other outcome is ignored."""
        if not outcome.status.failed:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self._path(outcome.scenario, outcome.arch),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as f:
            f.write(f"{outcome.run}\n{outcome.status}\n{outcome.artifacts}\n")

    def stopped(self, scenario: str, arch: str) -> Optional[str]:
        """Why a run of this cell is not run (its cell already failed), or None."""
        try:
            run, status, kept = (self._path(scenario, arch).read_text().split("\n") + [""] * 3)[:3]
        except FileNotFoundError:
            return None
        return (f"--until-fail: {item_id(scenario, arch)} already failed ({status}) in run "
                f"{run}; its later runs are not run" + (f" (artifacts: {kept})" if kept else ""))
