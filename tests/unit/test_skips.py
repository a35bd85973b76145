"""The summary's skips by cause: grouping, the command an image recipe gives (from the real
images/ and scenarios/ trees), counts that add up, and the causes' way from an xdist worker
to the controller."""
import json

import pytest

from harness import skipsummary
from harness.pytest_plugin import _Results
from harness.outcome import Outcome
from harness.report import summary
from harness.skips import Skip

ARCHES = ("x86_64", "ppc64le", "s390x", "arm64")
SCENARIOS = skipsummary.SCENARIOS
KLP_BUILD = ("need klp-build, which Linux 7.3.4 has only where the arch selects "
             "HAVE_KLP_BUILD (x86_64 as of 7.3)")
SYSCTL = ("kernel.ftrace_enabled=0 still disables ftrace on this kernel: the other variant "
          "of this case runs instead")
# The debug scenarios the default image skips, and the symbols they require.
DEBUG = {"debug/hard-lockup": "CONFIG_HARDLOCKUP_DETECTOR",
         "debug/hung-task": "CONFIG_DETECT_HUNG_TASK", "debug/kasan": "CONFIG_KASAN",
         "debug/kmemleak": "CONFIG_DEBUG_KMEMLEAK", "debug/lockdep": "CONFIG_PROVE_LOCKING",
         "debug/sleep-in-atomic": "CONFIG_DEBUG_ATOMIC_SLEEP",
         "debug/soft-lockup": "CONFIG_SOFTLOCKUP_DETECTOR",
         "consistency/graph-traced-sleeper": "CONFIG_FUNCTION_GRAPH_TRACER",
         "consistency/graph-tracing-and-patching": "CONFIG_FUNCTION_GRAPH_TRACER"}


def config_skip(*symbols, image="linux-7.3"):
    return Skip(f"the image's kernel config lacks {', '.join(symbols)}",
                f"need kernel config {', '.join(symbols)}", symbols, image)


def skipped(scenario, arch, skip):
    return Outcome.skipped(scenario, arch, skip)


def default_run():
    """Outcomes shaped like a default run's (linux-7.3, four arches): the debug scenarios
    (KASAN only on x86_64 and arm64 in the debug image, no lockup detectors on s390x),
    klp-build's on the three arches without it, a kernel feature, and some passes."""
    outcomes = [Outcome("smoke/a", a, "pass") for a in ARCHES]
    for a in ARCHES:
        outcomes += [skipped(s, a, config_skip(symbol)) for s, symbol in DEBUG.items()]
        if a != "x86_64":
            outcomes += [skipped(f"klp-build/patch-{i}", a, Skip(
                f"its livepatches are built from patches by klp-build: klp-build does not "
                f"support {a} in Linux 7.3.4 (...)", KLP_BUILD)) for i in range(11)]
        outcomes.append(skipped("parity/ftrace/sysctl-deprecated", a, Skip(
            f"{SYSCTL} (its requires.guest check failed in the guest)", SYSCTL)))
    return outcomes


def test_skips_are_counted_by_cause_largest_first_and_the_counts_add_up():
    outcomes = default_run()
    found = skipsummary.groups(outcomes)
    assert sum(g.count for g in found) == sum(o.status == "skip" for o in outcomes) == 73
    assert [g.count for g in found] == sorted((g.count for g in found), reverse=True)
    assert [(g.count, g.arches) for g in found] == [
        (33, ("ppc64le", "s390x", "arm64")), (32, ARCHES), (4, ARCHES),
        (2, ("ppc64le", "s390x")), (1, ("s390x",)), (1, ("s390x",))]
    assert found[0].label == f"{KLP_BUILD}; on ppc64le, s390x, arm64" and not found[0].command
    assert found[1].label.startswith("need the linux-7.3-debug image (kernel config "
                                     "CONFIG_DEBUG_ATOMIC_SLEEP, ")
    assert found[3].label == ("need kernel config CONFIG_KASAN, which no image recipe sets "
                              "for ppc64le, s390x") and found[3].command is None


def test_the_summary_says_under_its_counts_what_the_skips_need():
    table = summary(default_run()).splitlines()
    at = table.index("4 passed, 0 failed, 73 skipped")
    assert table[at + 1] == "73 skipped, by cause:"
    assert table[at + 2] == f"  33 {KLP_BUILD}; on ppc64le, s390x, arm64"
    assert table[at + 3].endswith(
        "CONFIG_SOFTLOCKUP_DETECTOR): ./klp run --image linux-7.3-debug "
        "scenarios/consistency/graph-traced-sleeper.yaml "
        "scenarios/consistency/graph-tracing-and-patching.yaml scenarios/debug/hard-lockup.yaml "
        "scenarios/debug/hung-task.yaml scenarios/debug/kasan.yaml "
        "scenarios/debug/kmemleak.yaml scenarios/debug/lockdep.yaml "
        "scenarios/debug/sleep-in-atomic.yaml scenarios/debug/soft-lockup.yaml")
    assert table[at + 4] == f"   4 {SYSCTL}"
    assert len(table) == at + 8
    assert "by cause" not in summary([Outcome("smoke/a", "x86_64", "pass")])


def test_the_recipe_that_sets_the_missing_symbols_on_the_arch_is_the_remedy():
    recipes = skipsummary.Recipes()
    assert recipes.setting(["CONFIG_FUNCTION_GRAPH_TRACER"], "s390x", "linux-7.3") \
        == "linux-7.3-debug"
    # an arch's own fragments (arch-config: KASAN on x86_64 and arm64 only)
    assert recipes.setting(["CONFIG_KASAN"], "arm64", "linux-7.3") == "linux-7.3-debug"
    assert recipes.setting(["CONFIG_KASAN"], "s390x", "linux-7.3") is None
    assert recipes.setting(["CONFIG_KASAN", "CONFIG_PROVE_LOCKING"], "x86_64", "linux-7.3") \
        == "linux-7.3-debug"
    # either of a line's alternatives; and the image's own kernel first (not linux-6.1)
    assert recipes.setting(["CONFIG_SYSCTL"], "x86_64", "linux-7.3-debug") == "linux-7.3"
    # the arch's own fragment, added to every source-built image
    assert recipes.setting(["CONFIG_UNWINDER_ORC"], "x86_64", "linux-7.3-debug") == "linux-7.3"


def test_a_symbol_no_recipe_sets_gives_no_command():
    """The negative control: no recipe, no command; the skip is still counted, by itself."""
    assert skipsummary.Recipes().setting(["CONFIG_NO_SUCH_SYMBOL"], "x86_64", "linux-7.3") \
        is None
    found = skipsummary.groups([skipped("debug/kasan", "x86_64", config_skip("CONFIG_KASAN")),
                                skipped("parity/x", "x86_64",
                                        config_skip("CONFIG_NO_SUCH_SYMBOL"))])
    assert [(g.count, g.label, g.command) for g in found] == [
        (1, "need kernel config CONFIG_NO_SUCH_SYMBOL, which no image recipe sets for x86_64",
         None),
        (1, "need the linux-7.3-debug image (kernel config CONFIG_KASAN)",
         "./klp run --image linux-7.3-debug scenarios/debug/kasan.yaml")]


def test_an_image_is_not_the_remedy_for_its_own_skips():
    found = skipsummary.groups([skipped("debug/kasan", "x86_64", config_skip(
        "CONFIG_KASAN", image="linux-7.3-debug"))])
    assert found[0].command is None


def test_a_directory_all_of_whose_scenarios_skip_is_named_once():
    debug = sorted(SCENARIOS.glob("debug/*.yaml"))
    ftrace = sorted(SCENARIOS.glob("parity/ftrace/*.yaml"))
    assert skipsummary.collapse(debug + ftrace, SCENARIOS) == [SCENARIOS / "debug",
                                                               SCENARIOS / "parity/ftrace"]
    assert skipsummary.collapse(debug[1:], SCENARIOS) == debug[1:]
    found = skipsummary.groups([skipped(f"debug/{p.stem}", a, config_skip("CONFIG_KASAN"))
                                for p in debug for a in ("x86_64", "arm64")]
                               + [Outcome("smoke/a", "s390x", "pass")])
    assert found[0].command == ("./klp run --image linux-7.3-debug --arch x86_64 --arch arm64 "
                                "scenarios/debug")
    assert found[0].label.endswith("; on x86_64, arm64")


def test_a_skip_without_its_cause_is_counted_by_its_first_line():
    found = skipsummary.groups([Outcome("a", "x86_64", "skip", "no luck\nmore"),
                                Outcome("b", "x86_64", "skip", "no luck\nother")])
    assert [(g.count, g.label) for g in found] == [(2, "no luck")]


@pytest.mark.parametrize("skip", [config_skip("CONFIG_KASAN", "CONFIG_KPROBES"),
                                  Skip("its livepatches ...", KLP_BUILD), None])
def test_the_cause_reaches_the_xdist_controller(skip):
    """A worker's report goes to the controller as pytest serialises it for xdist (JSON-
    like: tuples become lists), and the summary is made from its properties there."""
    outcome = (Outcome.skipped("debug/kasan", "arm64", skip, kernel="7.3.4") if skip
               else Outcome("debug/kasan", "arm64", "pass", seconds=1.5, kernel="7.3.4"))
    report = pytest.TestReport(
        "scenarios/debug/kasan.yaml::kasan[arm64]", ("kasan.yaml", 1, "kasan[arm64]"), {},
        "skipped" if skip else "passed", None, "call",
        user_properties=outcome.to_properties("linux-7.3"))
    sent = json.loads(json.dumps(report._to_json()))
    results = _Results()
    results.pytest_runtest_logreport(pytest.TestReport._from_json(sent))
    assert results.outcomes == [outcome]
    assert Outcome.from_properties({"nodeid": "x"}) is None
