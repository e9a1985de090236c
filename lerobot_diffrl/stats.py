"""Confidence intervals of success rates: the one definition every report, evaluation and benchmark uses.

Why Wilson intervals: LIBERO reports are proportions over 10-500 episodes, often close to 0% or 100%, where the
normal ("Wald") interval collapses to zero width or leaves [0, 1]. The Wilson score interval keeps its coverage
there (Brown, Cai & DasGupta, Statistical Science 2001).
"""

from __future__ import annotations

import math

#: Two-sided 95% quantile of the standard normal distribution.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; ``(0.0, 1.0)`` (nothing known) when ``n == 0``."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Exact bounds at the edges (rounding would otherwise give 1e-17 instead of 0).
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high
