"""The kernel's own livepatch selftests, run unmodified in a booted guest, reported as KTAP.

The image carries the scripts (``source/tools/testing/selftests/livepatch``); their test
modules and helper programs are built here for the image. All of it goes to the guest as
one tar archive, laid out as ``make install`` would: the scripts, ``test_modules/*.ko``
next to them, the programs beside the scripts. Each script of the Makefile's TEST_PROGS
then runs with ``bash ./script`` in that dir, under the timeout of its ``settings``, and
its exit status is read as kselftest's runner reads it (0 ok, 4 skip, 124 timeout).

Plain library: ``run(guest, image)`` gives a Report; the CLI and the tests print and save it.
"""
from __future__ import annotations

import io
import math
import re
import shlex
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import ktap, livepatch, modules, programs
from .errors import BootError, HarnessError, WaitTimeout
from .guest import Guest
from .image import Image
from .kernelsource import SELFTESTS
from .outcome import Status
from .paths import WORKDIR

SUITE = "livepatch"                               # runner.sh names tests "selftests: livepatch: X"
GUEST_DIR = f"{WORKDIR}/kselftest-livepatch"
GUEST_ARCHIVE = "/tmp/kselftest-livepatch.tar"
SKIP_STATUS = 4
TIMEOUT_STATUS = 124        # coreutils timeout's, as runner.sh reads it
DEFAULT_TIMEOUT = 45        # kselftest's, for a dir whose settings name none
# timeout=0 in settings means none, but a hung script must still end: this many seconds
# (x86_64 under TCG, scaled per machine). The 6.12 scripts take about 120 s together.
UNLIMITED_TIMEOUT = 900
KILL_AFTER = 5              # after timeout's TERM (the scripts' trap restores their config)
CLEANUP_TIMEOUT = 30.0      # per livepatch transition when cleaning up after a failure

_CASE = re.compile(r"^TEST: (?P<name>.*?) \.\.\.(?: (?P<verdict>.*))?$")
_SKIP_PREFIX = re.compile(r"^(skip all tests|skip):\s*", re.IGNORECASE)


# -- what the selftest dir says ----------------------------------------------------------

def test_progs(makefile: str) -> List[str]:
    """The scripts of TEST_PROGS, in the Makefile's order (``:=``/``=`` set, ``+=`` adds)."""
    progs: List[str] = []
    for line in makefile.replace("\\\n", " ").splitlines():
        m = re.match(r"\s*TEST_PROGS\s*(\+|:|::)?=(.*)", line)
        if m:
            words = m.group(2).split("#", 1)[0].split()
            progs = progs + words if m.group(1) == "+" else words
    return progs


def settings_timeout(settings: Optional[str]) -> int:
    """The ``timeout=`` of a selftest dir's settings file (kselftest's default without)."""
    timeout = DEFAULT_TIMEOUT
    for line in (settings or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "timeout" and not line.lstrip().startswith("#"):
            timeout = int(value.strip())
    return timeout


@dataclass
class Case:
    """One ``TEST: <name> ... <verdict>`` line of a script's output (functions.sh)."""
    name: str
    verdict: str    # "ok", "not ok", "FAIL", or "" when the script died before deciding

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def parse_cases(stdout: str) -> List[Case]:
    cases = []
    for line in stdout.splitlines():
        m = _CASE.match(line)
        if m:
            cases.append(Case(m.group("name"), (m.group("verdict") or "").strip()))
    return cases


def skip_reason(stdout: str, stderr: str) -> str:
    """What a skipping script said about why: its last line that mentions skipping."""
    lines = [l.strip() for l in (stdout + "\n" + stderr).splitlines() if l.strip()]
    said = [l for l in lines if "SKIP" in l.upper()] or lines
    return _SKIP_PREFIX.sub("", said[-1]) if said else ""


# -- results -----------------------------------------------------------------------------

@dataclass
class ScriptResult:
    script: str
    status: Status                  # KTAP's ok is PASS, not ok FAIL; XFAIL: see judge_known
    exit_status: Optional[int]      # None when it did not run to an exit status
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timeout: int = 0                # the limit it ran under, in guest seconds
    note: str = ""                  # why it failed, when its exit status does not say
    kmsg: str = ""                  # the kernel log while it ran
    cleanup: List[str] = field(default_factory=list)
    known: Dict[str, str] = field(default_factory=dict)   # failed case -> declared reason
    planned: List[str] = field(default_factory=list)      # the script's start_test names

    def __post_init__(self):
        self.status = Status(self.status)

    def judge_known(self, declared: Dict[str, str]) -> None:
        """A failed script whose failed cases are all declared known kernel failures (for
        this arch) is an expected failure, with the reasons; any other failure stays one."""
        failed = [c.name for c in self.cases if not c.ok]
        if self.status == Status.FAIL and failed and all(n in declared for n in failed):
            self.status = Status.XFAIL
            self.known = {n: declared[n] for n in failed}

    @property
    def cases(self) -> List[Case]:
        return parse_cases(self.stdout)

    @property
    def name(self) -> str:
        return f"selftests: {SUITE}: {self.script}"

    def directive(self) -> str:
        if self.status == Status.XFAIL:
            return "XFAIL known kernel failure: " + "; ".join(
                f"{case}: {' '.join(why.split())}" for case, why in self.known.items())
        if self.status == Status.SKIP:
            return f"SKIP {skip_reason(self.stdout, self.stderr)}".rstrip()
        if self.exit_status == TIMEOUT_STATUS:
            return f"TIMEOUT {self.timeout} seconds"
        if self.status == Status.FAIL:
            return self.note or f"exit={self.exit_status}"
        return ""

    def ktap(self, settings_value: int) -> ktap.TestLine:
        lines = [f"timeout set to {settings_value}", self.name]
        lines += self.stdout.splitlines() + self.stderr.splitlines()
        lines += [f"klp-harness cleanup: {c}" for c in self.cleanup]
        ran = {c.name for c in self.cases}
        lines += [f"klp-harness: not run after the known failure: {t}"
                  for t in self.planned if self.known and t not in ran]
        return ktap.TestLine(self.name, self.status != Status.FAIL, self.directive(), lines)


@dataclass
class Report:
    arch: str
    image: str
    kernel_release: str
    settings_timeout: int
    results: List[ScriptResult]
    setup_seconds: float            # building and pushing the tests
    seconds: float                  # all of run(), setup included

    @property
    def ok(self) -> bool:
        """Every script passed, skipped or failed only as declared (known failures)."""
        return all(r.status != Status.FAIL for r in self.results)

    def ktap(self) -> str:
        header = [f"klp-harness: {self.image} {self.arch}, kernel {self.kernel_release}"]
        return ktap.render([r.ktap(self.settings_timeout) for r in self.results], header)


# -- running in the guest ----------------------------------------------------------------

def selftest_dir(image: Image) -> Path:
    path = image.dir / "source" / SELFTESTS
    if not (path / "Makefile").is_file():
        raise HarnessError(f"image {image.name} ({image.arch}) has no livepatch selftests "
                           f"at {path}: its recipe's selftests.paths must include {SELFTESTS}")
    return path


def archive(source: Path, test_modules: Dict[str, Path], helpers: Dict[str, Path]) -> bytes:
    """The selftest dir as installed: scripts and files, test_modules/*.ko, programs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(source.iterdir()):
            if path.is_file():
                tar.add(path, arcname=path.name)
        for name, ko in sorted(test_modules.items()):
            tar.add(ko, arcname=f"test_modules/{name}.ko")
        for name, program in sorted(helpers.items()):
            tar.add(program, arcname=name)
    return buf.getvalue()


def install(guest: Guest, image: Image) -> Dict[str, Path]:
    """Build what the scripts need and put it in GUEST_DIR; return the test modules."""
    source = selftest_dir(image)
    test_modules = (modules.build_set(image, image.selftest_modules, "upstream")
                    if image.selftest_modules is not None else {})
    helpers = programs.build_set(image, source, "kselftest")
    # One archive pushed and unpacked: one SFTP transfer instead of one per file.
    guest.sftp().putfo(io.BytesIO(archive(source, test_modules, helpers)), GUEST_ARCHIVE)
    kdir = "/lib/modules/$(uname -r)"
    guest.run(" && ".join([
        f"rm -rf {GUEST_DIR}", f"mkdir -p {GUEST_DIR}",
        f"tar -xf {GUEST_ARCHIVE} -C {GUEST_DIR}", f"rm -f {GUEST_ARCHIVE}",
        # functions.sh's has_kdir skips every test unless the build dir exists; the modules
        # are built already, so an empty dir does.
        f"mkdir -p {kdir}/build {kdir}/kselftest",
        # Older scripts (6.1's) load the test modules by name with modprobe.
        *([f"cp {GUEST_DIR}/test_modules/*.ko {kdir}/kselftest/", "depmod -a"]
          if test_modules else []),
    ]), check=True)
    return test_modules


def run_script(guest: Guest, script: str, limit: int) -> ScriptResult:
    """Run one script in GUEST_DIR; ``limit`` is seconds at x86_64 TCG speed."""
    guest_limit = math.ceil(limit * guest.scale)
    # coreutils' timeout by path: a busybox sh would run its own applet (exit 143, not 124).
    command = (f"cd {GUEST_DIR} && /usr/bin/timeout -k {KILL_AFTER} {guest_limit} "
               f"bash ./{shlex.quote(script)}")
    start = time.monotonic()
    cursor = guest.kmsg_cursor()
    try:
        # The guest's timeout ends the script first; this one only guards against a stuck SSH.
        r = guest.run(command, timeout=limit + 60)
        status = Status.PASS if r.status == 0 else Status.SKIP if r.status == SKIP_STATUS \
            else Status.FAIL
        result = ScriptResult(script, status, r.status, r.stdout, r.stderr, timeout=guest_limit)
    except WaitTimeout as e:
        result = ScriptResult(script, Status.FAIL, None, timeout=guest_limit,
                              note=f"TIMEOUT {guest_limit} seconds", stderr=str(e))
    result.kmsg = "\n".join(str(r) for r in guest.kmsg_since(cursor))
    result.seconds = time.monotonic() - start
    return result


def clean_up(guest: Guest, test_modules: List[str]) -> List[str]:
    """After a failed script: disable its patches and unload its modules, so that one
    failure does not fail the scripts after it."""
    notes = livepatch.cleanup(guest, CLEANUP_TIMEOUT) + livepatch.unload_modules(guest,
                                                                                  test_modules)
    return [n.text for n in notes]


def planned_cases(script_text: str) -> List[str]:
    """The test names a script gives start_test, in order (literal names only)."""
    return re.findall(r'^\s*start_test\s+"([^"$]+)"', script_text, re.M)


def run(guest: Guest, image: Image, scripts: Optional[List[str]] = None,
        known: Optional[Dict[Tuple[str, str], str]] = None) -> Report:
    """Run the selftests (``scripts``, default every one of TEST_PROGS) on ``guest``.
    ``known``: (script, test) -> reason, the known kernel failures declared for this arch
    (scenario.known_upstream_failures): a script failing only those is an expected failure."""
    start = time.monotonic()
    source = selftest_dir(image)
    settings = source / "settings"
    configured = settings_timeout(settings.read_text() if settings.exists() else None)
    limit = configured or UNLIMITED_TIMEOUT
    test_modules = sorted(install(guest, image))
    setup_seconds = time.monotonic() - start
    results: List[ScriptResult] = []
    gone = ""
    for script in scripts or test_progs((source / "Makefile").read_text()):
        if gone:
            results.append(ScriptResult(script, Status.FAIL, None, note="not run: the guest died"))
        elif not (source / script).is_file():
            results.append(ScriptResult(script, Status.FAIL, None,
                                        note=f"file {script} is missing"))
        else:
            try:
                result = run_script(guest, script, limit)
                result.planned = planned_cases((source / script).read_text())
                result.judge_known({t: why for (sc, t), why in (known or {}).items()
                                    if sc == script})
                if result.status.failed:
                    result.cleanup = clean_up(guest, test_modules)
            except BootError as e:      # a panic or QEMU exit: nothing more runs on this guest
                gone = str(e)
                result = ScriptResult(script, Status.FAIL, None, stderr=gone,
                                      note="the guest died (panic or QEMU exit)")
            results.append(result)
    return Report(image.arch, image.name, image.kernel_name, configured, results,
                  setup_seconds, time.monotonic() - start)


def save(report: Report, directory: Path) -> Path:
    """The KTAP and every script's full output and kernel log, under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ktap.txt").write_text(report.ktap())
    for r in report.results:
        (directory / f"{r.script}.log").write_text(
            f"# {r.name}: {r.status} (exit status {r.exit_status}, {r.seconds:.1f}s, "
            f"timeout {r.timeout}s)\n"
            + (f"# {r.note}\n" if r.note else "")
            + f"--- stdout\n{r.stdout}--- stderr\n{r.stderr}"
            + "".join(f"--- cleanup: {c}\n" for c in r.cleanup))
        (directory / f"{r.script}.kmsg").write_text(r.kmsg + "\n")
    return directory
