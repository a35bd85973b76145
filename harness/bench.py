"""Benchmarks that print figures (never timed tests): boot to SSH, kernel builds,
upstream's scripts against our parity scenarios, the shadow counter's cost, and livepatches
built from patches by klp-build. Each prints one line per figure, ``name arch seconds  #
what it was``."""
from __future__ import annotations

import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from . import (accel, arch as archmod, cache, image as imagemod, kernelbuild, klpbuild, klporig,
               kselftest, livepatch, pool as poolmod, runner)
from .machine import Machine, MachineConfig
from .scenario import Scenario, discover, known_upstream_failures
from .options import Options
from .outcome import Status
from .paths import KLP_BUILD_PATCHES, PARITY_SCENARIOS as PARITY
from .session import Session


def boot(arches: List[str], opts: Options, runs: int) -> int:
    """Median time from QEMU's start to SSH answering, per arch (and each run's stages)."""
    for a in arches:
        profile = archmod.get(a)
        img = imagemod.build(opts.image, a, opts.mirror, opts.kernel_tree)
        chosen, why = accel.choose(profile, img, opts.accel)
        print(f"# {a}: {why}", file=sys.stderr)
        times = []
        for i in range(runs):
            with tempfile.TemporaryDirectory(prefix="klp-bench-") as work:
                start = time.monotonic()
                with Machine(img, profile, Path(work),
                             MachineConfig(cpus=opts.cpus, memory_mb=opts.memory_mb,
                                           accel=chosen)) as m:
                    times.append(time.monotonic() - start)
                    stages = " ".join(f"{k}={v:.2f}" for k, v in m.stage_times.items())
                print(f"# run {i + 1}: {times[-1]:.2f}s ({stages})", file=sys.stderr)
        print(f"boot-to-ssh {a} {statistics.median(times):.2f}")
    return 0


def build(arches: List[str], opts: Options, touch: str) -> int:
    """Cold builds of every arch at the same time (as a cold run makes them), each in a
    scratch build dir, then one by one a rebuild after touching one livepatch file. The
    cached build dirs are left alone."""
    inputs = {a: imagemod.kernel_inputs(opts.image, a, opts.mirror, opts.kernel_tree)
              for a in arches}
    with tempfile.TemporaryDirectory(prefix="klp-bench-kbuild-") as scratch:
        def cold(a):
            source, profile, fragments = inputs[a]
            return kernelbuild.build(source, profile, fragments, Path(scratch, a), force=True)
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(arches)) as pool:
            builds = dict(zip(arches, pool.map(cold, arches)))
        for a, build in builds.items():
            print(f"kernel-build-cold {a} {build.seconds:.1f}", flush=True)
        print(f"kernel-build-cold-all {time.monotonic() - start:.1f}  # {len(arches)} "
              "arches at the same time", flush=True)
        for a in arches:
            source, profile, fragments = inputs[a]
            (source.tree / touch).touch()
            again = kernelbuild.build(source, profile, fragments, Path(scratch, a), force=True)
            print(f"kernel-rebuild-touch {a} {again.seconds:.1f}  # {touch}", flush=True)
    return 0


KLP_BUILD_BENCH = ("version-fix", "binfmt-status-fix", "shadow-reads", "new-global-data",
                   "shadow-reads-leak")


def klp_build(arches: List[str], opts: Options) -> int:
    """klp-build in a scratch workspace (the cached one is left alone): copying the kernel
    source, the first patch (the original kernel built with function sections, then the
    patch), and each further patch on the kept original build."""
    for a in arches:
        image = imagemod.build(opts.image, a, opts.mirror, opts.kernel_tree)
        reason = klpbuild.unsupported(image)
        if reason:
            print(f"# {a}: {reason}", file=sys.stderr)
            continue
        cache.root().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="klp-bench-klp-build-", dir=cache.root()) as tmp:
            space = klpbuild.Workspace(image, Path(tmp, "workspaces"))
            times = []
            for i, name in enumerate(KLP_BUILD_BENCH):
                out = Path(tmp, name)
                out.mkdir()
                source = klpbuild.LivepatchSource(f"klp_bench_{i}",
                                                  (KLP_BUILD_PATCHES / f"{name}.patch",))
                start = time.monotonic()
                shared = klporig.is_shared(image.kbuild_dir)
                if i == 0:
                    space._make()
                    print(f"klp-build-copy-source {a} {time.monotonic() - start:.1f}  # a "
                          + ("copy of the image's kernel build, klp-build's original build"
                             if shared else "copy of the kernel source to build in"),
                          flush=True)
                    start = time.monotonic()
                space.run(source, out)
                if not (out / f"{source.name}.ko").exists():
                    raise klpbuild.Refused(source, (out / "refused").read_text())
                times.append(time.monotonic() - start)
                if i == 0:
                    print(f"klp-build-first {a} {times[0]:.1f}  # "
                          + ("" if shared else "the original kernel, built once, then ")
                          + f"{name}.patch", flush=True)
            more = times[1:]
            print(f"klp-build-next {a} {statistics.median(more):.1f}  # median of {len(more)} "
                  f"further patches ({min(more):.1f} .. {max(more):.1f})", flush=True)
    return 0


def parity(arches: List[str], opts: Options) -> int:
    """Upstream's selftest scripts and our parity scenarios, one after the other on the same
    guest of each arch, then the scenarios on a pool of guests of that arch; then the parity
    scenarios on all arches at once, one guest each and on the pools (boots included), each
    with the host's CPU use. Images and modules are built before any clock starts."""
    scenarios = [Scenario.load(p) for p in discover([PARITY])]
    guests = poolmod.size(len(arches), opts.memory_mb, opts.pool)
    failed, upstream_times = 0, {}
    session = Session(opts)
    try:
        session.prepare(arches)
        for a in arches:
            guest = session.guest(a)
            cpu = _Cpu()
            report = kselftest.run(guest, session.state(a).image,
                                   known=known_upstream_failures(a, [PARITY]))
            saved = kselftest.save(report, session.run_dir / "kselftest" / a)
            upstream = upstream_times[a] = report.seconds - report.setup_seconds
            print(f"upstream-scripts {a} {upstream:.1f}  # "
                  + ("ok" if report.ok else f"NOT OK, see {saved}") + f"; {cpu}", flush=True)
            cpu, start = _Cpu(), time.monotonic()
            outcomes = [session.run_scenario(sc, a) for sc in scenarios]
            ours = time.monotonic() - start
            failed += sum(o.status == Status.FAIL for o in outcomes) + (not report.ok)
            print(f"parity-scenarios {a} {ours:.1f}  # one guest; {_counts(outcomes)}; {cpu}")
            cpu, start = _Cpu(), time.monotonic()
            outcomes = session.run_all(scenarios, [a], pool=guests)
            pooled = time.monotonic() - start
            failed += sum(o.status == Status.FAIL for o in outcomes)
            print(f"parity-pool {a} {pooled:.1f}  # {guests} guests (boots of all but one "
                  f"included); {_counts(outcomes)}; {cpu}")
            print(f"ratio {a} {ours / upstream:.2f} {pooled / upstream:.2f}  # to upstream's "
                  "scripts: one guest, the pool", flush=True)
    finally:
        session.close()
    walls = {}
    for size in (1, guests):
        session = Session(opts)
        try:
            cpu, start = _Cpu(), time.monotonic()
            outcomes = session.run_all(scenarios, arches, parallel=True, pool=size)
            walls[size] = time.monotonic() - start
        finally:
            session.close()
        failed += sum(o.status == Status.FAIL for o in outcomes)
        print(f"parity-all-arches {walls[size]:.1f}  # {len(arches)} arches at once, {size} "
              f"guest(s) each, boots included; {_counts(outcomes)}; {cpu}", flush=True)
    first = arches[0]
    print(f"pool-vs-upstream {walls[guests] / upstream_times[first]:.2f}  # all arches on the "
          f"pool / upstream's scripts on {first} (aim: 0.25 or less)")
    return 1 if failed else 0


class _Cpu:
    """The host's CPU use from now to when it is shown (/proc/stat), in percent."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
        return sum(fields), idle

    def __str__(self) -> str:
        total, idle = self._read()
        spent = total - self.start[0]
        busy = spent - (idle - self.start[1])
        return f"host CPU {100 * busy / spent:.0f}%" if spent else "host CPU n/a"


def shadow(arches: List[str], opts: Options, count: int, reads: int) -> int:
    """The cost of one shadow counter read, with no variables and with ``--count`` live
    ones: made by a real livepatch (klp_sessions_v1 renders that many sessions)."""
    session = Session(opts)
    failed = 0
    print("# arch  live-variables  kernel-walk-us (median)  read-ms (median, from the host)")
    try:
        for a in arches:
            st = session.state(a)
            guest = session.guest(a)
            if st.counter is None:
                print(f"{a}: no shadow counter: {st.counter_unavailable}")
                failed += 1
                continue
            for name in ("klp_sessions", "klp_sessions_v1"):
                remote = runner.push_module(guest, st.catalog, name)
                livepatch.load(guest, f"{runner.WORKDIR}/{remote}")
            livepatch.wait_transition(guest, "klp_sessions_v1", runner.STEP_TIMEOUT)
            for live in (0, count):
                guest.run(f"echo create {live} > /proc/klp_sessions; "
                          f"cat /proc/klp_sessions > /dev/null")
                walks, took = [], []
                for _ in range(reads):
                    start = time.monotonic()
                    counts = st.counter.read()
                    took.append(time.monotonic() - start)
                    walks.append(counts.walk_ns)
                if counts.of(0x5e551) != live:
                    print(f"{a}: counted {counts.of(0x5e551)} session variables, made {live}")
                    failed += 1
                print(f"{a}  {live}  {statistics.median(walks) / 1000:.0f}  "
                      f"{statistics.median(took) * 1000:.1f}", flush=True)
            livepatch.cleanup(guest, runner.STEP_TIMEOUT)
            livepatch.unload_modules(guest, ["klp_sessions_v1", "klp_sessions"])
    finally:
        session.close()
    return 1 if failed else 0


# The consistency scenarios' workload: per CPU a task calling the chain and one spinning.
CHAIN_LOAD = ("for i in $(seq 1 $(nproc)); do "
              "while :; do echo 20 > /sys/kernel/klp_chain/call; done & "
              "while :; do :; done & done")
CHAIN = 15   # cumulative patches in the chain timed under load (each replaces the one before)


def transition(arches: List[str], opts: Options, repeat: int) -> int:
    """Livepatch transition latency per arch (scenarios/modules/klp_chain*): load to
    patched and disable to gone, median of ``repeat``, with every CPU idle and under the
    consistency scenarios' load; and the time of a chain of CHAIN cumulative patches (each
    replacing the one before) under that load."""
    session = Session(opts)
    failed = 0
    print("# arch  load  load-to-patched-s  disable-to-gone-s  (median of "
          f"{repeat})  chain-of-{CHAIN}-s")
    try:
        for a in arches:
            st, guest = session.state(a), session.guest(a)
            remote = {m: f"{runner.WORKDIR}/{runner.push_module(guest, st.catalog, m)}"
                      for m in ("klp_chain", "klp_chain_v1", "klp_chain_v2", "klp_chain_v3")}
            livepatch.load(guest, remote["klp_chain"])
            for load in ("idle", "busy"):
                if load == "busy":
                    guest.run(CHAIN_LOAD)
                patched, gone = [], []
                for _ in range(repeat):
                    start = time.monotonic()
                    livepatch.load(guest, remote["klp_chain_v1"], timeout=120)
                    livepatch.wait_transition(guest, "klp_chain_v1", 120)
                    patched.append(time.monotonic() - start)
                    start = time.monotonic()
                    livepatch.set_enabled(guest, "klp_chain_v1", False)
                    livepatch.wait_gone(guest, "klp_chain_v1", 120)
                    gone.append(time.monotonic() - start)
                    livepatch.wait_unused(guest, "klp_chain_v1", 120)
                    livepatch.unload(guest, "klp_chain_v1", check=True)
                chain = ""
                if load == "busy":
                    start = time.monotonic()
                    for i in range(CHAIN):
                        name, other = (("klp_chain_v2", "klp_chain_v3") if i % 2 == 0
                                       else ("klp_chain_v3", "klp_chain_v2"))
                        livepatch.load(guest, remote[name], timeout=120)
                        livepatch.wait_transition(guest, name, 120)
                        if i:
                            livepatch.wait_unused(guest, other, 120)
                            livepatch.unload(guest, other, check=True)
                    chain = f"  {time.monotonic() - start:.1f}"
                    livepatch.cleanup(guest, runner.STEP_TIMEOUT)
                    livepatch.unload_modules(guest, [name])   # the chain's last
                    guest.run("j=$(jobs -p); [ -n \"$j\" ] && kill $j; true")
                mixed = guest.run("cat /sys/kernel/klp_chain/mixed").stdout.strip()
                if mixed != "0":
                    print(f"{a}: {mixed}")
                    failed += 1
                print(f"{a}  {load}  {statistics.median(patched):.2f}  "
                      f"{statistics.median(gone):.2f}{chain}", flush=True)
            livepatch.unload_modules(guest, ["klp_chain"])
    finally:
        session.close()
    return 1 if failed else 0


def _counts(outcomes) -> str:
    statuses = [o.status for o in outcomes]
    return ", ".join(f"{statuses.count(s)} {s}" for s in Status
                     if statuses.count(s))
