"""Where a run's time goes: the wall and CPU seconds of each phase of its work.

A phase is named work (``packages``, ``sources``, ``kernel x86_64``, ``image x86_64``,
``klp-build``, ``scenarios s390x``, ...) entered with ``with phase(name):`` in the thread
doing it. Its CPU time is that thread's own (RUSAGE_THREAD) plus the child processes it
waited for through ``reap()`` (make, klp-build, mmdebstrap: their children included, as
wait4 reports them), so phases that run at the same time in other threads are not counted
twice. A phase entered inside another (the kernel's build within its image's) is taken out
of the outer one. The same name in several threads (the guests of one arch) is one phase:
its wall is the time any of them was in it.

A process of its own (``klp-harness setup`` before a run, the Python environment's set-up
in ``./klp``) appends its phase to the file named by ``KLP_HARNESS_PHASES``, which the run
reads (``take_external``).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

ENV = "KLP_HARNESS_PHASES"


@dataclass
class _Open:
    name: str
    started: float
    thread_mark: float          # this thread's CPU when the phase last resumed
    cpu: float = 0.0
    holes: List[Tuple[float, float]] = field(default_factory=list)   # nested phases


@dataclass
class Phase:
    """A phase's totals: ``wall`` the time any thread was in it (not in a phase nested in
    it), ``cpu`` the CPU seconds of its threads and the processes they waited for."""
    name: str
    wall: float
    cpu: float


_lock = threading.Lock()
_intervals: Dict[str, List[Tuple[float, float]]] = {}
_cpu: Dict[str, float] = {}
_local = threading.local()


def _thread_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime


def _stack() -> List[_Open]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


@contextmanager
def phase(name: str) -> Iterator[None]:
    stack, now = _stack(), _thread_cpu()
    if stack:   # the outer phase pauses
        stack[-1].cpu += now - stack[-1].thread_mark
    opened = _Open(name, time.monotonic(), now)
    stack.append(opened)
    try:
        yield
    finally:
        ended, now = time.monotonic(), _thread_cpu()
        opened.cpu += now - opened.thread_mark
        stack.pop()
        if stack:
            stack[-1].thread_mark = now
            stack[-1].holes.append((opened.started, ended))
        _add(name, _cut(opened.started, ended, opened.holes), opened.cpu)


def _cut(start: float, end: float, holes: List[Tuple[float, float]]
         ) -> List[Tuple[float, float]]:
    """[start, end) without the holes (sequential nested phases, in order)."""
    pieces, at = [], start
    for a, b in sorted(holes):
        if a > at:
            pieces.append((at, a))
        at = max(at, b)
    if end > at:
        pieces.append((at, end))
    return pieces


def _add(name: str, intervals: List[Tuple[float, float]], cpu: float) -> None:
    with _lock:
        _intervals.setdefault(name, []).extend(intervals)
        _cpu[name] = _cpu.get(name, 0.0) + cpu


def add_cpu(seconds: float, name: Optional[str] = None) -> None:
    """CPU seconds of a process this thread waited for: to ``name``, else the thread's
    current phase (nowhere if it is in none)."""
    stack = _stack()
    if name is None and stack:
        stack[-1].cpu += seconds
    elif name is not None:
        _add(name, [], seconds)


class Popen(subprocess.Popen):
    """subprocess.Popen whose reaping adds the process's CPU time (and that of the children
    it waited for, as wait4 reports them) to the reaping thread's phase, or to the phase
    named ``phase`` (a guest's QEMU, reaped by whichever thread sees it end); ``cpu`` keeps
    it. It takes over the two places Popen reaps: _try_wait (wait(), CPython's since 3.3) and
    poll()."""

    cpu = 0.0

    def __init__(self, *args, phase: Optional[str] = None, **kw):
        self.phase = phase
        super().__init__(*args, **kw)

    def _try_wait(self, wait_flags):
        try:
            return self._wait4(self.pid, wait_flags)
        except ChildProcessError:   # as Popen's own: reaped elsewhere (SIGCHLD ignored)
            return (self.pid, 0)

    def poll(self):
        """Popen.poll(), reaping through wait4 (CPython's own poll calls waitpid directly,
        with a signature that changed in 3.13)."""
        if self.returncode is None and self._waitpid_lock.acquire(False):
            try:
                if self.returncode is None:
                    pid, status = self._wait4(self.pid, os.WNOHANG)
                    if pid == self.pid:
                        self._handle_exitstatus(status)
            except ChildProcessError:   # reaped elsewhere: as Popen's own poll
                self.returncode = 0
            finally:
                self._waitpid_lock.release()
        return self.returncode

    def _wait4(self, pid: int, flags: int) -> Tuple[int, int]:
        pid, status, usage = os.wait4(pid, flags)
        if pid == self.pid:
            self.cpu = usage.ru_utime + usage.ru_stime
            add_cpu(self.cpu, self.phase)
        return (pid, status)


def run(args, *, input=None, check: bool = False, timeout: Optional[float] = None,
        capture_output: bool = False, **kw) -> subprocess.CompletedProcess:
    """subprocess.run, with the process's CPU time added to this thread's phase."""
    if capture_output:
        kw["stdout"] = kw["stderr"] = subprocess.PIPE
    if input is not None:
        kw["stdin"] = subprocess.PIPE
    with Popen(args, **kw) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:
            proc.kill()
            raise
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _measure(intervals: List[Tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def totals() -> List[Phase]:
    """Every phase so far, in the order they began."""
    with _lock:
        names = sorted(_cpu, key=lambda n: min((a for a, _ in _intervals.get(n) or []),
                                               default=float("inf")))
        return [Phase(n, _measure(_intervals.get(n, [])), _cpu[n]) for n in names]


def take_external() -> List[Phase]:
    """Phases that other processes of this run recorded (see ENV); the file is removed."""
    path = os.environ.get(ENV)
    if not path or not Path(path).is_file():
        return []
    found = []
    for line in Path(path).read_text().splitlines():
        try:
            d = json.loads(line)
            found.append(Phase(d["name"], float(d["wall"]), float(d["cpu"])))
        except (ValueError, KeyError, TypeError):
            continue
    Path(path).unlink(missing_ok=True)   # ./klp made it for this run
    return found


def record_external(name: str, wall: float, cpu: float) -> None:
    """Append a phase of this process for the run that follows (if ENV names a file)."""
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"name": name, "wall": round(wall, 1), "cpu": round(cpu, 1)})
                    + "\n")


def process_total() -> float:
    """CPU seconds of this process and of the children it waited for."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def finish(run_dir: Path, started: float, cores: int) -> str:
    """The run's phases as a table, also written to ``run_dir``/phases.json (beside
    versions.json). The run's wall time counts from ``started`` (monotonic) plus the
    phases of processes before it (ENV); its CPU time is this process's and theirs."""
    before = take_external()
    found = before + totals()
    wall = sum(p.wall for p in before) + time.monotonic() - started
    cpu = sum(p.cpu for p in before) + process_total()
    compile_cpu = sum(p.cpu for p in found if p.name.startswith("kernel "))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "phases.json").write_text(json.dumps(to_json(found, wall, cpu), indent=2) + "\n")
    return table(found, wall, cpu, compile_cpu, cores)


def table(phases: List[Phase], wall: float, cpu: float, compile_cpu: float,
          cores: int) -> str:
    """The phases as printed at a run's end, with the run's own totals and the floor the
    kernel compilations set (their CPU seconds over the host's cores)."""
    width = max([len(p.name) for p in phases] + [len("the whole run")])
    lines = [f"{'where the time went':<{width}}  {'wall':>8}  {'CPU':>8}"]
    for p in phases:
        lines.append(f"{p.name:<{width}}  {p.wall:7.1f}s  {p.cpu:7.1f}s")
    rest = cpu - sum(p.cpu for p in phases)   # Python's start, reading scenarios, the report
    lines.append(f"{'in no phase':<{width}}  {'':>8}  {max(rest, 0):7.1f}s")
    lines.append(f"{'the whole run':<{width}}  {wall:7.1f}s  {cpu:7.1f}s")
    if compile_cpu:
        lines.append(f"kernel compilations: {compile_cpu:.0f} CPU seconds, a floor of "
                     f"{compile_cpu / cores:.0f}s wall on {cores} cores")
    return "\n".join(lines)


def to_json(phases: List[Phase], wall: float, cpu: float) -> dict:
    return {"phases": [{"name": p.name, "wall": round(p.wall, 1), "cpu": round(p.cpu, 1)}
                       for p in phases],
            "run": {"wall": round(wall, 1), "cpu": round(cpu, 1)}}


def reset() -> None:
    """Forget every phase (tests; a process that runs several times)."""
    with _lock:
        _intervals.clear()
        _cpu.clear()
