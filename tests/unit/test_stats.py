"""The Wilson score interval of a failure rate (harness/stats.py), against published values."""
import pytest

from harness import stats


# Newcombe, "Two-sided confidence intervals for the single proportion: comparison of seven
# methods", Statistics in Medicine 17 (1998), Table I, method 3 (score, no continuity
# correction), to its four decimals.
@pytest.mark.parametrize("k, n, low, high", [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718)])
def test_the_interval_is_newcombes(k, n, low, high):
    got = stats.wilson(k, n)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_the_bounds_are_exact_at_none_and_all():
    assert stats.wilson(0, 7)[0] == 0.0 and stats.wilson(7, 7)[1] == 1.0
    low, high = stats.wilson(7, 7)
    assert 0 < low < 1 and stats.wilson(0, 7) == pytest.approx((1 - high, 1 - low))


def test_half_of_twenty_holds_a_half_and_two_of_twenty_does_not():
    """What tests/integration/test_repeat.py relies on: 10/20's interval holds 1/2; the
    negative control, a count far from half, gives one that does not."""
    low, high = stats.wilson(10, 20)
    assert low < 0.5 < high and (low, high) == pytest.approx((0.2993, 0.7007), abs=5e-5)
    assert not stats.wilson(2, 20)[0] <= 0.5 <= stats.wilson(2, 20)[1]


def test_the_rate_reads_k_of_n_and_the_interval_in_whole_percent():
    assert stats.rate(5, 20) == "5/20 (95% CI 11%–47%)"
    assert stats.rate(0, 20) == "0/20 (95% CI 0%–16%)"
    assert stats.rate(20, 20) == "20/20 (95% CI 84%–100%)"
    assert stats.rate(0, 0) == "0/0"   # nothing ran: no interval


@pytest.mark.parametrize("k, n", [(1, 0), (-1, 5), (6, 5)])
def test_a_count_that_is_no_rate_is_an_error(k, n):
    with pytest.raises(ValueError, match=f"got {k}/{n}"):
        stats.wilson(k, n)
