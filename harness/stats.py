"""Failure rates of repeated runs: k failures in n runs, with the 95% Wilson score interval.

Why Wilson's interval: the textbook one (k/n plus or minus z times its standard error)
collapses to a point at k = 0 or k = n (0/20 would claim the rate is exactly 0) and leaves
[0, 1] near them, and with the few runs a guest affords (tens) it covers the true rate
less often than it claims. Wilson's stays inside [0, 1], is never empty, and keeps close
to its 95% at small n (Newcombe, Statistics in Medicine 17, 1998, method 3).
"""
from __future__ import annotations

import math
from typing import Tuple

Z95 = 1.959963984540054   # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson(k: int, n: int, z: float = Z95) -> Tuple[float, float]:
    """The Wilson score interval (low, high) of a rate of which k of n trials were seen."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"a rate needs 0 <= k <= n and n >= 1, got {k}/{n}")
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At k = 0 (k = n) the bound is 0 (1) exactly; rounding must not make it 1e-17.
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def rate(k: int, n: int) -> str:
    """'5/20 (95% CI 11%–47%)': k of n, and the interval in whole percent; n = 0 (nothing
    ran): '0/0'."""
    if n == 0:
        return f"{k}/0"
    low, high = wilson(k, n)
    return f"{k}/{n} (95% CI {low:.0%}–{high:.0%})"
