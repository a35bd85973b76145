"""Upstream's livepatch selftest scripts, unmodified, on a real guest (about 2 minutes under
TCG on x86_64), and how failing, skipping and hanging scripts are reported."""
import pytest

from harness import applicability, image as imagemod, kselftest, livepatch
from harness.scenario import upstream_cases

PARITY = imagemod.PROJECT / "scenarios" / "parity"

pytestmark = pytest.mark.vm


def test_upstream_scripts_pass_and_agree_with_the_scenarios_case_by_case(klp_harness_session,
                                                                        klp_arch):
    """Every script passes, skips as its scenarios do, or fails only in the cases its
    scenarios declare known kernel failures on this arch (XFAIL in the KTAP); each case the
    scripts run has its scenario, and each case a scenario names runs."""
    session = klp_harness_session
    image = session.state(klp_arch).image
    cases = upstream_cases([PARITY])
    known = {c: sc.known_failures[klp_arch] for c, variants in cases.items()
             for sc in variants if klp_arch in sc.known_failures}
    report = kselftest.run(session.guest(klp_arch), image, known=known)
    saved = kselftest.save(report, session.run_dir / "kselftest" / klp_arch)
    assert report.results, "the selftest Makefile lists no TEST_PROGS"
    problems = []
    for r in report.results:
        mine = {test: variants for (script, test), variants in cases.items()
                if script == r.script}
        if r.status == "skip":
            problems += [f"{r.script} skips ({r.directive()}) but scenario {sc.id} runs here"
                         for variants in mine.values() for sc in variants
                         if not applicability.skip(sc, klp_arch, image)]
            continue
        if r.status not in ("pass", "xfail"):
            problems.append(f"{r.script}: {r.status} {r.directive()}")
        ran = {c.name: c for c in r.cases}
        for name, case in ran.items():
            if name not in mine:
                problems.append(f"{r.script}: case '{name}' has no scenario (upstream: field)")
                continue
            declared = {klp_arch in sc.known_failures for sc in mine[name]}
            if declared != {not case.ok}:
                problems.append(f"{r.script}: case '{name}' is {case.verdict or 'unfinished'}"
                                f" but its scenarios ({', '.join(sc.id for sc in mine[name])})"
                                " declare " + ("a known failure" if case.ok else "none")
                                + f" on {klp_arch}")
        for name in r.planned:
            if name in mine and name not in ran and not r.known:
                problems.append(f"{r.script}: case '{name}' did not run")
    assert not problems, "\n".join(problems) + f"\n\n{report.ktap()}\nfull output: {saved}"
    assert report.ok


@pytest.fixture
def script_dir(klp_harness_session, klp_arch):
    """The guest's selftest dir, installed, for scripts of our own beside upstream's."""
    guest = klp_harness_session.guest(klp_arch)
    kselftest.install(guest, klp_harness_session.state(klp_arch).image)
    written = []

    def write(name, text):
        guest.run(f"cat > {kselftest.GUEST_DIR}/{name} <<'EOF'\n{text}EOF", check=True)
        written.append(name)
    yield guest, write
    guest.run(f"cd {kselftest.GUEST_DIR} && rm -f {' '.join(written)}")


def test_a_failing_script_is_not_ok_and_its_patch_is_cleaned_up(script_dir):
    guest, write = script_dir
    write("fails.sh", ". ./functions.sh\nsetup_config\nstart_test 'loads and fails'\n"
                      "load_lp test_klp_livepatch\necho broken >&2\nexit 1\n")
    result = kselftest.run_script(guest, "fails.sh", limit=60)
    assert (result.status, result.exit_status, result.stderr) == ("fail", 1, "broken\n")
    assert result.directive() == "exit=1"
    assert [c.name for c in result.cases] == ["loads and fails"]
    assert "livepatch: enabling patch 'test_klp_livepatch'" in result.kmsg
    result.cleanup = kselftest.clean_up(guest, ["test_klp_livepatch"])
    assert result.cleanup == ["disabled test_klp_livepatch", "unloaded test_klp_livepatch"]
    assert "test_klp_livepatch" not in livepatch.loaded_modules(guest)


def test_exit_4_is_a_skip_with_the_scripts_reason(script_dir):
    guest, write = script_dir
    write("skips.sh", ". ./functions.sh\nskip 'no frobnicator here'\n")
    result = kselftest.run_script(guest, "skips.sh", limit=60)
    assert (result.status, result.directive()) == ("skip", "SKIP no frobnicator here")


def test_a_script_over_its_timeout_is_ended_and_reported(script_dir):
    guest, write = script_dir
    write("hangs.sh", "echo started\nsleep 600\n")
    result = kselftest.run_script(guest, "hangs.sh", limit=2)
    assert (result.status, result.exit_status, result.stdout) == ("fail", 124, "started\n")
    assert result.directive() == f"TIMEOUT {result.timeout} seconds"
    assert result.seconds < 60
    left = guest.run("for p in /proc/[0-9]*; do [ \"$(tr '\\0' ' ' < $p/cmdline)\" = "
                     "'sleep 600 ' ] && echo $p; done 2>/dev/null; true")
    assert left.stdout == ""                                # its children ended too
