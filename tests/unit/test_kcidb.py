"""kcidb.json: a run's outcomes as KCIDB (schema v5.3), validated by kcidb-io (the schema's
own package); statuses mapped honestly; and the validator refuses a wrong status (the
negative control: a check that could not fail would prove nothing)."""
import copy
import json

import jsonschema
import pytest
from kcidb_io.schema import V5_3

from harness import kcidb
from harness.outcome import Cause, Expected, Outcome
from harness.skips import Skip

IMAGES = {
    "x86_64": {"image": "linux-7.3", "arch": "x86_64", "kernel_release": "7.3.4",
               "kernel": "7.3.4", "kernel_patches": [], "packages": {},
               "image_dir": "/c/images/linux-7.3-x86_64-0123abcd",
               "source": {"package": "linux-source-7.3", "suite": "trixie-backports",
                          "version": "7.3.4-1~bpo13+1"},
               "compiler": "gcc (Debian 12.2.0-14) 12.2.0",
               "config_name": "allnoconfig + common.config + x86_64.config",
               "config_sha256": "ab" * 32, "qemu": "QEMU emulator version 7.2.19"},
}
IMAGES["s390x"] = dict(IMAGES["x86_64"], arch="s390x", image_dir="/c/images/linux-7.3-s390x-9f",
                       compiler="s390x-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0")

# (outcome, KCIDB status) for every kind of result.
KINDS = [
    (Outcome("parity/livepatch/basic-function-patching", "x86_64", "pass", seconds=2.5), "PASS"),
    (Outcome("smoke/a", "x86_64", "fail", "step 2, run: exit 1"), "FAIL"),
    (Outcome("parity/kprobe/kprobe-without-post-handler", "s390x", "xfail",
             "known failure: s390's kprobe handler", expected=Expected.KNOWN), "FAIL"),
    (Outcome("negative/consistency-force-mixes", "x86_64", "xfail",
             "negative control caught: 1 mixed call", expected=Expected.CAUGHT), "PASS"),
    (Outcome("klp-build/broken", "x86_64", "fail", "klp-build refused",
             cause=Cause.LIVEPATCH_BUILD), "ERROR"),
    (Outcome("smoke/b", "s390x", "fail", "the s390x guest does not boot", cause=Cause.BOOT),
     "ERROR"),
    (Outcome("smoke/c", "s390x", "fail", "QEMU died", cause=Cause.GUEST), "ERROR"),
    (Outcome("smoke/d", "x86_64", "fail", "interrupted (Ctrl-C)", interrupted=True), "MISS"),
    (Outcome.skipped("debug/kasan", "s390x", Skip("no CONFIG_KASAN", "need CONFIG_KASAN")),
     "SKIP"),
    # a klp-build refusal a negative control expects: caught, as it must be
    (Outcome("klp-build/must-refuse", "x86_64", "xfail", "negative control caught: refused",
             cause=Cause.LIVEPATCH_BUILD, expected=Expected.CAUGHT), "PASS"),
]


@pytest.mark.parametrize("outcome, want", KINDS, ids=[o.scenario for o, _ in KINDS])
def test_each_kind_of_result_has_its_honest_status(outcome, want):
    assert kcidb.status(outcome)[0] == want


def document(tmp_path, outcomes=None, base_url=None):
    kept = tmp_path / "failed" / "smoke_a[x86_64]"
    kept.mkdir(parents=True, exist_ok=True)
    (kept / "console.log").write_text("boot\n")
    (kept / "kmsg.txt").write_text("log\n")
    outcomes = outcomes or [copy.deepcopy(o) for o, _ in KINDS]
    for o in outcomes:
        if o.scenario == "smoke/a":
            o.artifacts = str(kept)
    kcidb.write(tmp_path, outcomes, IMAGES, "run-20261205-1", base_url)
    return json.loads((tmp_path / kcidb.FILE).read_text())


def test_the_document_validates_and_names_checkout_builds_and_tests(tmp_path):
    data = document(tmp_path)
    V5_3.validate_exactly(data)
    assert data["version"] == {"major": 5, "minor": 3}
    [checkout] = data["checkouts"]
    assert checkout["id"] == "klp_harness:linux-source-7.3=7.3.4-1~bpo13+1"
    assert "7.3.4-1~bpo13+1 (trixie-backports)" in checkout["comment"]
    builds = {b["architecture"]: b for b in data["builds"]}
    assert builds["s390x"]["compiler"].startswith("s390x-linux-gnu-gcc-12")
    assert builds["x86_64"]["id"] == "klp_harness:linux-7.3-x86_64-0123abcd"
    assert builds["x86_64"]["config_name"] == "allnoconfig + common.config + x86_64.config"
    assert builds["x86_64"]["misc"]["config_sha256"] == "ab" * 32
    tests = {t["path"]: t for t in data["tests"]}
    basic = tests["livepatch.parity.livepatch.basic-function-patching"]
    assert basic["status"] == "PASS" and basic["duration"] == 2.5
    assert basic["build_id"] == builds["x86_64"]["id"]
    assert basic["id"] == "klp_harness:run-20261205-1:parity/livepatch/basic-function-patching[x86_64]"
    known = tests["livepatch.parity.kprobe.kprobe-without-post-handler"]
    assert known["status"] == "FAIL" and known["comment"].startswith("known failure")
    caught = tests["livepatch.negative.consistency-force-mixes"]
    assert caught["status"] == "PASS" and caught["comment"].startswith("negative control caught")
    files = tests["livepatch.smoke.a"]["output_files"]
    assert [f["name"] for f in files] == ["console.log", "kmsg.txt"]
    assert files[0]["url"] == (tmp_path / "failed" / "smoke_a[x86_64]" / "console.log").as_uri()
    assert "%5Bx86_64%5D" in files[0]["url"]   # a URI, not a path


def test_artifacts_get_the_url_the_dir_is_published_at(tmp_path):
    data = document(tmp_path, base_url="https://ci.example.org/jobs/7/artifacts/merged/")
    files = next(t for t in data["tests"] if t["path"] == "livepatch.smoke.a")["output_files"]
    assert files[0]["url"] == ("https://ci.example.org/jobs/7/artifacts/merged/failed/"
                               "smoke_a%5Bx86_64%5D/console.log")


def test_names_are_what_kcidb_paths_allow_and_repeats_have_ids_of_their_own(tmp_path):
    runs = [Outcome("examples/my livepatches/fix.v2", "x86_64", "pass", run=r) for r in (1, 2)]
    data = document(tmp_path, runs)
    assert [t["path"] for t in data["tests"]] == ["livepatch.examples.my_livepatches.fix_v2"] * 2
    assert len({t["id"] for t in data["tests"]}) == 2


def test_an_arch_without_an_image_still_has_a_build_for_its_tests(tmp_path):
    skip = Outcome.skipped("smoke/a", "arm64", Skip("not for arm64", "arches"))
    data = document(tmp_path, [skip])
    builds = {b["architecture"]: b for b in data["builds"]}
    assert "status" not in builds["arm64"] and data["tests"][0]["build_id"] == builds["arm64"]["id"]


def test_a_wrong_status_is_refused_by_the_validator(tmp_path):
    """The negative control: kcidb-io refuses a status KCIDB does not have, and so does
    kcidb.validate, naming where."""
    data = document(tmp_path)
    data["tests"][0]["status"] = "GREEN"
    with pytest.raises(jsonschema.ValidationError):
        V5_3.validate_exactly(data)
    with pytest.raises(kcidb.KcidbError, match=r"at tests/0/status: 'GREEN' is not one of"):
        kcidb.validate(data)
