"""--repeat counts, on a real guest: a scenario that fails in half its runs gives k/N = 10/20
and an interval that holds 1/2, through `klp-harness run` and through pytest; --until-fail
stops the cell at its first failure and keeps that run's artifacts.

Why a deck and not a coin: with an independent coin per run, k varies, and the 95%
interval misses the true 1/2 in about one run of the test in twenty: a flaky test. Each
scenario instead draws the next card of a deck dealt on the host (N/2 failures and N/2
passes, shuffled): the order of the failures is random, their number is exactly N/2. The
guest keeps its place in the deck in /tmp, so every run must be on the same guest (--pool
1, pytest -n 0), and a token in the file name keeps decks of different runs apart.
"""
import os
import random
import re
import subprocess
import sys
import textwrap
import uuid

import pytest

from harness import cli, image as imagemod, stats

pytestmark = pytest.mark.vm

ARCH = "x86_64"
N = 20
CELL = re.compile(r"^deck/half-fail\s+(\w+)\s+(\d+)/(\d+) \(95% CI (\d+)%–(\d+)%\)", re.M)


def _scenario(tmp_path, deck: str):
    """A scenario under <tmp_path>/scenarios/deck/ (so pytest collects it; never the
    project's scenarios/, which the main job runs) that passes on a 'p' card."""
    token = uuid.uuid4().hex[:12]
    path = tmp_path / "scenarios" / "deck" / "half-fail.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(f"""\
        description: passes or fails as the next card of a deck says (tests/integration/test_repeat.py)
        steps:
          - run: >-
              n=$(cat /tmp/klp-deck-{token} 2>/dev/null || echo 0);
              echo $((n + 1)) > /tmp/klp-deck-{token};
              echo {deck} | cut -c$((n + 1))
            stdout: p
        """))
    return path


def _deck() -> str:
    cards = list("f" * (N // 2) + "p" * (N // 2))
    random.shuffle(cards)
    return "".join(cards)


def _cell(out: str):
    match = CELL.search(out)
    assert match, out
    status, k, n, low, high = match.groups()
    return status, int(k), int(n), int(low), int(high)


def test_run_repeat_counts_the_failures_of_a_half_failing_scenario(request, tmp_path, capsys):
    deck = _deck()
    scenario = _scenario(tmp_path, deck)
    code = cli.main(["run", "--arch", ARCH, "--accel", request.config.getoption("klp_accel"),
                     "--pool", "1", "--repeat", str(N), "--artifacts", str(tmp_path / "art"),
                     str(scenario)])
    out = capsys.readouterr().out
    assert code == 1, out   # failed runs fail the run
    status, k, n, low, high = _cell(out)
    assert (status, k, n) == ("fail", N // 2, N), out
    assert low < 50 < high, out   # the interval holds the true rate
    # The runs are numbered as they ran: the failures are the deck's f cards.
    assert _failed_runs(r"^FAIL deck/half-fail", out) == _f_cards(deck), out
    run = (tmp_path / "art" / "latest").resolve()
    assert len(list((run / "failed").iterdir())) == N // 2   # each failure's artifacts kept


def _failed_runs(prefix: str, out: str):
    """The numbers of the runs that ``out`` lists as failed (run 1's id has none)."""
    return {int(r or 1) for r in re.findall(prefix + r"\[x86_64(?:-run(\d+))?\]", out, re.M)}


def _f_cards(deck: str):
    return {i + 1 for i, card in enumerate(deck) if card == "f"}


def test_pytest_repeat_counts_the_same(request, tmp_path):
    deck = _deck()
    scenario = _scenario(tmp_path, deck)
    env = dict(os.environ, PYTHONPATH=str(imagemod.PROJECT) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "--arch", ARCH,
         "--accel", request.config.getoption("klp_accel"), "--repeat", str(N),
         "--klp-artifacts", str(tmp_path / "art"), str(scenario)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert f"{N // 2} failed, {N // 2} passed" in out.splitlines()[-1], out[-3000:]
    status, k, n, low, high = _cell(out)
    assert (status, k, n) == ("fail", N // 2, N) and low < 50 < high, out[-3000:]
    assert _failed_runs(r"^FAILED \S+::half-fail", out) == _f_cards(deck), out[-3000:]


def test_until_fail_stops_at_the_first_failure_and_keeps_its_artifacts(request, tmp_path,
                                                                        capsys):
    deck = "ppf" + "p" * (N - 3)   # fails in run 3 only
    scenario = _scenario(tmp_path, deck)
    code = cli.main(["run", "--arch", ARCH, "--accel", request.config.getoption("klp_accel"),
                     "--pool", "1", "--repeat", str(N), "--until-fail", "--artifacts",
                     str(tmp_path / "art"), str(scenario)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert _cell(out)[:3] == ("fail", 1, 3), out   # runs 4..20 were not run
    assert f"ran fewer than {N} times: deck/half-fail[x86_64] 3" in out
    run = (tmp_path / "art" / "latest").resolve()
    [kept] = (run / "failed").iterdir()
    assert kept.name == "deck_half-fail[x86_64]"
    assert "step 1" in (kept / "failure.txt").read_text() and (kept / "console.log").is_file()
    assert (run / "until-fail" / "deck_half-fail_x86_64_").read_text().startswith("3\n")
