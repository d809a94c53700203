"""Experiment health: is the split what was configured, and how much can this sample detect?

Sample ratio mismatch (SRM): the users per variant against the configured weights, Pearson's
chi-square test (`scipy.stats.chisquare`), flagged at p < 0.001. A mismatch means users were
lost or added unevenly (a redirect that drops some users, a bot filter, a logging bug): the
arms are no longer comparable and no decision should be taken. The check needs enough users for
the chi-square approximation: `SRM_MIN_USERS` in total and an expected count of
`SRM_MIN_EXPECTED` in every variant; below that it is reported as not checked.

Power: the minimum detectable effect (MDE) at the current sample, and the total users a given
relative lift needs, for a two-sided test at alpha with the given power (80% by default). The
per-user variance of each arm comes from the current data (delta method); the sample is split
by the configured shares. For the fixed test n = (z_(1-alpha/2) + z_power)^2 * V / delta^2
with V = s_c^2 / w_c + s_t^2 / w_t; for the sequential test the interval's half-width at n
takes the place of z_(1-alpha/2) * SE (solved numerically), which asks for more users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from scipy.optimize import brentq  # type: ignore[import-untyped]
from scipy.stats import chisquare, norm  # type: ignore[import-untyped]

from clickstats.stats import sequential
from clickstats.stats.compare import Method, arm_variances, ratio_variance, z_critical
from clickstats.stats.summary import RatioSummary

SRM_THRESHOLD = 0.001
SRM_MIN_USERS = 100
SRM_MIN_EXPECTED = 5.0
DEFAULT_POWER = 0.8
_MAX_USERS = 1e12  # beyond this the answer is "not feasible", not a number


@dataclass(frozen=True, slots=True)
class SrmCheck:
    """The sample ratio check; `flagged` blocks a decision."""

    checked: bool
    flagged: bool
    p_value: float | None
    observed: Mapping[str, int]
    expected: Mapping[str, float]
    threshold: float = SRM_THRESHOLD
    reason: str | None = None


def check_srm(
    users: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
    min_users: int = SRM_MIN_USERS,
    min_expected: float = SRM_MIN_EXPECTED,
) -> SrmCheck:
    """Chi-square test of the users per variant against the configured weights."""
    observed = dict(users)
    unweighted = [name for name in observed if weights.get(name, 0) <= 0]
    if unweighted:
        return SrmCheck(
            checked=False,
            flagged=False,
            p_value=None,
            observed=observed,
            expected={},
            threshold=threshold,
            reason=f"no positive configured weight for {', '.join(unweighted)}",
        )
    total = sum(observed.values())
    weight_sum = sum(weights[name] for name in observed)
    expected = {name: total * weights[name] / weight_sum for name in observed}
    not_checked = None
    if len(observed) < 2:
        not_checked = "needs at least two variants"
    elif total < min_users:
        not_checked = f"{total} users: the check needs at least {min_users}"
    elif min(expected.values()) < min_expected:
        not_checked = f"an expected count below {min_expected:g} in some variant: too few users"
    if not_checked:
        return SrmCheck(False, False, None, observed, expected, threshold, not_checked)
    names = list(observed)
    result = chisquare([observed[n] for n in names], [expected[n] for n in names])
    p = float(result.pvalue)
    return SrmCheck(True, p < threshold, p, observed, expected, threshold)


@lru_cache(maxsize=16)
def z_power(power: float) -> float:
    """z_power: the normal quantile at `power` (cached: root finding asks for it often)."""
    return float(norm.ppf(power))


@dataclass(frozen=True, slots=True)
class PowerEstimate:
    """What the current sample can detect, and what a target lift would need.

    `relative_mde` is the smallest relative change detected with probability `power` at the
    current sample; `users_needed` is the total users of the experiment (all variants, split by
    the configured shares) for `target_lift`; `additional_users` is how many more that is.
    """

    method: Method
    alpha: float
    power: float
    target_lift: float
    absolute_mde: float | None = None
    relative_mde: float | None = None
    users_needed: int | None = None
    additional_users: int | None = None
    reason: str | None = None


def per_user_variance(summary: RatioSummary) -> float | None:
    """The variance of one user's contribution to the ratio: n * Var(ratio)."""
    v = ratio_variance(summary)
    return None if v is None else v * summary.users


def detectable_difference(
    se: float,
    users: float,
    *,
    alpha: float,
    power: float = DEFAULT_POWER,
    method: Method = "fixed",
    tuning: float = sequential.DEFAULT_TUNING,
) -> float:
    """The absolute difference detected with probability `power` when its SE is `se`."""
    z = z_power(power)
    if method == "fixed":
        return (z_critical(alpha) + z) * se
    return sequential.halfwidth(se, users, alpha, tuning) + z * se


def users_needed(
    control: RatioSummary,
    treatment: RatioSummary,
    relative_lift: float,
    *,
    shares: tuple[float, float],
    alpha: float = 0.05,
    power: float = DEFAULT_POWER,
    method: Method = "fixed",
    tuning: float = sequential.DEFAULT_TUNING,
) -> int | None:
    """Total experiment users for `relative_lift` over the control to be detected with `power`.

    `shares` are the control's and the treatment's fractions of all the experiment's users
    (0.5, 0.5 for a two-variant 50/50 test). The per-user variances are today's estimates
    (CUPED's when the comparison applies it). None when they cannot be estimated or the lift
    is 0.
    """
    variances = arm_variances(control, treatment)
    baseline = control.ratio
    if variances is None or not baseline or not relative_lift:
        return None
    var_c, var_t = variances[0] * control.users, variances[1] * treatment.users
    share_c, share_t = shares
    delta = abs(relative_lift * baseline)
    spread = var_c / share_c + var_t / share_t  # Var(difference) = spread / N
    if spread == 0:
        return None
    if method == "fixed":
        n = (z_critical(alpha) + z_power(power)) ** 2 * spread / delta**2
        return math.ceil(n)

    def gap(total: float) -> float:
        se = math.sqrt(spread / total)
        pair = total * (share_c + share_t)
        return (
            detectable_difference(se, pair, alpha=alpha, power=power, method=method, tuning=tuning)
            - delta
        )

    low = 2.0 / (share_c + share_t)
    if gap(_MAX_USERS) > 0:
        return None
    if gap(low) <= 0:
        return math.ceil(low)
    return math.ceil(float(brentq(gap, low, _MAX_USERS, xtol=0.5, rtol=1e-10)))


def estimate_power(
    control: RatioSummary,
    treatment: RatioSummary,
    *,
    shares: tuple[float, float],
    total_users: int,
    target_lift: float,
    alpha: float = 0.05,
    power: float = DEFAULT_POWER,
    method: Method = "fixed",
    tuning: float = sequential.DEFAULT_TUNING,
) -> PowerEstimate:
    """MDE at the current sample and the users `target_lift` needs (see `PowerEstimate`)."""
    variances = arm_variances(control, treatment)
    baseline = control.ratio
    if variances is None:
        reason = "needs at least 2 users and a non-zero denominator in both variants"
        return PowerEstimate(method, alpha, power, target_lift, reason=reason)
    var_c, var_t = variances
    se = math.sqrt(var_c + var_t)
    if se == 0:
        reason = "zero variance: every user has the same value"
        return PowerEstimate(method, alpha, power, target_lift, reason=reason)
    mde = detectable_difference(
        se, control.users + treatment.users, alpha=alpha, power=power, method=method, tuning=tuning
    )
    needed = users_needed(
        control,
        treatment,
        target_lift,
        shares=shares,
        alpha=alpha,
        power=power,
        method=method,
        tuning=tuning,
    )
    return PowerEstimate(
        method=method,
        alpha=alpha,
        power=power,
        target_lift=target_lift,
        absolute_mde=mde,
        relative_mde=mde / abs(baseline) if baseline else None,
        users_needed=needed,
        additional_users=None if needed is None else max(needed - total_users, 0),
        reason=None if baseline else "the control's metric is 0: no relative effect is defined",
    )
