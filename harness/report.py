"""A run's report, for a QA team to file: written into the run's artifacts directory.

Beside the run's ``failed/`` artifacts and ``machines/`` consoles, it holds:

- ``summary.txt``: the summary table the run printed;
- ``junit.xml``: one test case per scenario and architecture (JUnit XML, as CI tools read);
- ``versions.json``: the harness version, and per architecture the image, its kernel
  release and its packages with their versions (what each guest recorded when its image
  was ready, ``images/<arch>.json``);
- ``report.html``: one self-contained page (no scripts, no outside files but the
  artifacts it links to): the counts, the skips by cause (with the command that would
  run them where another image would), and the scenario x architecture matrix coloured
  by result, with times, each failure linking to its artifacts.

The same for ``klp-harness run`` and for pytest (the controller writes it, from the
outcomes its workers reported).
"""
from __future__ import annotations

import html
from html.parser import HTMLParser
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional

import junitparser

from . import kcidb, ktap, repeat, runrecord, skipsummary, stats
from .image import Image
from .outcome import Outcome, Status
from .paths import PROJECT

COLOURS = {Status.PASS: "#b7e1b0", Status.FAIL: "#f4a6a6", Status.SKIP: "#e0e0e0",
           Status.XFAIL: "#f6d89a"}
LABELS = {Status.PASS: "passed", Status.FAIL: "failed", Status.SKIP: "skipped",
          Status.XFAIL: "expected failure (known kernel failure, or negative control caught)"}


def record_image(run_dir: Path, image: Image, facts: Optional[dict] = None) -> None:
    """What an arch's guest runs, for the report: written when its image is ready.
    ``facts``: what it was built from and booted with (buildinfo.facts)."""
    target = run_dir / "images" / f"{image.arch}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({
        "image": image.name, "arch": image.arch, "kernel_release": image.kernel_release,
        "kernel_patches": image.kernel_patches, "kernel": image.kernel_name,
        "packages": image.packages, "image_dir": str(image.dir), **(facts or {})},
        indent=2) + "\n")


def images(run_dir: Path) -> Dict[str, dict]:
    """Each arch's record_image, by arch."""
    found = {}
    for path in sorted((run_dir / "images").glob("*.json")):
        d = json.loads(path.read_text())
        found[d["arch"]] = d
    return found


def harness_version() -> str:
    """The package version, and the commit it was run from when it runs from a checkout."""
    try:
        version = metadata.version("klp-harness")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return f"{version} ({commit})" if commit else version


def summary(outcomes: List[Outcome], repeat_count: int = 1) -> str:
    """A table: one row per scenario, one column per arch, each cell result and time (with
    --repeat: its failed runs as k/N with their 95% interval, and the mean time); then the
    counts, and the skips by cause (skipsummary: what would run them). ``repeat_count``
    is the runs asked for, to name the cells that ran fewer (--until-fail)."""
    arches = list(dict.fromkeys(o.arch for o in outcomes))
    found = repeat.cells(outcomes)
    cells: Dict[str, Dict[str, str]] = {}
    for (scenario, arch), cell in found.items():
        cells.setdefault(scenario, {})[arch] = cell.text() if cell.repeated else \
            f"{cell.runs[-1].status:<5} {cell.runs[-1].seconds:5.1f}s"
    width = max([len(s) for s in cells] + [8])
    column = max([12] + [len(t) for row in cells.values() for t in row.values()]) \
        if any(c.repeated for c in found.values()) else 12
    kernels = {o.arch: o.kernel for o in outcomes if o.kernel}
    lines = []
    if kernels:
        lines.append("kernels: " + ", ".join(f"{a} {kernels[a]}" for a in arches if a in kernels))
    lines.append((f"{'scenario':<{width}}" + "".join(f"  {a:<{column}}" for a in arches))
                 .rstrip())
    for scenario, row in cells.items():
        lines.append((f"{scenario:<{width}}"
                      + "".join(f"  {row.get(a, '-'):<{column}}" for a in arches)).rstrip())
    counts = {s: sum(o.status == s for o in outcomes) for s in Status}
    lines.append(f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
                 f"{counts[Status.SKIP]} skipped"
                 + (f", {counts[Status.XFAIL]} expected failures (known kernel failures, "
                    f"negative controls caught)" if counts[Status.XFAIL] else ""))
    if any(c.repeated for c in found.values()):
        lines += _repeat_lines(found.values(), repeat_count)
    if counts[Status.SKIP]:
        lines.append(f"{counts[Status.SKIP]} skipped, by cause:")
        lines += skipsummary.lines(skipsummary.groups(outcomes))
    return "\n".join(lines)


def _repeat_lines(cells, repeat_count: int) -> List[str]:
    """What a repeated run's cells mean, and those that ran fewer times than asked."""
    lines = [f"--repeat {repeat_count}: a cell's failed runs (fail, xfail) of those that ran, "
             "their 95% Wilson interval, the mean time"]
    short = [f"{repeat.item_id(c.scenario, c.arch)} {len(c.runs)}" for c in cells
             if len(c.runs) < repeat_count]
    if short:   # --until-fail's, Ctrl-C's, or pytest -k's
        lines.append(f"ran fewer than {repeat_count} times: " + ", ".join(short))
    return lines


def write(run_dir: Path, outcomes: List[Outcome], summary_text: str,
          interrupted: bool = False, artifacts_url: Optional[str] = None) -> Path:
    """Write the report files into ``run_dir``; return the HTML page's path. Beside the
    page: summary.txt, versions.json, junit.xml, results.ktap (KTAP v1, a test per cell),
    outcomes.json (what a merge reads back) and kcidb.json (``artifacts_url``: where the
    dir is published, for the artifacts' URLs)."""
    run_dir = Path(run_dir)
    found = images(run_dir)
    versions = {"harness": harness_version(), "images": found}
    (run_dir / "summary.txt").write_text(summary_text + "\n")
    (run_dir / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    _junit(run_dir / "junit.xml", outcomes)
    (run_dir / "results.ktap").write_text(_ktap(outcomes, versions["harness"]))
    try:
        record = runrecord.RunRecord.read(run_dir)
        image, run_key = record.image, record.run_id or run_dir.name
    except runrecord.RunDirError:   # a dir written by hand (tests), or by an older run
        image = next((d["image"] for d in found.values()), "")
        run_key = run_dir.name
    runrecord.write_outcomes(run_dir, outcomes, image, interrupted)
    page = run_dir / "report.html"
    page.write_text(_html(run_dir, outcomes, versions))
    kcidb.write(run_dir, outcomes, found, run_key, artifacts_url)
    return page


def _ktap(outcomes: List[Outcome], harness: str) -> str:
    """KTAP version 1, a test per cell (scenario x arch) with its status: a skip's and an
    expected failure's reason as the directive, a failure's first line as a diagnostic,
    a repeated cell's failed runs as k/N."""
    tests = []
    for cell in repeat.cells(outcomes).values():
        status = cell.status
        why = next((o.headline for o in cell.runs
                    if o.status == status), "").replace("#", "%")
        notes = [f"runs: {cell.rate()} failed" if cell.repeated and cell.ran else ""]
        if status == Status.FAIL and why:
            notes.append(why)
        directive = {Status.SKIP: f"SKIP {why}", Status.XFAIL: f"XFAIL {why}"}.get(status, "")
        tests.append(ktap.TestLine(repeat.item_id(cell.scenario, cell.arch),
                                   status in (Status.PASS, Status.SKIP, Status.XFAIL),
                                   directive.strip(), [n for n in notes if n]))
    return ktap.render(tests, [f"klp-harness {harness}"], version=ktap.KTAP_V1)


def _junit(path: Path, outcomes: List[Outcome]) -> None:
    """JUnit XML through junitparser: a kept library knows the format's details (the
    order of properties and results, the suite's counts), which readers are strict about."""
    suite = junitparser.TestSuite("klp-harness")
    cells = repeat.cells(outcomes)
    repeated = {key: cell for key, cell in cells.items() if cell.repeated}
    for cell in repeated.values():   # each cell's line, as in the summary (first: JUnit's order)
        suite.add_property(repeat.item_id(cell.scenario, cell.arch), cell.text())
    for o in outcomes:
        case = junitparser.TestCase(repeat.item_id(o.scenario, o.arch, o.run), o.scenario,
                                    round(o.seconds, 1))
        props = {"kernel": o.kernel} if o.kernel else {}   # with its --kernel-patch files
        if (o.scenario, o.arch) in repeated:
            props.update(_rate_properties(o, repeated[(o.scenario, o.arch)]))
        if props:
            element = junitparser.Properties()
            for name, value in props.items():
                element.add_property(junitparser.Property(name, value))
            case.append(element)
        first = o.headline
        if o.status == Status.FAIL:
            failure = junitparser.Failure(first or "failed")
            failure.text = o.message
            case.result = [failure]
        elif o.status in (Status.SKIP, Status.XFAIL):
            case.result = [junitparser.Skipped(first, str(o.status))]
        suite.add_testcase(case)
    suite.update_statistics()
    suite.write(str(path))


def _rate_properties(o: Outcome, cell: "repeat.Cell") -> Dict[str, str]:
    """A repeated run's test case: which run it was, and its cell's failure rate."""
    props = {"run": str(o.run), "failure_rate": cell.rate(),
             "failed_runs": str(cell.failures), "runs": str(len(cell.ran))}
    if cell.ran:
        low, high = stats.wilson(cell.failures, len(cell.ran))
        props.update(failure_rate_low=f"{low:.4f}", failure_rate_high=f"{high:.4f}")
    return props


def _html(run_dir: Path, outcomes: List[Outcome], versions: dict) -> str:
    arches = list(dict.fromkeys(o.arch for o in outcomes))
    rows: Dict[str, Dict[str, List[Outcome]]] = {}
    for o in outcomes:   # a scenario run twice (--repeat, a pool) keeps both runs
        rows.setdefault(o.scenario, {}).setdefault(o.arch, []).append(o)
    counts = {s: sum(o.status == s for o in outcomes) for s in COLOURS}
    e = html.escape
    run = run_dir.resolve()   # links are relative to the page, so the directory can move

    image_rows = "".join(
        f"<tr><th>{e(a)}</th><td>{e(d['image'])}</td><td>{e(d.get('kernel', d['kernel_release']))}</td>"
        f"<td>{e(', '.join(f'{n} {v}' for n, v in d['packages'].items()) or '(built from source)')}"
        "</td></tr>" for a, d in versions["images"].items())
    matrix = "".join(
        f'<tr data-scenario="{e(s)}"><th class="scenario">{e(s)}</th>'
        + "".join(_cell(rows[s].get(a, []), a, run) for a in arches) + "</tr>" for s in rows)
    legend = " ".join(f'<span class="{s}">{e(LABELS[s])}: {counts[s]}</span>' for s in COLOURS)
    style = "".join(f"td.{s}, span.{s} {{ background: {c}; }}\n" for s, c in COLOURS.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>klp-harness report: {e(run_dir.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #999; padding: 0.25em 0.5em; vertical-align: top; }}
th.scenario {{ text-align: left; font-weight: normal; font-family: monospace; }}
.files, .why {{ font-size: 80%; }}
.why {{ color: #333; max-width: 40em; }}
.legend span {{ padding: 0.1em 0.4em; margin-right: 0.5em; }}
#skips ul {{ margin-top: 0; }}
#skips .count {{ display: inline-block; min-width: 2em; text-align: right; }}
{style}</style></head>
<body>
<h1>klp-harness report</h1>
<p>Run <code>{e(run_dir.name)}</code>, harness {e(versions['harness'])}.</p>
<table id="images"><tr><th>arch</th><th>image</th><th>kernel</th><th>packages</th></tr>
{image_rows}</table>
<p class="legend">{legend}</p>
{_skips(outcomes)}<table id="matrix">
<tr><th>scenario</th>{"".join(f'<th class="arch">{e(a)}</th>' for a in arches)}</tr>
{matrix}
</table>
<p>Also here: <a href="summary.txt">summary.txt</a>, <a href="junit.xml">junit.xml</a>,
<a href="versions.json">versions.json</a>, the consoles under <a href="machines/">machines/</a>.</p>
</body></html>
"""


def _cell(runs: List[Outcome], arch: str, run_dir: Path) -> str:
    """A matrix cell: each run's result and time, and the reason of those that did not
    pass; a repeated cell (--repeat) first gives its failed runs as k/N, lists the runs
    that did not pass (with their run's number) and counts those that passed."""
    if not runs:
        return '<td class="none">-</td>'
    e = html.escape
    cell = repeat.Cell(runs[0].scenario, arch, runs)
    if not cell.repeated:   # as before --repeat, a scenario given twice too
        status = Status.FAIL if any(o.status == Status.FAIL for o in runs) else runs[0].status
        parts = [_run_html(o, run_dir) for o in runs]
    else:
        status = cell.status
        parts = [f'<div class="rate">{e(cell.text())}</div>']
        parts += [_run_html(o, run_dir) for o in runs if o.status != Status.PASS]
        passed = [o for o in runs if o.status == Status.PASS]
        if passed:
            parts.append(f'<div class="passes">{len(passed)} passed, mean '
                         f'{sum(o.seconds for o in passed) / len(passed):.1f}s</div>')
    return (f'<td class="{status}" data-arch="{e(arch)}" data-status="{status}">'
            + "".join(parts) + "</td>")


def _run_html(o: Outcome, run_dir: Path) -> str:
    """One run in a cell: result and time (run K: with --repeat), linking to its artifacts,
    and the first line of why it did not pass."""
    e = html.escape
    text = (f"run {o.run}: " if o.run else "") + f"{o.status} {o.seconds:.1f}s"
    if o.artifacts:
        kept = Path(o.artifacts).resolve()
        rel = kept.relative_to(run_dir) if kept.is_relative_to(run_dir) else kept
        links = " ".join(f'<a href="{e(str(rel / f.name))}">{e(f.stem)}</a>'
                         for f in sorted(kept.iterdir()) if f.is_file())
        text = (f'<a class="result" href="{e(str(rel))}/">{e(text)}</a>'
                f'<div class="files">{links}</div>')
    else:
        text = f'<span class="result">{e(text)}</span>'
    why = o.headline if o.status != Status.PASS else ""
    if why:   # a failure's or a skip's reason, its first line
        text += f'<div class="why">{e(why[:160] + ("..." if len(why) > 160 else ""))}</div>'
    return f'<div title="{e(why)}">{text}</div>'


def _skips(outcomes: List[Outcome]) -> str:
    """The skips by cause under the counts: a skip is rarely something missing."""
    found = skipsummary.groups(outcomes)
    if not found:
        return ""
    e = html.escape
    items = "".join(f'<li><span class="count">{g.count}</span> {e(g.label)}'
                    + (f'<br><code>{e(g.command)}</code>' if g.command else "") + "</li>\n"
                    for g in found)
    return (f'<div id="skips"><p>{sum(g.count for g in found)} skipped, by cause:</p>\n'
            f"<ul>\n{items}</ul></div>\n")


class MatrixReader(HTMLParser):
    """The matrix of a report page read back (from the file, or from a browser's DOM):
    ``arches`` in column order, ``cells`` {(scenario, arch): (status, text)} and ``links``
    {(scenario, arch): [href, ...]}."""

    def __init__(self):
        super().__init__()
        self.arches: List[str] = []
        self.cells: Dict[tuple, tuple] = {}
        self.links: Dict[tuple, List[str]] = {}
        self._row = self._cell = None
        self._in_arch = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-scenario" in a:
            self._row = a["data-scenario"]
        elif tag == "th" and a.get("class") == "arch":
            self._in_arch = True
        elif tag == "td" and self._row and "data-status" in a:
            self._cell = (self._row, a["data-arch"])
            self.cells[self._cell] = (a["data-status"], "")
        elif tag == "a" and self._cell:
            self.links.setdefault(self._cell, []).append(a["href"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "th":
            self._in_arch = False

    def handle_data(self, data):
        if self._in_arch:
            self.arches.append(data)
        elif self._cell:
            status, text = self.cells[self._cell]
            self.cells[self._cell] = (status, text + data)
