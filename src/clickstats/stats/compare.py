"""A treatment against the control on one ratio metric, with the user as the unit of analysis.

Each arm's metric is R = sum_x / sum_y over its users. Its variance comes from the delta method
on per-user sums (users are independent; a user's searches are not):

    Var(R) = (var_x - 2 R cov_xy + R^2 var_y) / (n mean_y^2)

One quantity is tested: the absolute difference D = R_t - R_c, with variance
Var(R_t) + Var(R_c). The p-value, `significant` and the absolute interval come from that one
estimate and its standard error; the relative interval is the absolute one divided by the
control's value (D / R_c = R_t / R_c - 1), so it excludes 0 exactly when the absolute one does.
Testing the difference, not the ratio, keeps complementary metrics in agreement: with no
zero-result searches abandonment is 1 - search CTR, and both get the same test. The relative
change's own delta-method SE (GrowthBook's, Var(R_t) / R_c^2 + R_t^2 Var(R_c) / R_c^4) is
reported as `relative_se` but not tested. The fixed-horizon test is Welch's t (Welch-
Satterthwaite degrees of freedom), as gbstats' absolute test; the sequential one is the
confidence sequence in `sequential`. A control whose value is 0 leaves the relative change
undefined: the difference is still tested, the relative fields are None.

When both arms carry pre-exposure sums (`RatioSummary.pre`) and the metric is a per-user mean,
the difference tested is CUPED's (`cuped`): the estimate, its standard error, both intervals
and both p-values are those of the adjusted means, and `Comparison.cuped` says so (or why not).
Without pre-exposure sums nothing changes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from clickstats.stats import cuped, sequential
from clickstats.stats.cuped import Cuped
from clickstats.stats.summary import RatioSummary

Method = Literal["fixed", "sequential"]
METHODS: tuple[Method, ...] = ("fixed", "sequential")
Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment against control on one metric.

    The tested quantity is `absolute`, R_t - R_c, with standard error `absolute_se` and, for
    the fixed method, `dof` degrees of freedom. `relative` is R_t / R_c - 1 and `relative_ci`
    the absolute interval divided by the control's value, so both intervals tell the same
    story; `relative_se` is the delta-method SE of the ratio, reported, not tested.
    `p_value` is unadjusted; `p_value_adjusted` is after the correction across variants (equal
    to `p_value` with one comparison). The intervals are built at `ci_level`: 1 - alpha, or
    higher when a correction widened them, so that they exclude 0 exactly when
    `p_value_adjusted < alpha`, which is `significant`. `reason` says why no test could be made
    (then the test fields are None). `cuped` is None unless the arms carried pre-exposure sums;
    then it says whether the tested difference is CUPED's (and `relative` is it divided by the
    control's unadjusted value, as in gbstats).
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
    dof: float | None = None
    control_value: float | None = None
    cuped: Cuped | None = None


def ratio_variance(summary: RatioSummary) -> float | None:
    """Delta-method variance of sum_x / sum_y; None below 2 users or with a zero denominator."""
    n = summary.users
    var_x, var_y, cov_xy = summary.var_x, summary.var_y, summary.cov_xy
    if n < 2 or not summary.sum_y or var_x is None or var_y is None or cov_xy is None:
        return None
    mean_y = summary.sum_y / n
    r = summary.sum_x / summary.sum_y
    return max(var_x - 2 * r * cov_xy + r * r * var_y, 0.0) / (n * mean_y * mean_y)


def arm_variances(control: RatioSummary, treatment: RatioSummary) -> tuple[float, float] | None:
    """Each arm's variance of its estimate as `compare` tests them: CUPED's when it applies
    (`cuped.fit`), else the delta method's; None when either cannot be estimated."""
    var_c, var_t = ratio_variance(control), ratio_variance(treatment)
    if var_c is None or var_t is None:
        return None
    if control.pre is not None and treatment.pre is not None:
        fit = cuped.fit(control, treatment)
        if isinstance(fit, cuped.Fit):
            return fit.var_control, fit.var_treatment
    return var_c, var_t


@lru_cache(maxsize=64)
def z_critical(alpha: float) -> float:
    """The two-sided normal critical value z_(1 - alpha/2)."""
    from scipy.stats import norm  # type: ignore[import-untyped]  # not at import: slow

    return float(norm.isf(alpha / 2))


def welch_dof(var_c: float, n_c: int, var_t: float, n_t: int) -> float:
    """Welch-Satterthwaite degrees of freedom; `var_*` are the variances of each arm's estimate
    (per-user variance / n). Infinite when both are 0 (nothing to estimate)."""
    denominator = var_c * var_c / (n_c - 1) + var_t * var_t / (n_t - 1)
    return (var_c + var_t) ** 2 / denominator if denominator > 0 else math.inf


def interval(
    estimate: float,
    se: float,
    users: int,
    *,
    method: Method,
    alpha: float,
    ci_alpha: float | None = None,
    tuning: float = sequential.DEFAULT_TUNING,
    dof: float = math.inf,
) -> Interval:
    """The two-sided interval at 1 - ci_alpha (default 1 - alpha) for the given method."""
    miss = alpha if ci_alpha is None else ci_alpha
    if method == "fixed":
        from scipy.stats import t  # not at import: slow

        width = float(t.isf(miss / 2, dof)) * se if math.isfinite(dof) else z_critical(miss) * se
    else:
        width = sequential.halfwidth(se, users, alpha, tuning, ci_alpha=miss)
    return (estimate - width, estimate + width)


def method_p_value(
    estimate: float,
    se: float,
    users: int,
    *,
    method: Method,
    alpha: float,
    tuning: float,
    dof: float = math.inf,
) -> float:
    """Two-sided p-value of `estimate` against 0: Welch's t (fixed) or the always-valid one."""
    if method == "fixed":
        from scipy.stats import norm, t  # not at import: slow

        statistic = abs(estimate) / se
        return float(2 * (t.sf(statistic, dof) if math.isfinite(dof) else norm.sf(statistic)))
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
    """The relative change of treatment against control, its test and both intervals."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    users = control.users + treatment.users
    untested = Comparison(method, alpha, users, tuning=tuning)
    for name, arm in zip(names, (control, treatment), strict=True):
        if arm.users < 2:
            reason = (
                f"{name} has {arm.users} user{'' if arm.users == 1 else 's'}: "
                "at least 2 are needed for a variance"
            )
            return dataclasses.replace(untested, reason=reason)
        if not arm.sum_y:
            reason = f"{name} has a zero denominator: the metric is undefined there"
            return dataclasses.replace(untested, reason=reason)
    var_c, var_t = ratio_variance(control), ratio_variance(treatment)
    assert var_c is not None and var_t is not None  # users >= 2 and sum_y != 0, checked above
    r_c, r_t = control.sum_x / control.sum_y, treatment.sum_x / treatment.sum_y
    absolute = r_t - r_c
    adjusted = None
    if control.pre is not None or treatment.pre is not None:
        fit = cuped.fit(control, treatment, names)
        adjusted = cuped.described(fit, control, treatment, math.sqrt(var_c + var_t))
        if isinstance(fit, cuped.Fit):
            absolute, var_c, var_t = fit.absolute, fit.var_control, fit.var_treatment
    relative, relative_se = None, None
    if r_c != 0:
        lift = r_t / r_c
        # CUPED's lift is its difference over the control's unadjusted value (gbstats)
        relative = absolute / r_c if adjusted is not None and adjusted.applied else lift - 1
        relative_se = math.sqrt(var_t + lift * lift * var_c) / abs(r_c)
        if not (math.isfinite(relative) and math.isfinite(relative_se)):
            relative, relative_se = None, None  # a control too close to 0 for a ratio
    se = math.sqrt(var_c + var_t)
    untested = dataclasses.replace(
        untested,
        absolute=absolute,
        absolute_se=se,
        relative=relative,
        relative_se=relative_se,
        control_value=r_c,
        cuped=adjusted,
    )
    if se == 0:
        reason = "zero variance: every user has the same value in both variants, nothing to test"
        if adjusted is not None and adjusted.applied:
            reason = "zero variance after the CUPED adjustment: nothing to test"
        return dataclasses.replace(untested, reason=reason)
    dof = welch_dof(var_c, control.users, var_t, treatment.users)
    p = method_p_value(absolute, se, users, method=method, alpha=alpha, tuning=tuning, dof=dof)
    tested = dataclasses.replace(untested, dof=dof if method == "fixed" else None)
    return with_adjusted_p_value(tested, p, p)


def _intervals(c: Comparison, ci_alpha: float) -> tuple[Interval, Interval | None]:
    assert c.absolute is not None and c.absolute_se is not None
    absolute_ci = interval(
        c.absolute,
        c.absolute_se,
        c.users,
        method=c.method,
        alpha=c.alpha,
        ci_alpha=ci_alpha,
        tuning=c.tuning,
        dof=math.inf if c.dof is None else c.dof,
    )
    if c.relative is None or not c.control_value:
        return absolute_ci, None
    low, high = (bound / c.control_value for bound in absolute_ci)
    return absolute_ci, (min(low, high), max(low, high))


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
    absolute_ci, relative_ci = _intervals(c, ci_alpha)
    significant = p_value_adjusted < c.alpha
    if significant != excludes_zero(absolute_ci) or (
        relative_ci is not None and significant != excludes_zero(relative_ci)
    ):
        # Only at a tie within rounding (p equal to alpha in the last bits): the interval then
        # touches 0, and the test decides which side it is drawn on.
        absolute_ci = _touching(absolute_ci, significant)
        relative_ci = None if relative_ci is None else _touching(relative_ci, significant)
    return dataclasses.replace(
        c,
        absolute_ci=absolute_ci,
        relative_ci=relative_ci,
        p_value=p_value,
        p_value_adjusted=p_value_adjusted,
        ci_level=1 - ci_alpha,
        significant=significant,
    )


def excludes_zero(ci: Interval) -> bool:
    return ci[0] > 0 or ci[1] < 0


def _touching(ci: Interval, significant: bool) -> Interval:
    """`ci` with its bound nearest 0 moved onto the side of 0 that `significant` says (a signed
    zero, so that a printed "-0.0% to +3.1%" still shows the interval holding 0)."""
    low, high = ci
    if abs(low) <= abs(high):
        low = math.nextafter(0.0, 1.0) if significant else -0.0
    else:
        high = math.nextafter(0.0, -1.0) if significant else 0.0
    return (low, high)
