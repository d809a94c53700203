"""CUPED: a per-user mean compared after adjusting by the same metric before the experiment.

A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the sensitivity of online controlled
experiments by utilizing pre-experiment data" (WSDM 2013), as GrowthBook defines it (gbstats
`RegressionAdjustedStatistic` and `compute_theta`). Each user's value y is read as y - theta x,
where x is the user's value of the same metric over a pre-exposure window (the days before
their first exposure; 0 for a user without history, whose value is thus unchanged). With the
users of both arms pooled, blind to the arm,

    theta = Cov(y, x) / Var(x)        (sample covariance and variance, n - 1)

(0 when either variance is 0: then nothing is adjusted). Each arm's adjusted mean is
mean(y) - theta mean(x), with per-user variance var(y) + theta^2 var(x) - 2 theta cov(y, x)
within the arm. The tested difference is the difference of adjusted means,
D - theta (mean_t(x) - mean_c(x)): a treatment cannot move what happened before exposure, so
the correction has expectation 0 and the adjusted difference estimates the same D, with a
variance smaller by about the share of y's variance the pre-period explains (rho^2).

Applied to per-user means only (y = 1 for every user, as revenue per user: `is_mean`). A ratio
of sums (revenue per search) is analysed without it, and the comparison says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from clickstats.stats.summary import PreSummary, RatioSummary

RATIO_REASON = (
    "CUPED adjusts per-user means; this metric is a ratio of sums (its denominator is not 1 "
    "per user), so it is analysed without CUPED"
)


@dataclass(frozen=True, slots=True)
class Cuped:
    """CUPED in one comparison: `applied`, or the `reason` it is not.

    `theta` is the pooled coefficient, `users_with_history` the users of both arms with a
    value in the pre-exposure window, `unadjusted_se` the difference's standard error without
    CUPED (the comparison's `absolute_se` is with it: their ratio is the interval's saving)."""

    applied: bool
    theta: float | None = None
    users_with_history: int = 0
    unadjusted_se: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Fit:
    """The adjusted difference of means and each arm's variance of its adjusted mean."""

    theta: float
    absolute: float
    var_control: float
    var_treatment: float


def is_mean(summary: RatioSummary) -> bool:
    """A per-user mean: y is 1 for every user (sum_y = sum_y^2 = users)."""
    return summary.users > 0 and summary.sum_y == summary.users == summary.sum_y2


def pre_summary(x: Iterable[float], pre: Iterable[float]) -> PreSummary:
    """The covariate's sums from per-user values (reference for tests and simulations): each
    user's x in the window and pre-exposure value, 0 for a user without history."""
    pairs = [(float(a), float(b)) for a, b in zip(x, pre, strict=True)]
    return PreSummary(
        users_with_history=sum(1 for _, b in pairs if b != 0),
        sum_pre=math.fsum(b for _, b in pairs),
        sum_pre2=math.fsum(b * b for _, b in pairs),
        sum_x_pre=math.fsum(a * b for a, b in pairs),
    )


def _covariance(n: int, sum_ab: float, sum_a: float, sum_b: float) -> float:
    return (sum_ab - sum_a * sum_b / n) / (n - 1)


def theta(control: RatioSummary, treatment: RatioSummary) -> float:
    """Cov(y, x) / Var(x) over both arms' users pooled; 0 when either variance is 0 (gbstats'
    `compute_theta`, which then compares unadjusted)."""
    c, t = control.pre, treatment.pre
    assert c is not None and t is not None, "theta needs both arms' pre-exposure sums"
    n = control.users + treatment.users
    if n < 2:
        return 0.0
    sum_y, sum_x = control.sum_x + treatment.sum_x, c.sum_pre + t.sum_pre
    var_y = _covariance(n, control.sum_x2 + treatment.sum_x2, sum_y, sum_y)
    var_x = _covariance(n, c.sum_pre2 + t.sum_pre2, sum_x, sum_x)
    if var_x == 0 or var_y == 0:
        return 0.0
    return _covariance(n, c.sum_x_pre + t.sum_x_pre, sum_y, sum_x) / var_x


def adjusted_mean(summary: RatioSummary, theta: float) -> float:
    """mean(y) - theta mean(x) over the arm's users."""
    assert summary.pre is not None and summary.users > 0
    return (summary.sum_x - theta * summary.pre.sum_pre) / summary.users


def adjusted_variance(summary: RatioSummary, theta: float) -> float:
    """Per-user sample variance of y - theta x within the arm (n - 1; at least 0)."""
    pre, n = summary.pre, summary.users
    assert pre is not None and n >= 2
    var_y = _covariance(n, summary.sum_x2, summary.sum_x, summary.sum_x)
    var_x = _covariance(n, pre.sum_pre2, pre.sum_pre, pre.sum_pre)
    cov = _covariance(n, pre.sum_x_pre, summary.sum_x, pre.sum_pre)
    return max(var_y + theta * theta * var_x - 2 * theta * cov, 0.0)


def users_with_history(control: RatioSummary, treatment: RatioSummary) -> int:
    return sum(s.pre.users_with_history for s in (control, treatment) if s.pre is not None)


def fit(
    control: RatioSummary,
    treatment: RatioSummary,
    names: tuple[str, str] = ("the control", "the treatment"),
) -> Fit | str:
    """The CUPED-adjusted difference (treatment - control) and variances, or why there is none.

    Both arms need at least 2 users (the caller checks); both need pre-exposure sums, and the
    metric must be a per-user mean."""
    for name, arm in zip(names, (control, treatment), strict=True):
        if arm.pre is None:
            return f"{name} has no pre-exposure values: CUPED needs both arms'"
    if not (is_mean(control) and is_mean(treatment)):
        return RATIO_REASON
    if users_with_history(control, treatment) == 0:
        return "no user of either arm has history in the pre-exposure window"
    coefficient = theta(control, treatment)
    if coefficient == 0:
        return (
            "theta is 0 (the pre-exposure values do not vary, or do not correlate with the "
            "metric): the comparison is the unadjusted one"
        )
    return Fit(
        theta=coefficient,
        absolute=adjusted_mean(treatment, coefficient) - adjusted_mean(control, coefficient),
        var_control=adjusted_variance(control, coefficient) / control.users,
        var_treatment=adjusted_variance(treatment, coefficient) / treatment.users,
    )


def described(
    fit: Fit | str, control: RatioSummary, treatment: RatioSummary, unadjusted_se: float
) -> Cuped:
    """What a comparison reports of `fit` (see `Cuped`)."""
    history = users_with_history(control, treatment)
    if isinstance(fit, str):
        return Cuped(False, users_with_history=history, unadjusted_se=unadjusted_se, reason=fit)
    return Cuped(True, theta=fit.theta, users_with_history=history, unadjusted_se=unadjusted_se)
