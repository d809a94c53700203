"""Sample ratio mismatch and power: agreement with scipy/statsmodels and the issue's cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, chisquare, kstest, norm
from statsmodels.stats.power import NormalIndPower

from clickstats.stats.compare import METHODS, Method, ratio_variance
from clickstats.stats.health import (
    SRM_MIN_USERS,
    check_srm,
    estimate_power,
    users_needed,
)
from clickstats.stats.summary import RatioSummary


def test_srm_p_value_is_scipys_chisquare() -> None:
    users = {"a": 5130, "b": 4870, "c": 10_150}
    check = check_srm(users, {"a": 1, "b": 1, "c": 2})
    total = sum(users.values())
    expected = [total / 4, total / 4, total / 2]
    assert check.checked and check.p_value == chisquare(list(users.values()), expected).pvalue
    assert check.expected == pytest.approx(dict(zip(users, expected, strict=True)))


def test_a_52_48_split_of_20000_users_is_flagged() -> None:
    check = check_srm({"control": 10_400, "treatment": 9_600}, {"control": 1, "treatment": 1})
    assert check.flagged and check.p_value is not None
    assert check.p_value == pytest.approx(1.54e-8, rel=0.01)  # chi-square 32 on 1 df


def test_a_healthy_50_50_split_is_flagged_about_one_time_in_a_thousand() -> None:
    # Exact rate over the binomial distribution of the control's count: every count within
    # 400 of 10,000 goes through check_srm; the rest are flagged (asserted at the edges).
    n = 20_000
    counts = np.arange(n // 2 - 400, n // 2 + 401)
    flagged = np.array(
        [check_srm({"a": int(k), "b": n - int(k)}, {"a": 1, "b": 1}).flagged for k in counts]
    )
    assert flagged[0] and flagged[-1]
    rate = binom.pmf(counts, n, 0.5)[flagged].sum() + 2 * binom.cdf(counts[0] - 1, n, 0.5)
    print(f"\nSRM false alarm rate, 50/50 of 20,000 users (exact): {rate:.5f}")
    assert 0.0009 <= rate <= 0.0011


def test_srm_p_values_are_uniform_for_a_healthy_uneven_split() -> None:
    rng = np.random.default_rng(31)
    draws = rng.multinomial(3000, [0.25, 0.25, 0.5], size=1000)
    p = [
        check_srm(dict(zip("abc", map(int, row), strict=True)), {"a": 1, "b": 1, "c": 2}).p_value
        for row in draws
    ]
    assert kstest(p, "uniform").pvalue > 0.01


def test_srm_is_not_checked_below_its_minimum() -> None:
    few = check_srm({"a": 60, "b": 30}, {"a": 1, "b": 1})
    assert not few.checked and not few.flagged and few.reason is not None
    assert f"at least {SRM_MIN_USERS}" in few.reason
    tiny_arm = check_srm({"a": 397, "b": 3}, {"a": 99, "b": 1})  # expects 4 in b
    assert not tiny_arm.checked and "expected count" in (tiny_arm.reason or "")
    missing = check_srm({"a": 500, "b": 500, "c": 9}, {"a": 1, "b": 1})
    assert not missing.checked and "c" in (missing.reason or "")


def _arm(rng: np.random.Generator, users: int, ctr: float) -> RatioSummary:
    searches = np.ceil(rng.lognormal(1.0, 1.0, users))
    clicked = rng.binomial(searches.astype(np.int64), rng.beta(ctr * 7, (1 - ctr) * 7, users))
    return RatioSummary.from_values(clicked, searches)


def test_users_needed_agrees_with_statsmodels_normal_power() -> None:
    # With equal per-user variances and a 50/50 split, the total is twice statsmodels' nobs1
    # for the standardised effect delta / sigma.
    rng = np.random.default_rng(8)
    arm = _arm(rng, 5000, 0.3)
    assert arm.ratio is not None
    v = ratio_variance(arm)
    assert v is not None
    sigma = np.sqrt(v * arm.users)
    effect = 0.05 * arm.ratio / sigma
    nobs1 = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1.0)
    needed = users_needed(arm, arm, 0.05, shares=(0.5, 0.5))
    assert needed is not None
    assert needed == pytest.approx(2 * nobs1, rel=1e-4)
    # A 1:3 split needs more users for the same lift.
    uneven = users_needed(arm, arm, 0.05, shares=(0.25, 0.75))
    assert uneven is not None and uneven > needed


@pytest.mark.parametrize("method", METHODS)
def test_the_mde_at_the_users_needed_is_the_target_lift(method: Method) -> None:
    rng = np.random.default_rng(9)
    control, treatment = _arm(rng, 4000, 0.3), _arm(rng, 4000, 0.3)
    needed = users_needed(control, treatment, 0.04, shares=(0.5, 0.5), method=method)
    assert needed is not None
    # Scale the summaries to `needed` users with the same moments: the MDE is then the lift.
    scale = needed / 2 / control.users
    big_c, big_t = (
        RatioSummary(
            round(s.users * scale),
            s.sum_x * scale,
            s.sum_y * scale,
            s.sum_x2 * scale,
            s.sum_y2 * scale,
            s.sum_xy * scale,
        )
        for s in (control, treatment)
    )
    power = estimate_power(
        big_c,
        big_t,
        shares=(0.5, 0.5),
        total_users=needed,
        target_lift=0.04,
        method=method,
    )
    assert power.relative_mde == pytest.approx(0.04, rel=2e-3)
    assert power.additional_users is not None and power.additional_users <= 2


def test_sequential_needs_more_users_than_fixed() -> None:
    rng = np.random.default_rng(10)
    control, treatment = _arm(rng, 3000, 0.3), _arm(rng, 3000, 0.3)
    fixed = users_needed(control, treatment, 0.05, shares=(0.5, 0.5), method="fixed")
    seq = users_needed(control, treatment, 0.05, shares=(0.5, 0.5), method="sequential")
    assert fixed is not None and seq is not None and 1.3 * fixed < seq < 4 * fixed


def test_fixed_mde_formula() -> None:
    rng = np.random.default_rng(12)
    control, treatment = _arm(rng, 2000, 0.3), _arm(rng, 2000, 0.3)
    power = estimate_power(
        control, treatment, shares=(0.5, 0.5), total_users=4000, target_lift=0.05, method="fixed"
    )
    vc, vt = ratio_variance(control), ratio_variance(treatment)
    assert vc is not None and vt is not None and control.ratio is not None
    z = norm.ppf(0.975) + norm.ppf(0.8)
    assert power.absolute_mde == pytest.approx(z * np.sqrt(vc + vt), rel=1e-12)
    assert power.relative_mde == pytest.approx(z * np.sqrt(vc + vt) / control.ratio, rel=1e-12)


def test_power_of_degenerate_arms_says_why() -> None:
    flat = RatioSummary.from_values([1, 1, 1], [2, 2, 2])
    power = estimate_power(flat, flat, shares=(0.5, 0.5), total_users=6, target_lift=0.05)
    assert power.relative_mde is None and "zero variance" in (power.reason or "")
    empty = RatioSummary(0, 0, 0, 0, 0, 0)
    power = estimate_power(empty, flat, shares=(0.5, 0.5), total_users=3, target_lift=0.05)
    assert power.users_needed is None and power.reason is not None
    assert users_needed(flat, flat, 0.05, shares=(0.5, 0.5)) is None
