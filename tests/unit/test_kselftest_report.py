"""The selftest dir's Makefile and settings, the scripts' TEST lines, and the KTAP report."""
import textwrap

from harness import kselftest, ktap
from harness.kselftest import Case, Report, ScriptResult

MAKEFILE_6_12 = """\
# SPDX-License-Identifier: GPL-2.0

TEST_GEN_FILES := test_klp-call_getpid
TEST_GEN_MODS_DIR := test_modules
TEST_PROGS_EXTENDED := functions.sh
TEST_PROGS := \\
\ttest-livepatch.sh \\
\ttest-callbacks.sh \\
\ttest-shadow-vars.sh \\
\ttest-state.sh \\
\ttest-ftrace.sh \\
\ttest-sysfs.sh \\
\ttest-syscall.sh

TEST_FILES := settings

include ../lib.mk
"""

PASSING = """\
TEST: basic function patching ... ok
TEST: multiple livepatches ... ok
"""

# check_result's output when the kernel log differs, then die() on stderr.
FAILING = """\
TEST: basic function patching ... ok
TEST: multiple livepatches ... not ok

--- expected
+++ result
@@ -1,2 +1,2 @@
-livepatch: enabling patch 'test_klp_livepatch'
+livepatch: enabling patch 'test_klp_livepatch2'

"""


def test_test_progs_come_in_makefile_order_and_extended_programs_are_not_tests():
    assert kselftest.test_progs(MAKEFILE_6_12) == [
        "test-livepatch.sh", "test-callbacks.sh", "test-shadow-vars.sh", "test-state.sh",
        "test-ftrace.sh", "test-sysfs.sh", "test-syscall.sh"]


def test_test_progs_appended_with_plus_equals_keep_their_place():
    assert kselftest.test_progs("TEST_PROGS := a.sh b.sh\nTEST_PROGS += c.sh  # later\n") \
        == ["a.sh", "b.sh", "c.sh"]


def test_settings_timeout_zero_means_none_and_a_missing_one_is_kselftests_default():
    assert kselftest.settings_timeout("timeout=0\n") == 0
    assert kselftest.settings_timeout("# timeout=5\ntimeout=300\n") == 300
    assert kselftest.settings_timeout(None) == kselftest.DEFAULT_TIMEOUT


def test_test_lines_give_one_case_each_with_its_verdict():
    assert kselftest.parse_cases(FAILING) == [
        Case("basic function patching", "ok"), Case("multiple livepatches", "not ok")]
    assert [c.ok for c in kselftest.parse_cases(PASSING)] == [True, True]


def test_a_script_that_died_mid_test_leaves_a_case_without_verdict():
    # start_test prints "TEST: name ... " without a newline; die() then writes to stderr.
    cases = kselftest.parse_cases("TEST: first ... ok\nTEST: atomic replace ... ")
    assert cases[-1] == Case("atomic replace", "")
    assert not cases[-1].ok
    assert kselftest.parse_cases("TEST: cmdline ... FAIL\n\n") == [Case("cmdline", "FAIL")]


def test_skip_reason_is_what_functions_sh_said():
    assert kselftest.skip_reason(
        "skip all tests: KDIR (/lib/modules/6.12/build) not available to compile modules.\n",
        "") == "KDIR (/lib/modules/6.12/build) not available to compile modules."
    assert kselftest.skip_reason("TEST: x ... ", "SKIP: failed to set kernel.ftrace_enabled = 1\n") \
        == "failed to set kernel.ftrace_enabled = 1"


def report(*results):
    return Report("x86_64", "linux-6.12", "6.12.107", 0, list(results), 1.0, 10.0)


def test_ktap_of_a_run_reads_like_kselftests_runner():
    text = report(
        ScriptResult("test-livepatch.sh", "pass", 0, PASSING, "", timeout=900),
        ScriptResult("test-state.sh", "fail", 1, FAILING,
                     "ERROR: livepatch kselftest(s) failed\n", timeout=900,
                     cleanup=["disabled test_klp_livepatch2"]),
        ScriptResult("test-ftrace.sh", "skip", 4, "TEST: ftrace ... ",
                     "SKIP: failed to set kernel.ftrace_enabled = 1\n", timeout=900),
        ScriptResult("test-syscall.sh", "fail", 124, "TEST: getpid ... ", "", timeout=900),
    ).ktap()
    assert text == textwrap.dedent("""\
        TAP version 13
        1..4
        # klp-harness: linux-6.12 x86_64, kernel 6.12.107
        # timeout set to 0
        # selftests: livepatch: test-livepatch.sh
        # TEST: basic function patching ... ok
        # TEST: multiple livepatches ... ok
        ok 1 selftests: livepatch: test-livepatch.sh
        # timeout set to 0
        # selftests: livepatch: test-state.sh
        # TEST: basic function patching ... ok
        # TEST: multiple livepatches ... not ok
        #
        # --- expected
        # +++ result
        # @@ -1,2 +1,2 @@
        # -livepatch: enabling patch 'test_klp_livepatch'
        # +livepatch: enabling patch 'test_klp_livepatch2'
        #
        # ERROR: livepatch kselftest(s) failed
        # klp-harness cleanup: disabled test_klp_livepatch2
        not ok 2 selftests: livepatch: test-state.sh # exit=1
        # timeout set to 0
        # selftests: livepatch: test-ftrace.sh
        # TEST: ftrace ...
        # SKIP: failed to set kernel.ftrace_enabled = 1
        ok 3 selftests: livepatch: test-ftrace.sh # SKIP failed to set kernel.ftrace_enabled = 1
        # timeout set to 0
        # selftests: livepatch: test-syscall.sh
        # TEST: getpid ...
        not ok 4 selftests: livepatch: test-syscall.sh # TIMEOUT 900 seconds
        """)


def test_a_run_is_ok_when_every_script_passed_or_skipped():
    ok = ScriptResult("a.sh", "pass", 0)
    skipped = ScriptResult("b.sh", "skip", 4)
    failed = ScriptResult("c.sh", "fail", 1)
    assert report(ok, skipped).ok
    assert not report(ok, failed).ok


def test_a_script_that_did_not_run_says_why_in_its_directive():
    missing = ScriptResult("test-new.sh", "fail", None, note="file test-new.sh is missing")
    assert ktap.result_line(3, missing.ktap(0)) == \
        "not ok 3 selftests: livepatch: test-new.sh # file test-new.sh is missing"


KPROBE_OUT = ("TEST: livepatch interaction with kprobed function with post_handler ... ok\n"
              "TEST: livepatch interaction with kprobed function without post_handler ... "
              "not ok\n")
WITH, WITHOUT = ("livepatch interaction with kprobed function with post_handler",
                 "livepatch interaction with kprobed function without post_handler")


def test_a_script_failing_only_declared_cases_is_an_expected_failure_with_the_reason():
    r = ScriptResult("test-kprobe.sh", "fail", 1, KPROBE_OUT)
    r.planned = [WITH, WITHOUT]
    r.judge_known({WITHOUT: "s390's kprobe_ftrace_handler\n  overwrites the redirect"})
    assert r.status == "xfail"
    line = ktap.result_line(4, r.ktap(0))
    assert line == (f"ok 4 selftests: livepatch: test-kprobe.sh # XFAIL known kernel failure: "
                    f"{WITHOUT}: s390's kprobe_ftrace_handler overwrites the redirect")
    report = Report("s390x", "linux-7.3", "7.3.4", 0, [r], 0.0, 0.0)
    assert report.ok


def test_an_undeclared_failure_stays_a_failure_even_beside_a_declared_one():
    out = KPROBE_OUT.replace("with post_handler ... ok", "with post_handler ... not ok")
    r = ScriptResult("test-kprobe.sh", "fail", 1, out)
    r.judge_known({WITHOUT: "known"})
    assert r.status == "fail" and not r.known
    assert not Report("s390x", "linux-7.3", "7.3.4", 0, [r], 0.0, 0.0).ok


def test_a_passing_script_is_not_turned_into_an_expected_failure():
    r = ScriptResult("test-kprobe.sh", "pass", 0, KPROBE_OUT.replace("not ok", "ok"))
    r.judge_known({WITHOUT: "known"})
    assert r.status == "pass"


def test_cases_after_a_known_failure_are_listed_as_not_run():
    r = ScriptResult("test-x.sh", "fail", 1, "TEST: a ... ok\nTEST: b ... not ok\n")
    r.planned = ["a", "b", "c"]
    r.judge_known({"b": "why"})
    assert "klp-harness: not run after the known failure: c" in r.ktap(0).diagnostics


def test_planned_cases_are_the_literal_start_test_names():
    text = 'start_test "basic function patching"\n\tstart_test "multiple livepatches"\n' \
           'start_test "$name"\n'
    assert kselftest.planned_cases(text) == ["basic function patching", "multiple livepatches"]
