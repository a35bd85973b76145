"""The runner's own logic against a fake guest (no VM): what a step's failure says, the
kernel-log transcript and splat checks, sysfs comparisons, known and expected failures,
and that clean-up runs whatever happened. Real guests run the same code in
tests/integration and every scenario."""
import re
import shlex
import textwrap

import pytest

from harness import kmsg
from harness.guest import Result
from harness.outcome import Outcome, Status, verdict
from harness.runner import Runner
from harness.scenario import Scenario


class FakeGuest:
    """Answers commands by the first matching pattern; lines written to /dev/kmsg (as the
    runner's `% ...` lines) land in its kernel log."""

    scale = 1.0

    def __init__(self, answers=(), kernel_log=()):
        self.history, self.answers = [], list(answers)
        self.records = [kmsg.Record(i, 6, 0, i, m) for i, m in enumerate(kernel_log)]
        self.logs_on = {}   # command -> [(message, facility)] logged while it runs

    def logs_while(self, command, *messages, facility=0):
        self.logs_on.setdefault(command, []).extend((m, facility) for m in messages)

    def run(self, command, timeout=60.0, check=False):
        for message, facility in self.logs_on.get(command, []):
            self.log(message, facility)
        written = re.match(r"printf '<7>%s\\n' (.*) > /dev/kmsg$", command)
        if written:
            self.log(shlex.split(written.group(1))[0], facility=1)
        status, out, err = next((a for p, a in self.answers if re.search(p, command)),
                                (0, "", ""))
        result = Result(command, status, out, err, 0.0)
        self.history.append(result)
        return result

    def log(self, message, facility=0):
        self.records.append(kmsg.Record(len(self.records), 6, facility, 0, message))

    def panicked(self):
        return False

    def kmsg_cursor(self):
        return len(self.records)

    def kmsg_since(self, cursor):
        return self.records[cursor:]


def scenario(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return Scenario.load(path)


def run(guest, sc, arch="x86_64"):
    """The runner's outcome with its verdict, as Session.finish gives it."""
    return verdict(sc, Runner(guest, catalog=None, arch=arch).run(sc))


def test_a_run_step_names_the_step_and_the_difference(tmp_path):
    guest = FakeGuest([(r"^cat /proc/cmdline$", (0, "original\n", ""))])
    outcome = run(guest, scenario(tmp_path, """\
        steps:
          - run: cat /proc/cmdline
            stdout: patched
        """))
    assert outcome.status == "fail"
    assert outcome.message == (f"step 1, run ({tmp_path / 's.yaml'}:2): 'cat /proc/cmdline' "
                               "printed 'original\\n', expected 'patched'")


def test_sysfs_values_are_compared_attribute_by_attribute(tmp_path):
    dump = ("/sys/kernel/livepatch/p/enabled=1\n/sys/kernel/livepatch/p/transition=0\n"
            "/sys/kernel/livepatch/p/vmlinux/patched=1\n")
    guest = FakeGuest([(r"for f in /sys/kernel/livepatch", (0, dump, ""))])
    outcome = run(guest, scenario(tmp_path, """\
        steps:
          - sysfs: {p/enabled: 0, p/vmlinux/patched: 1, q: absent}
        """))
    assert outcome.status == "fail"
    assert outcome.message.endswith("p/enabled: expected '0', guest shows '1'")
    # the clean-up found the enabled patch and disabled it
    assert "disabled p" in outcome.cleanup
    assert any(r.command == "echo 0 > /sys/kernel/livepatch/p/enabled" for r in guest.history)


def test_a_transcript_is_compared_after_upstreams_filter(tmp_path):
    guest = FakeGuest()
    guest.logs_while("true", "livepatch: enabling patch 'p'", "unrelated: filtered out",
                     "livepatch: 'p': starting patching transition")
    outcome = run(guest, scenario(tmp_path, """\
        steps:
          - run: 'true'
          - log: ["livepatch: enabling patch 'p'", "livepatch: 'p': patching complete"]
        """))
    assert outcome.status == "fail"
    assert "kernel log differs from the expected transcript" in outcome.message
    assert "-livepatch: 'p': patching complete" in outcome.message
    assert "+livepatch: 'p': starting patching transition" in outcome.message
    assert "unrelated" not in outcome.message


def test_a_transcript_ignores_the_fake_signals_notice_that_contains_still_sees(tmp_path):
    """A busy host can hold a transition past its 15 tries: upstream's transcript is still
    met, and a scenario that asks for the notice (`contains`) still finds it."""
    guest = FakeGuest()
    guest.logs_while("true", "livepatch: 'p': starting patching transition",
                     "livepatch: signaling remaining tasks",
                     "livepatch: 'p': patching complete")
    outcome = run(guest, scenario(tmp_path, """\
        steps:
          - run: 'true'
          - log: ["livepatch: 'p': starting patching transition",
                  "livepatch: 'p': patching complete"]
          - log: {contains: ["livepatch: signaling remaining tasks"]}
          - log: {absent: ["livepatch: signaling remaining tasks"]}
        """))
    assert outcome.status == "fail"
    assert outcome.message.startswith("step 4, log")
    assert "must not appear" in outcome.message


def test_a_kernel_splat_fails_a_scenario_that_otherwise_passed(tmp_path):
    guest = FakeGuest()
    guest.logs_while("true", "WARNING: CPU: 0 PID: 1 at kernel/livepatch/core.c:1 x+0x1/0x2")
    outcome = run(guest, scenario(tmp_path, "steps:\n  - run: 'true'\n"))
    assert outcome.status == "fail"
    assert outcome.message.startswith("kernel splat during the scenario")
    assert "WARNING: CPU: 0 PID: 1" in outcome.message


# What each of the kernel's detectors prints (Linux 7.3), and the kind it is reported as.
REPORTS = [
    ("kasan", "BUG: KASAN: slab-out-of-bounds in klp_splat_kasan_init+0x3c/0x1000"),
    ("sleep in atomic", "BUG: sleeping function called from invalid context at "
                        "kernel/locking/mutex.c:578"),
    ("lockdep", "WARNING: possible circular locking dependency detected"),
    ("warning", "WARNING: CPU: 0 PID: 1 at kernel/livepatch/core.c:1 x+0x1/0x2"),
    ("hung task", "INFO: task insmod:93 blocked for more than 1 seconds."),
    ("soft lockup", "watchdog: BUG: soft lockup - CPU#1 stuck for 3s! [insmod:90]"),
    ("hard lockup", "watchdog: CPU0: Watchdog detected hard LOCKUP on cpu 1"),
    ("hard lockup", "watchdog: CPU 0 detected hard LOCKUP on other CPUs 1"),   # ppc64's own
    ("rcu stall", "rcu: INFO: rcu_preempt self-detected stall on CPU"),
    ("rcu stall", "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"),
    ("kmemleak", "kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"),
]


@pytest.mark.parametrize("kind, report", REPORTS)
def test_each_detectors_report_fails_the_scenario_naming_its_kind(tmp_path, kind, report):
    guest = FakeGuest()
    guest.logs_while("true", "livepatch: 'p': patching complete", report, "Call Trace:")
    outcome = run(guest, scenario(tmp_path, "steps:\n  - run: 'true'\n"))
    assert outcome.status == "fail"
    assert outcome.message.startswith(f"kernel splat during the scenario ({kind};")
    assert report in outcome.message


def test_a_guest_whose_kernel_reported_is_replaced_even_when_the_splat_was_expected(tmp_path):
    guest = FakeGuest()
    guest.logs_while("true", "WARNING: possible circular locking dependency detected")
    outcome = run(guest, scenario(tmp_path, "expect-splat: true\nsteps:\n  - run: 'true'\n"))
    assert outcome.status == "pass"
    assert outcome.unclean == "the kernel made a lockdep report"   # lockdep is off from now on
    clean = run(FakeGuest(), scenario(tmp_path, "steps:\n  - run: 'true'\n"))
    assert clean.status == "pass" and clean.unclean == ""


def test_a_splat_written_by_a_user_is_not_the_kernels(tmp_path):
    guest = FakeGuest()
    guest.logs_while("true", "WARNING: written to /dev/kmsg by a script", facility=1)
    assert run(guest, scenario(tmp_path, "steps:\n  - run: 'true'\n")).status == "pass"


@pytest.mark.parametrize("intermittent, stdout, status", [
    ("false", "wrong", "xfail"), ("false", "right", "fail"),   # a pass: out of date
    ("true", "wrong", "xfail"), ("true", "right", "pass")])    # a race: a pass is a pass
def test_a_known_failure_is_xfail_and_its_pass_a_failure_unless_intermittent(
        tmp_path, intermittent, stdout, status):
    guest = FakeGuest([(r"^echo right$", (0, f"{stdout}\n", ""))])
    outcome = run(guest, scenario(tmp_path, f"""\
        known-failure: {{arches: [x86_64], reason: the kernel gets it wrong,
                        intermittent: {intermittent}}}
        steps:
          - run: echo right
            stdout: right
        """))
    assert outcome.status == status
    if status == "fail":
        assert "declares a known failure on x86_64" in outcome.message
    if status == "pass":
        assert "known intermittent failure: the kernel gets it wrong" in outcome.message


@pytest.mark.parametrize("printed, status", [
    ("1 mixed: patch_state 1 as the outer began, 1 in the inner", "xfail"),   # the signature
    ("1 mixed: patch_state 0 as the outer began, 1 in the inner", "fail")])   # another bug
def test_a_known_failure_with_a_match_excuses_only_its_signature(tmp_path, printed, status):
    guest = FakeGuest([(r"^cat mixed$", (0, f"{printed}\n", ""))])
    outcome = run(guest, scenario(tmp_path, r"""
        known-failure:
          arches: [x86_64]
          reason: the window before the chosen function
          intermittent: true
          match: 'patch_state ([01]) as the outer began, \1 in the inner'
        steps:
          - run: cat mixed
            stdout: "0"
        """))
    assert outcome.status == status
    if status == "fail":
        assert "not the known failure declared on x86_64" in outcome.message


def test_a_negative_control_must_fail_with_its_message(tmp_path):
    guest = FakeGuest([(r"^echo x$", (0, "x\n", ""))])
    caught = run(guest, scenario(tmp_path, """\
        expect-failure: "echo x' printed .*, expected 'y'"
        steps:
          - run: echo x
            stdout: y
        """))
    assert caught.status == "xfail" and caught.message.startswith("negative control caught")
    missed = run(guest, scenario(tmp_path, """\
        expect-failure: "never said"
        steps:
          - run: echo x
            stdout: x
        """))
    assert missed.status == "fail" and "negative control not caught" in missed.message


def test_a_module_that_will_not_unload_leaves_the_guest_unclean():
    from harness import livepatch
    guest = FakeGuest([(r"^cat /proc/modules$", (0, "klp_a 16384 0 - Live\nklp_b 16384 1 - Live\n", "")),
                       (r"rmmod .*klp_b", (1, "", "rmmod: ERROR: Module klp_b is in use")),
                       (r"rmmod", (0, "", ""))])
    notes = livepatch.unload_modules(guest, ["klp_a", "klp_b"])
    assert notes == [livepatch.CleanupNote("unloaded klp_a"),
                     livepatch.CleanupNote("could not unload klp_b: rmmod: ERROR: Module klp_b "
                                           "is in use", lasting=True)]
    # The runner's end: every note in the outcome's clean-up, the lasting one as unclean.
    runner = Runner(guest, catalog=None, arch="x86_64")
    runner._loaded = ["klp_b", "klp_a"]
    outcome = Outcome("s", "x86_64", Status.PASS)
    runner.end(outcome, -1, {})
    assert outcome.cleanup == ["unloaded klp_a", "could not unload klp_b: rmmod: ERROR: Module "
                                                 "klp_b is in use"]
    assert outcome.unclean == "could not unload klp_b: rmmod: ERROR: Module klp_b is in use"


def test_a_skip_decided_in_the_guest_carries_its_cause_without_the_step(tmp_path):
    dump = "/sys/kernel/livepatch/p/enabled=1\n/sys/kernel/livepatch/p/transition=0\n"
    guest = FakeGuest([(r"for f in /sys/kernel/livepatch", (0, dump, "")),
                       (r"^\[ -e ", (1, "", ""))])
    outcome = run(guest, scenario(tmp_path, """\
        steps:
          - sysfs: {p/replace: 1}
        """))
    assert outcome.status == "skip"
    assert outcome.message == (f"step 1, sysfs ({tmp_path / 's.yaml'}:2): this kernel (guest "
                               "kernel) has no /sys/kernel/livepatch/<patch>/replace attribute")
    assert outcome.skip.reason == outcome.message
    assert outcome.skip.group == "need a kernel with /sys/kernel/livepatch/<patch>/replace"


def test_a_failed_guest_check_skips_with_its_words_as_the_cause(tmp_path):
    guest = FakeGuest([(r"^grep -q kprobes", (1, "", ""))])
    outcome = run(guest, scenario(tmp_path, """\
        requires:
          guest: {run: grep -q kprobes /proc/kallsyms, else-skip: no kprobes here}
        steps: [{log: []}]
        """))
    assert outcome.status == "skip"
    assert outcome.message == "no kprobes here (its requires.guest check failed in the guest)"
    assert outcome.skip.group == "no kprobes here"
