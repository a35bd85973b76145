"""The QA report's files, from outcomes (pure logic; tests/integration/test_distribution_qa.py
opens a real run's page in a real browser)."""
import json
import xml.etree.ElementTree as ET

from harness import report
from harness.outcome import Outcome


def test_a_report_holds_the_matrix_junit_versions_and_links_to_failures(tmp_path):
    run = tmp_path / "run-1"
    failed = run / "failed" / "a[x86_64]"
    failed.mkdir(parents=True)
    (failed / "console.log").write_text("boot\n")
    (failed / "failure.txt").write_text("why\n")
    (run / "images").mkdir()
    (run / "images" / "x86_64.json").write_text(json.dumps({
        "image": "debian-bookworm", "arch": "x86_64", "kernel_release": "6.1.0-50-amd64",
        "packages": {"linux-image-6.1.0-50-amd64": "6.1.176-1"}, "image_dir": "/x"}))
    outcomes = [Outcome("a", "x86_64", "fail", "step 1 <run>: exit 1", 1.5,
                        artifacts=str(failed)),
                Outcome("a", "s390x", "pass", seconds=2.0),
                Outcome("b", "x86_64", "skip", "no kprobes & no luck", 0.0),
                Outcome("b", "s390x", "xfail", "negative control caught", 3.0)]
    page = report.write(run, outcomes, "the table")

    assert (run / "summary.txt").read_text() == "the table\n"
    versions = json.loads((run / "versions.json").read_text())
    assert versions["harness"].startswith("0.1.0")
    assert versions["images"]["x86_64"]["packages"] == {"linux-image-6.1.0-50-amd64": "6.1.176-1"}
    cases = {c.get("name"): c for c in ET.parse(run / "junit.xml").iter("testcase")}
    assert set(cases) == {"a[x86_64]", "a[s390x]", "b[x86_64]", "b[s390x]"}
    assert cases["a[x86_64]"].find("failure").get("message") == "step 1 <run>: exit 1"
    assert cases["b[x86_64]"].find("skipped").get("message") == "no kprobes & no luck"
    assert list(cases["a[s390x]"]) == []

    m = report.MatrixReader()
    m.feed(page.read_text())
    assert m.arches == ["x86_64", "s390x"]
    assert m.cells == {("a", "x86_64"): ("fail", "fail 1.5sconsole failurestep 1 <run>: exit 1"),
                       ("a", "s390x"): ("pass", "pass 2.0s"),
                       ("b", "x86_64"): ("skip", "skip 0.0sno kprobes & no luck"),
                       ("b", "s390x"): ("xfail", "xfail 3.0snegative control caught")}
    # the failure links to its artifacts, relative to the page: the directory stays movable
    assert m.links[("a", "x86_64")] == ["failed/a[x86_64]/", "failed/a[x86_64]/console.log",
                                        "failed/a[x86_64]/failure.txt"]
    assert "6.1.176-1" in page.read_text() and "&lt;run&gt;" in page.read_text()


def test_the_page_says_under_its_counts_what_the_skips_need(tmp_path):
    from harness.skips import Skip
    kasan = Skip("the image's kernel config lacks CONFIG_KASAN", "need kernel config CONFIG_KASAN",
                 ("CONFIG_KASAN",), "linux-7.3")
    outcomes = [Outcome.skipped("debug/kasan", "x86_64", kasan),
                Outcome.skipped("debug/kasan", "s390x", kasan),
                Outcome("smoke/a", "x86_64", "skip", "no kprobes & no luck"),
                Outcome("smoke/a", "s390x", "pass")]
    page = report.write(tmp_path, outcomes, "the table").read_text()
    section = page[page.index('<div id="skips">'):page.index('<table id="matrix">')]
    assert "<p>3 skipped, by cause:</p>" in section
    assert ('<li><span class="count">1</span> need the linux-7.3-debug image (kernel config '
            'CONFIG_KASAN); on x86_64<br><code>./klp run --image linux-7.3-debug --arch x86_64 '
            'scenarios/debug/kasan.yaml</code></li>') in section
    assert ('<li><span class="count">1</span> need kernel config CONFIG_KASAN, which no image '
            'recipe sets for s390x</li>') in section
    assert '<span class="count">1</span> no kprobes &amp; no luck; on x86_64</li>' in section
    assert page.index('class="legend"') < page.index('id="skips"')
    # a run without skips has no such section
    assert 'id="skips"' not in report.write(tmp_path, outcomes[3:], "t").read_text()


def test_a_repeated_cell_shows_its_rate_in_the_matrix_and_in_junit(tmp_path):
    run = tmp_path / "run-1"
    failed = run / "failed" / "a[x86_64]-2"
    failed.mkdir(parents=True)
    (failed / "failure.txt").write_text("why\n")
    outcomes = [Outcome("a", "x86_64", "pass" if r % 4 else "xfail", "known failure: race",
                        1.0, run=r, artifacts=str(failed) if r == 4 else "")
                for r in range(1, 21)]
    outcomes += [Outcome("a", "s390x", "pass", seconds=2.0, run=r) for r in range(1, 21)]
    page = report.write(run, outcomes, "the table")

    m = report.MatrixReader()
    m.feed(page.read_text())
    assert m.cells[("a", "x86_64")][0] == "xfail"     # the cell's status: data-status
    text = m.cells[("a", "x86_64")][1]
    assert text.startswith("xfail 5/20 (95% CI 11%–47%) 1.0s")
    assert "run 4: xfail 1.0s" in text and "15 passed, mean 1.0s" in text
    assert "run 5:" not in text                        # passes are counted, not listed
    assert m.links[("a", "x86_64")] == ["failed/a[x86_64]-2/", "failed/a[x86_64]-2/failure.txt"]
    assert m.cells[("a", "s390x")] == ("pass", "pass  0/20 (95% CI 0%–16%) 2.0s20 passed, mean 2.0s")

    suite = ET.parse(run / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == 40 and {"a[x86_64]", "a[x86_64-run2]", "a[s390x-run20]"} <= set(cases)
    props = {p.get("name"): p.get("value") for p in cases["a[x86_64-run4]"].iter("property")}
    assert props == {"run": "4", "failure_rate": "5/20 (95% CI 11%–47%)", "failed_runs": "5",
                     "runs": "20", "failure_rate_low": "0.1119", "failure_rate_high": "0.4687"}
    assert cases["a[x86_64-run4]"].find("skipped").get("type") == "xfail"
    # the cells' lines, as the summary has them, in the suite's own properties
    cells = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert cells == {"a[x86_64]": "xfail 5/20 (95% CI 11%–47%) 1.0s",
                     "a[s390x]": "pass  0/20 (95% CI 0%–16%) 2.0s"}


def test_one_run_per_cell_adds_nothing_to_junit(tmp_path):
    """The control of the test above: unrepeated runs have no rate anywhere."""
    report.write(tmp_path, [Outcome("a", "x86_64", "pass", seconds=1.0)], "t")
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.find("properties") is None and list(suite.iter("property")) == []
    assert "95% CI" not in (tmp_path / "report.html").read_text()


def test_results_ktap_has_a_test_per_cell(tmp_path):
    """KTAP version 1: a line per scenario x arch, a skip's and an expected failure's reason
    as the directive, a failure's first line and a repeated cell's k/N as diagnostics."""
    outcomes = [Outcome("a", "x86_64", "pass", seconds=1.0),
                Outcome("a", "s390x", "fail", "step 2 # run: exit 1\nmore", 1.0),
                Outcome("b", "x86_64", "skip", "no kprobes"),
                Outcome("b", "s390x", "xfail", "known failure: race"),
                *[Outcome("c", "x86_64", "xfail" if r == 2 else "pass", "known failure: race",
                          run=r) for r in (1, 2, 3)]]
    report.write(tmp_path, outcomes, "t")
    lines = (tmp_path / "results.ktap").read_text().splitlines()
    assert lines[:2] == ["KTAP version 1", "1..5"] and lines[2].startswith("# klp-harness 0.1.0")
    assert lines[3:] == ["ok 1 a[x86_64]",
                         "# step 2 % run: exit 1", "not ok 2 a[s390x]",
                         "ok 3 b[x86_64] # SKIP no kprobes",
                         "ok 4 b[s390x] # XFAIL known failure: race",
                         "# runs: 1/3 (95% CI 6%–79%) failed",
                         "ok 5 c[x86_64] # XFAIL known failure: race"]
