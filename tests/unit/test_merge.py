"""`klp-harness merge` over run dirs written as a run writes them (runrecord, report), with
made-up outcomes: the merge of three shards equals the unsharded run cell by cell, carries
the failures' artifacts, and exits as `run` would; and every refusal names the run dir.
tests/integration/test_shards.py merges real shards."""
import json
import re

import pytest
from kcidb_io.schema import V5_3

from harness import cli, log, report, shard
from harness.outcome import Expected, Outcome
from harness.runrecord import RunRecord, read_outcomes
from harness.shard import Shard

ARCHES = ["x86_64", "s390x"]
SCENARIOS = [f"topic/s{i}" for i in range(7)]
SELECTION = [shard.cell(s, a) for s in SCENARIOS for a in ARCHES]
STATUS = {"topic/s1[s390x]": "fail", "topic/s2[x86_64]": "skip", "topic/s4[s390x]": "xfail"}


def outcome(cell: str, run_dir) -> Outcome:
    scenario, arch = cell[:-1].split("[")
    status = STATUS.get(cell, "pass")
    o = Outcome(scenario, arch, status, "" if status == "pass" else f"{status}: why",
                seconds=1.0 + len(cell) % 3, kernel="7.3.4",
                expected=Expected.KNOWN if status == "xfail" else Expected.NONE)
    if o.status.failed:   # as artifacts.save keeps them
        kept = run_dir / "failed" / cell
        kept.mkdir(parents=True)
        (kept / "failure.txt").write_text(o.message + "\n")
        o.artifacts = str(kept)
    return o


def write_run(run_dir, cells, k=None, n=3, harness="0.1.0 (abc)", key="abc",
              selection=SELECTION, interrupted=False, drop=0):
    """A run dir as `klp-harness run` leaves it (``drop``: outcomes that went missing)."""
    run_dir.mkdir(parents=True)
    for a in ARCHES:
        report.record_image(run_dir, _Image(a, key), {"compiler": "gcc 12",
                                                      "config_sha256": "0" * 64})
    RunRecord(harness, "linux-7.3", ARCHES, selection, cells, cells,
              Shard(k, n) if k else None, "d", 1, "run", run_dir.name).write(run_dir)
    outcomes = [outcome(c, run_dir) for c in cells][drop:]
    report.write(run_dir, outcomes, report.summary(outcomes), interrupted)
    (run_dir / "machines" / "x86_64-0").mkdir(parents=True)
    (run_dir / "machines" / "x86_64-0" / "console.log").write_text("boot\n")
    return run_dir


class _Image:
    """What report.record_image reads of an image."""
    def __init__(self, arch, key):
        self.name, self.arch, self.kernel_release = "linux-7.3", arch, "7.3.4"
        self.kernel_patches, self.kernel_name, self.packages = [], "7.3.4", {}
        self.dir = f"/cache/images/linux-7.3-{arch}-{key}"


@pytest.fixture
def shards(tmp_path):
    parts = shard.split(SELECTION, 3, {})
    return [write_run(tmp_path / f"shard{k}", parts[k - 1], k) for k in (1, 2, 3)]


@pytest.fixture
def merge(tmp_path, capsys):
    before = list(log.LOG.handlers)

    def run(*dirs, out=None):
        status = cli.main(["merge", *map(str, dirs), "-o", str(out or tmp_path / "merged")])
        return status, *capsys.readouterr()
    yield run
    for handler in log.LOG.handlers[:]:
        if handler not in before:
            log.LOG.removeHandler(handler)


def cells(run_dir):
    outcomes, _ = read_outcomes(run_dir)
    return {shard.cell(o.scenario, o.arch): (str(o.status), o.seconds) for o in outcomes}


def test_three_shards_merge_into_what_the_unsharded_run_wrote(tmp_path, shards, merge):
    whole = write_run(tmp_path / "whole", SELECTION)
    status, out, err = merge(*shards)
    assert status == 1, err   # topic/s1 failed on s390x: as `run` exits
    merged = tmp_path / "merged"
    assert cells(merged) == cells(whole) and len(cells(merged)) == len(SELECTION)
    assert out.startswith("kernels: x86_64 7.3.4, s390x 7.3.4\n")
    assert "11 passed, 1 failed, 1 skipped, 1 expected failures" in out
    for name in ("report.html", "junit.xml", "results.ktap", "summary.txt", "versions.json",
                 "outcomes.json", "run.json", "kcidb.json"):
        assert (merged / name).is_file(), name
    record = RunRecord.read(merged)
    assert record.shard is None and record.cells == sorted(SELECTION)
    assert record.merged_from == sorted(s.name for s in shards)
    # each failure's artifacts came along, and the page links to the copies
    page = report.MatrixReader()
    page.feed((merged / "report.html").read_text())
    links = page.links[("topic/s1", "s390x")]
    assert links and all((merged / link).exists() for link in links)
    assert (merged / "machines" / "shard-2" / "x86_64-0" / "console.log").is_file()
    assert read_outcomes(merged)[0][0].artifacts == ""   # a pass keeps none
    document = json.loads((merged / "kcidb.json").read_text())
    V5_3.validate_exactly(document)
    assert len(document["tests"]) == len(SELECTION)
    assert (merged / "results.ktap").read_text().count("\nok ") == len(SELECTION) - 1
    assert json.loads((merged / "versions.json").read_text())["images"]["s390x"][
        "compiler"] == "gcc 12"


def test_a_merge_without_failures_exits_0(tmp_path, merge):
    passing = [c for c in SELECTION if c not in STATUS]
    parts = shard.split(passing, 2, {})
    dirs = [write_run(tmp_path / f"s{k}", parts[k - 1], k, 2, selection=passing)
            for k in (1, 2)]
    assert merge(*dirs)[0] == 0


def test_one_unsharded_run_merges_as_itself(tmp_path, merge):
    whole = write_run(tmp_path / "whole", SELECTION)
    assert merge(whole)[0] == 1 and cells(tmp_path / "merged") == cells(whole)


@pytest.mark.parametrize("case, message", [
    ("missing", "shard 2/3 missing: given 1/3, 3/3 of 3"),
    ("twice", "shard 1/3 is given twice"),
    ("harness", r"is of another klp-harness: 0\.2\.0 \(def\)"),
    ("selection", "is of another selection"),
    ("build", r"ran image linux-7\.3-\w+-other on \w+, where shard 1/3"),
    ("interrupted", r"shard 2/3 \(.*shard2-bad\) was interrupted"),
    ("outcome", r"shard 2/3 \(.*\) has no outcome for 1 of its cells"),
    ("total", "is one of 4 shards"),
    ("unsharded", r"the unsharded run \(.*\) is not a shard"),
    ("split", r"cell topic/\S+ is in shard 2/3 and in shard 3/3"),
    ("not a run", "run.json: no such file"),
])
def test_a_merge_refuses_what_is_not_one_run(tmp_path, shards, merge, case, message):
    parts = shard.split(SELECTION, 3, {})
    bad = tmp_path / "shard2-bad"
    dirs = {"missing": lambda: [shards[0], shards[2]],
            "twice": lambda: [shards[0], shards[0], shards[2]],
            "harness": lambda: write_run(bad, parts[1], 2, harness="0.2.0 (def)"),
            "selection": lambda: write_run(bad, parts[1], 2, selection=SELECTION[:-1]),
            "build": lambda: write_run(bad, parts[1], 2, key="other"),
            "interrupted": lambda: write_run(bad, parts[1], 2, interrupted=True),
            "outcome": lambda: write_run(bad, parts[1], 2, drop=1),
            "total": lambda: write_run(bad, parts[1], 2, n=4),
            "unsharded": lambda: write_run(bad, parts[1]),
            "split": lambda: write_run(bad, parts[1] + parts[2][:1], 2),
            "not a run": lambda: bad.mkdir() or bad}[case]()
    if not isinstance(dirs, list):
        dirs = [shards[0], dirs, shards[2]]
    status, out, err = merge(*dirs)
    assert status == 2, out + err
    assert re.search(message, err), err
    assert not (tmp_path / "merged").exists() or not any((tmp_path / "merged").iterdir())


def test_a_merge_into_a_dir_that_holds_something_is_refused(tmp_path, shards, merge):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "report.html").write_text("an earlier report")
    status, _, err = merge(*shards, out=out)
    assert status == 2 and "the dir is not empty" in err
    assert (out / "report.html").read_text() == "an earlier report"
