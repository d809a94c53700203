"""Always-valid inference: the asymptotic confidence sequence of Waudby-Smith et al.

I. Waudby-Smith, D. Arbour, R. Sinha, E. H. Kennedy, A. Ramdas, "Time-uniform central limit
theory and asymptotic confidence sequences", arXiv:2103.06476 (eq. 9 for the interval, the
mixture-boundary p-value it implies, and the choice of the mixing parameter rho that makes the
sequence tightest near a chosen sample size N*). GrowthBook's sequential engine uses the same
construction with N* = 5,000 by default, and so does this module.

With `n` users in the two arms, an estimate whose standard error is `se`, and
`s2 = se^2 * n` (the per-user variance of the estimator), the interval at every n is

    estimate +- sqrt(s2) * sqrt( 2 (n rho^2 + 1) / (n^2 rho^2) * log( sqrt(n rho^2 + 1) / alpha ) )

and holds for all n at once with probability >= 1 - alpha (asymptotically), so it can be read
after every day without inflating the error rate. Its p-value is the smallest alpha' whose
interval (rho held fixed) excludes 0, so `p < alpha` exactly when the interval excludes 0.
"""

from __future__ import annotations

import math

DEFAULT_TUNING = 5000.0


def mixing_rho(alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """rho that minimises the interval's width at n = tuning (N*), for the nominal alpha."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if tuning <= 0:
        raise ValueError(f"tuning (N*) must be positive, got {tuning}")
    log_alpha = math.log(alpha)
    return math.sqrt((-2 * log_alpha + math.log(-2 * log_alpha + 1)) / tuning)


def halfwidth(
    se: float, n: float, alpha: float, tuning: float = DEFAULT_TUNING, ci_alpha: float | None = None
) -> float:
    """Half-width of the confidence sequence at `n` users.

    `alpha` fixes rho (it is the experiment's nominal level); `ci_alpha` (default `alpha`) is the
    miscoverage the interval is built for, smaller than alpha for multiple-comparison-adjusted
    intervals.
    """
    rho2 = mixing_rho(alpha, tuning) ** 2
    t = n * rho2 + 1
    miss = alpha if ci_alpha is None else ci_alpha
    return se * math.sqrt(n) * math.sqrt(2 * t / (n * n * rho2) * math.log(math.sqrt(t) / miss))


def p_value(
    estimate: float, se: float, n: int, alpha: float, tuning: float = DEFAULT_TUNING
) -> float:
    """Always-valid p-value: min(1, 1 / e-value) of the mixture martingale behind the sequence."""
    rho2 = mixing_rho(alpha, tuning) ** 2
    t = n * rho2 + 1
    z2 = (estimate / se) ** 2
    log_p = 0.5 * math.log(t) - rho2 * n * z2 / (2 * t)
    return math.exp(min(log_p, 0.0))
