"""Past one machine, on real parts: a bundle of the default image for x86_64 and s390x,
imported into three fresh caches; three shards of `scenarios/parity scenarios/system-state`
run, one per cache, at the same time, on a PATH without compilers, make or klp-build's
tools; their merge equals an unsharded run of the same selection cell by cell, and its
kcidb.json validates against KCIDB's schema (kcidb-io). The refusals: a merge missing a
shard, and a bundle with one byte changed."""
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from kcidb_io.schema import V5_3

from harness import cache, image as imagemod, shard
from harness.runrecord import read_outcomes
from nobuild import no_build_tools_path

pytestmark = pytest.mark.vm

ARCHES = ["x86_64", "s390x"]
SCENARIOS = ["scenarios/parity", "scenarios/system-state"]
SHARDS = 3
# Nothing may build on a shard's machine: a build says "building ...", klp-build's steps
# and the compilers name themselves.
BUILT = re.compile(r"building |klp-build|gcc|compil", re.I)
ARCH_ARGS = [arg for a in ARCHES for arg in ("--arch", a)]


def klp_harness(*args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *map(str, args)],
                            cwd=imagemod.PROJECT, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def done(process, timeout=1800):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def run_dir(artifacts: Path) -> Path:
    return (artifacts / "latest").resolve()


def statuses(directory: Path):
    outcomes, interrupted = read_outcomes(directory)
    assert not interrupted
    cells = {}
    for o in outcomes:
        cells.setdefault(shard.cell(o.scenario, o.arch), []).append(str(o.status))
    return cells


def test_three_shards_of_a_bundle_merge_into_the_unsharded_run(request, tmp_path):
    started = time.monotonic()
    accel = request.config.getoption("klp_accel")
    base = {k: v for k, v in os.environ.items() if k not in shard.ENGINE_VARIABLES}
    base["PYTHONPATH"] = str(imagemod.PROJECT)
    bundle = tmp_path / "bundle.tar"   # uncompressed: a byte of it is changed below
    code, out, err = done(klp_harness("bundle", "export", *ARCH_ARGS, "-o", bundle,
                                      *SCENARIOS, env=base))
    assert code == 0, err[-3000:]
    exported = time.monotonic()

    nobuild = dict(base, PATH=no_build_tools_path(tmp_path))
    caches = [tmp_path / f"cache{k}" for k in range(1, SHARDS + 1)]
    for fresh in caches:
        code, out, err = done(klp_harness("bundle", "import", bundle, *ARCH_ARGS,
                                          env=dict(nobuild, **{cache.ENV: str(fresh)})))
        assert code == 0, err
    # The shards at once, one guest per arch each; then the unsharded run, warm cache.
    jobs = [klp_harness("run", *ARCH_ARGS, "--accel", accel, "--pool", "1", "--shard",
                        f"{k}/{SHARDS}", "--artifacts", tmp_path / f"art{k}", *SCENARIOS,
                        env=dict(nobuild, **{cache.ENV: str(caches[k - 1])}))
            for k in range(1, SHARDS + 1)]
    shards = [done(job) for job in jobs]
    sharded = time.monotonic()
    whole = done(klp_harness("run", *ARCH_ARGS, "--accel", accel, "--artifacts",
                             tmp_path / "whole", *SCENARIOS, env=base))
    unsharded = time.monotonic()
    assert whole[0] in (0, 1), whole[2][-3000:]
    _nothing_was_built(shards, caches, whole[0])

    parts = [run_dir(tmp_path / f"art{k}") for k in range(1, SHARDS + 1)]
    _the_merge_is_the_unsharded_run(parts, tmp_path / "merged", run_dir(tmp_path / "whole"),
                                    whole[0], base)
    code, out, err = done(klp_harness("merge", parts[0], parts[2], "-o", tmp_path / "m2",
                                      env=base))
    assert code == 2 and f"shard 2/{SHARDS} missing" in err, err
    _a_changed_byte_is_refused(bundle, tmp_path / "cache4", nobuild)
    print(f"\nwall time {time.monotonic() - started:.0f}s: export {exported - started:.0f}s, "
          f"imports and three shards at once {sharded - exported:.0f}s, unsharded "
          f"{unsharded - sharded:.0f}s, merge and checks {time.monotonic() - unsharded:.0f}s")


def _nothing_was_built(shards, caches, whole_code) -> None:
    """Each shard ran from its bundle: no build in its log, no kernel source or build dir
    in its cache; a shard fails only where the unsharded run did."""
    for k, (code, out, err) in enumerate(shards, 1):
        assert code == whole_code or (code == 0 and whole_code == 1), out[-2000:] + err[-3000:]
        assert f"shard {k}/{SHARDS}: " in err
        assert not BUILT.search(err), BUILT.search(err).group(0) + "\n" + err[-3000:]
        assert "from the bundle bundle.tar (built elsewhere, not here)" in err
        assert not (caches[k - 1] / "sources").exists()
        assert not any((caches[k - 1] / "kbuild").glob("*"))


def _the_merge_is_the_unsharded_run(parts, merged, whole, whole_code, env) -> None:
    per_shard = [statuses(p) for p in parts]
    assert all(per_shard) and sum(map(len, per_shard)) == len(set().union(*per_shard))
    code, out, err = done(klp_harness("merge", *parts, "-o", merged, env=env))
    assert code == whole_code, out + err
    assert statuses(merged) == statuses(whole)
    assert len(statuses(merged)) == len(ARCHES) * len(
        [p for d in SCENARIOS for p in (imagemod.PROJECT / d).rglob("*.yaml")])
    for name in ("report.html", "junit.xml", "results.ktap", "summary.txt", "versions.json"):
        assert (merged / name).is_file(), name
    document = json.loads((merged / "kcidb.json").read_text())
    V5_3.validate_exactly(document)
    assert {b["architecture"] for b in document["builds"]} == set(ARCHES)
    assert len(document["tests"]) == len(statuses(merged))
    versions = json.loads((merged / "versions.json").read_text())
    for a in ARCHES:
        record = versions["images"][a]
        assert record["source"]["version"] and record["compiler"] and record["qemu"]
        assert re.fullmatch(r"[0-9a-f]{64}", record["config_sha256"])


def _a_changed_byte_is_refused(bundle: Path, fresh: Path, env) -> None:
    """The bundle's x86_64 kernel with one byte changed: import names it, and leaves the
    cache without any image."""
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar if m.name.startswith("images/")
                      and m.name.endswith("/kernel") and "x86_64" in m.name)
    with open(bundle, "r+b") as f:
        f.seek(member.offset_data + 4096)
        byte = f.read(1)
        f.seek(member.offset_data + 4096)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, out, err = done(klp_harness("bundle", "import", bundle,
                                      env=dict(env, **{cache.ENV: str(fresh)})))
    assert code == 2 and f"{member.name} differs from its manifest" in err, err
    assert not (fresh / "images").exists() or not any((fresh / "images").iterdir())


def test_pytests_shards_under_xdist_merge_into_its_unsharded_run(request, tmp_path):
    """The other front end on real guests: two pytest shards of scenarios/system-state on
    x86_64, each under xdist (its controller writes the run dir), merged, equal the
    unsharded pytest run cell by cell."""
    env = {k: v for k, v in os.environ.items() if k not in shard.ENGINE_VARIABLES}
    env["PYTHONPATH"] = str(imagemod.PROJECT)

    def pytest_run(artifacts, *args):
        return done(subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--arch",
             "x86_64", "--accel", request.config.getoption("klp_accel"), "--klp-artifacts",
             str(tmp_path / artifacts), *args, "scenarios/system-state"],
            cwd=imagemod.PROJECT, env=env, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE), timeout=900)
    for k in (1, 2):
        code, out, err = pytest_run(f"p{k}", "--shard", f"{k}/2")
        assert code == 0 and f"shard {k}/2: " in out, out[-3000:] + err[-2000:]
    code, out, err = pytest_run("whole")
    assert code == 0, out[-3000:]
    code, out, err = done(klp_harness("merge", run_dir(tmp_path / "p1"),
                                      run_dir(tmp_path / "p2"), "-o", tmp_path / "merged",
                                      env=env))
    assert code == 0, out + err
    whole = statuses(run_dir(tmp_path / "whole"))
    assert statuses(tmp_path / "merged") == whole and len(whole) == len(
        list((imagemod.PROJECT / "scenarios" / "system-state").glob("*.yaml")))
