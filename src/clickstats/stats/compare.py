"""A treatment against the control on one ratio metric, with the user as the unit of analysis.

Each arm's metric is R = sum_x / sum_y over its users. Its variance comes from the delta method
on per-user sums (users are independent; a user's searches are not):

    Var(R) = (var_x - 2 R cov_xy + R^2 var_y) / (n mean_y^2)

The absolute difference R_t - R_c has variance Var(R_t) + Var(R_c); the relative difference
R_t / R_c - 1 has, by the delta method again (as GrowthBook computes lift),
Var(R_t) / R_c^2 + R_t^2 Var(R_c) / R_c^4. The test of "no difference" is on the absolute
difference; intervals for both come from the fixed-horizon normal approximation or from the
confidence sequence in `sequential`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from scipy.stats import norm  # type: ignore[import-untyped]

from clickstats.stats import sequential
from clickstats.stats.summary import RatioSummary

Method = Literal["fixed", "sequential"]
METHODS: tuple[Method, ...] = ("fixed", "sequential")
Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment minus control on one metric.

    `p_value` is unadjusted; `p_value_adjusted` is after the correction across variants (equal
    to `p_value` when there is one comparison). The intervals are built at `ci_level`: 1 - alpha,
    or lower when a correction widened them so that they exclude 0 exactly when
    `p_value_adjusted < alpha`. `significant` uses the adjusted p-value. `reason` says why a
    test could not be made (then the test fields are None).
    """

    method: Method
    alpha: float
    users: int
    absolute: float | None = None
    absolute_se: float | None = None
    absolute_ci: Interval | None = None
    relative: float | None = None
    relative_se: float | None = None
    relative_ci: Interval | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    ci_level: float | None = None
    significant: bool = False
    reason: str | None = None
    tuning: float = sequential.DEFAULT_TUNING


def ratio_variance(summary: RatioSummary) -> float | None:
    """Delta-method variance of sum_x / sum_y; None below 2 users or with a zero denominator."""
    n = summary.users
    var_x, var_y, cov_xy = summary.var_x, summary.var_y, summary.cov_xy
    if n < 2 or not summary.sum_y or var_x is None or var_y is None or cov_xy is None:
        return None
    mean_y = summary.sum_y / n
    r = summary.sum_x / summary.sum_y
    return max(var_x - 2 * r * cov_xy + r * r * var_y, 0.0) / (n * mean_y * mean_y)


@lru_cache(maxsize=64)
def z_critical(alpha: float) -> float:
    """The two-sided normal critical value z_(1 - alpha/2)."""
    return float(norm.isf(alpha / 2))


def fixed_p_value(estimate: float, se: float) -> float:
    return float(2 * norm.sf(abs(estimate) / se))


def interval(
    estimate: float,
    se: float,
    users: int,
    *,
    method: Method,
    alpha: float,
    ci_alpha: float | None = None,
    tuning: float = sequential.DEFAULT_TUNING,
) -> Interval:
    """The two-sided interval at 1 - ci_alpha (default 1 - alpha) for the given method."""
    miss = alpha if ci_alpha is None else ci_alpha
    if method == "fixed":
        width = z_critical(miss) * se
    else:
        width = sequential.halfwidth(se, users, alpha, tuning, ci_alpha=miss)
    return (estimate - width, estimate + width)


def method_p_value(
    estimate: float, se: float, users: int, *, method: Method, alpha: float, tuning: float
) -> float:
    if method == "fixed":
        return fixed_p_value(estimate, se)
    return sequential.p_value(estimate, se, users, alpha, tuning)


def compare(
    control: RatioSummary,
    treatment: RatioSummary,
    *,
    alpha: float = 0.05,
    method: Method = "sequential",
    tuning: float = sequential.DEFAULT_TUNING,
    names: tuple[str, str] = ("the control", "the treatment"),
) -> Comparison:
    """Difference, relative lift, intervals and p-value of treatment vs control."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    users = control.users + treatment.users
    for name, arm in zip(names, (control, treatment), strict=True):
        if arm.users < 2:
            reason = (
                f"{name} has {arm.users} user{'' if arm.users == 1 else 's'}: "
                "at least 2 are needed for a variance"
            )
            return Comparison(method, alpha, users, tuning=tuning, reason=reason)
        if not arm.sum_y:
            reason = f"{name} has a zero denominator: the metric is undefined there"
            return Comparison(method, alpha, users, tuning=tuning, reason=reason)
    var_c, var_t = ratio_variance(control), ratio_variance(treatment)
    assert var_c is not None and var_t is not None  # users >= 2 and sum_y != 0, checked above
    r_c, r_t = control.sum_x / control.sum_y, treatment.sum_x / treatment.sum_y
    absolute = r_t - r_c
    relative = absolute / r_c if r_c else None
    relative_se = math.sqrt(var_t / r_c**2 + r_t**2 * var_c / r_c**4) if r_c else None
    se = math.sqrt(var_c + var_t)
    if se == 0:
        return Comparison(
            method=method,
            alpha=alpha,
            users=users,
            absolute=absolute,
            absolute_se=se,
            relative=relative,
            relative_se=relative_se,
            tuning=tuning,
            reason="zero variance: every user has the same value in both variants, nothing to test",
        )
    p = method_p_value(absolute, se, users, method=method, alpha=alpha, tuning=tuning)
    absolute_ci, relative_ci = _intervals(
        absolute, se, relative, relative_se, users, method, alpha, alpha, tuning
    )
    return Comparison(
        method=method,
        alpha=alpha,
        users=users,
        absolute=absolute,
        absolute_se=se,
        absolute_ci=absolute_ci,
        relative=relative,
        relative_se=relative_se,
        relative_ci=relative_ci,
        p_value=p,
        p_value_adjusted=p,
        ci_level=1 - alpha,
        significant=p < alpha,
        tuning=tuning,
    )


def _intervals(
    absolute: float,
    se: float,
    relative: float | None,
    relative_se: float | None,
    users: int,
    method: Method,
    alpha: float,
    ci_alpha: float,
    tuning: float,
) -> tuple[Interval, Interval | None]:
    absolute_ci = interval(
        absolute, se, users, method=method, alpha=alpha, ci_alpha=ci_alpha, tuning=tuning
    )
    relative_ci = None
    if relative is not None and relative_se:
        relative_ci = interval(
            relative,
            relative_se,
            users,
            method=method,
            alpha=alpha,
            ci_alpha=ci_alpha,
            tuning=tuning,
        )
    return absolute_ci, relative_ci


def with_adjusted_p_value(
    comparison: Comparison, p_value: float, p_value_adjusted: float
) -> Comparison:
    """The comparison with its p-values set and its intervals built to agree with them.

    Adjusted intervals are built at miscoverage alpha * p / p_adjusted, so that they exclude 0
    exactly when the adjusted p-value is below alpha; never narrower than the unadjusted ones.
    """
    c = comparison
    if c.absolute is None or not c.absolute_se:
        return c
    ci_alpha = c.alpha
    if p_value_adjusted > p_value > 0:
        ci_alpha = c.alpha * p_value / p_value_adjusted
    absolute_ci, relative_ci = _intervals(
        c.absolute,
        c.absolute_se,
        c.relative,
        c.relative_se,
        c.users,
        c.method,
        c.alpha,
        ci_alpha,
        c.tuning,
    )
    return dataclasses.replace(
        c,
        absolute_ci=absolute_ci,
        relative_ci=relative_ci,
        p_value=p_value,
        p_value_adjusted=p_value_adjusted,
        ci_level=1 - ci_alpha,
        significant=p_value_adjusted < c.alpha,
    )
