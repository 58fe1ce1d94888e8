"""The studies' statistical test: Welch's t-test, the equivalence test (TOST) and Holm's correction.

A point is compared with its baseline on top-1 over seeds. Welch's two-sided t-test (unequal variances) asks
whether the means differ; two one-sided Welch tests against a margin stated before the runs (TOST) ask whether
they are equal within that margin. Each study corrects each family of p-values (the difference tests, the
equivalence tests) for the number of its comparisons with Holm's step-down rule, so the chance of calling any
one of them wrongly stays at alpha.

Student's t distribution is computed here (its tail through the regularized incomplete beta function, evaluated
by a continued fraction) rather than with scipy, which the tests use as the reference instead: the runtime
package does not depend on scipy.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

_TINY = 1e-300  # keeps the continued fraction's denominators away from zero
_EPS = 1e-15  # relative change at which the continued fraction has converged
_MAX_TERMS = 10_000


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, evaluated by the modified Lentz method.

    Converges quickly for x < (a + 1) / (a + b + 2); the caller uses the symmetry I_x(a, b) = 1 - I_1-x(b, a)
    beyond that.
    """
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_TERMS):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))  # the coefficient d_2m
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))  # the coefficient d_2m+1
        for coef in (even, odd):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + coef / c
            c = c if abs(c) > _TINY else _TINY
            result *= c * d
        if abs(c * d - 1.0) < _EPS:
            return result
    raise ArithmeticError(f"the incomplete beta fraction did not converge (a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0 and 0.0 <= x <= 1.0):
        raise ValueError(f"betainc needs a, b > 0 and 0 <= x <= 1, got a={a}, b={b}, x={x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` (> 0, not necessarily whole) degrees of freedom."""
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    two_sided = betainc(df / 2.0, 0.5, df / (df + t * t))  # P(|T| > |t|)
    return two_sided / 2.0 if t > 0 else 1.0 - two_sided / 2.0


@dataclass(frozen=True)
class Welch:
    """Welch's test of mean(a) - mean(b): the difference, its t, the Welch-Satterthwaite df, the p-values."""

    diff: float  # mean(a) - mean(b)
    se: float  # standard error of the difference: sqrt(var_a / n_a + var_b / n_b)
    t: float  # diff / se
    df: float  # Welch-Satterthwaite degrees of freedom
    p: float  # two-sided p-value of "the means are equal"
    p_tost: float  # larger one-sided p of "|diff| >= margin" (TOST); small = equivalent within the margin


def welch(a: Sequence[float], b: Sequence[float], margin: float) -> Welch:
    """Welch's two-sided t-test of a against b, and TOST against ``margin`` (same units); needs 2+ values each.

    When both samples have no spread (se = 0), the difference is exact: p is 0 unless it is 0, and TOST's p is
    0 inside the margin, 1 outside.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs at least 2 values per sample, got {len(a)} and {len(b)}")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(va + vb)
    if se == 0:
        t = math.copysign(math.inf, diff) if diff else 0.0
        return Welch(diff, 0.0, t, math.nan, float(diff == 0), float(abs(diff) >= margin))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = diff / se
    p = min(1.0, 2.0 * t_sf(abs(t), df))
    # H0: diff <= -margin (rejected when t_low is large) and H0: diff >= margin (rejected when t_high is small).
    t_low, t_high = (diff + margin) / se, (diff - margin) / se
    p_tost = max(t_sf(t_low, df), t_sf(-t_high, df))
    return Welch(diff, se, t, df, p, p_tost)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order; NaN (no test) stays NaN and is not counted.

    Sorted ascending, the i-th smallest of m p-values is multiplied by (m - i), i from 0, then each adjusted
    value is raised to the largest before it (so the order is kept) and capped at 1. Rejecting where the
    adjusted p < alpha is Holm's procedure at family-wise error rate alpha.
    """
    order = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    """The pooled sample standard deviation of two samples (each weighted by its n - 1)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    pooled = (len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b)
    return math.sqrt(pooled / (len(a) + len(b) - 2))
