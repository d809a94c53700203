"""CUPED (stats/cuped.py, through compare): fixed values, agreement with scipy, statsmodels and
gbstats (its RegressionAdjustedStatistic, capped and not), the cases it leaves alone, and seeded
simulations of its error rates and of the interval width it saves (the full tables are
scripts/calibrate_revenue.py's, in docs/STATISTICS.md)."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.typing import NDArray
from scipy import stats

from clickstats.stats import cuped
from clickstats.stats.analysis import analyze
from clickstats.stats.capping import Cap
from clickstats.stats.compare import Method, compare
from clickstats.stats.health import estimate_power, users_needed
from clickstats.stats.summary import ExperimentSummary, RatioSummary, VariantSummary
from tests.stats import revenue_sim

with warnings.catch_warnings():  # gbstats' own imports warn under new pandas/pydantic
    warnings.simplefilter("ignore")
    from gbstats.frequentist.tests import (  # type: ignore[import-untyped]
        FrequentistConfig,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )
    from gbstats.models.statistics import (  # type: ignore[import-untyped]
        RegressionAdjustedStatistic,
        SampleMeanStatistic,
    )

TOLERANCE = 1e-6
RUNS = 400
USERS = 3000  # per arm
LIFT = 0.1
# The bands ([0.032, 0.068] and [0.932, 0.968]) are met by the 2,000 runs of
# scripts/calibrate_revenue.py; over RUNS runs the Monte Carlo error alone is +-0.028 (99%).
MC = 2.576 * math.sqrt(0.05 * 0.95 / RUNS)

Array = NDArray[np.float64]


def arm(y: Array | list[float], pre: Array | list[float]) -> RatioSummary:
    """A per-user mean's summary with CUPED's sums (pre 0: no history)."""
    s = RatioSummary.from_values(y)
    return dataclasses.replace(s, pre=cuped.pre_summary(y, pre))


def _gb_statistic(s: RatioSummary) -> object:
    assert s.pre is not None
    return RegressionAdjustedStatistic(
        n=s.users,
        post_statistic=SampleMeanStatistic(n=s.users, sum=s.sum_x, sum_squares=s.sum_x2),
        pre_statistic=SampleMeanStatistic(n=s.users, sum=s.pre.sum_pre, sum_squares=s.pre.sum_pre2),
        post_pre_sum_of_products=s.pre.sum_x_pre,
        theta=0,
    )


def _gb(a: RatioSummary, b: RatioSummary, method: Method, difference: str) -> object:
    if method == "fixed":
        config = FrequentistConfig(alpha=0.05, difference_type=difference)
        return TwoSidedTTest(_gb_statistic(a), _gb_statistic(b), config).compute_result()
    config = SequentialConfig(
        alpha=0.05, sequential_tuning_parameter=5000, difference_type=difference
    )
    return SequentialTwoSidedTTest(_gb_statistic(a), _gb_statistic(b), config).compute_result()


# -- fixed values and the formulas ----------------------------------------------------------------

CONTROL_Y, CONTROL_PRE = [0.0, 10.0, 25.0, 0.0, 40.0, 5.0], [0.0, 8.0, 30.0, 0.0, 20.0, 0.0]
TREATMENT_Y, TREATMENT_PRE = [12.0, 0.0, 30.0, 55.0, 0.0, 9.0], [10.0, 0.0, 0.0, 40.0, 0.0, 6.0]


def test_fixed_values() -> None:
    c, t = arm(CONTROL_Y, CONTROL_PRE), arm(TREATMENT_Y, TREATMENT_PRE)
    # By hand, over the 12 users pooled: sum y = 186, sum pre = 114, sum y*pre = 4004,
    # sum pre^2 = 3100, so Cov = (4004 - 186 * 114 / 12) / 11 = 2237 / 11 and
    # Var(pre) = (3100 - 114^2 / 12) / 11 = 2017 / 11: theta = 2237 / 2017.
    y, pre = np.array(CONTROL_Y + TREATMENT_Y), np.array(CONTROL_PRE + TREATMENT_PRE)
    assert np.cov(y, pre)[0, 1] == pytest.approx(2237 / 11, rel=1e-12)
    assert cuped.theta(c, t) == pytest.approx(2237 / 2017, rel=1e-12)
    result = compare(c, t, method="fixed")
    assert result.cuped is not None and result.cuped.applied
    assert result.cuped.theta == pytest.approx(2237 / 2017, rel=1e-12)
    assert result.cuped.users_with_history == 6
    # raw difference 106/6 - 80/6 = 13/3; the pre-period means 56/6 and 58/6 differ by -1/3
    assert result.absolute == pytest.approx(13 / 3 + 2237 / 2017 / 3, rel=1e-12)
    assert result.absolute_se == pytest.approx(5.971177, abs=1e-6)
    assert result.cuped.unadjusted_se == pytest.approx(10.894443, abs=1e-6)
    assert result.dof == pytest.approx(9.144652, abs=1e-6)
    assert result.p_value == pytest.approx(0.450850, abs=1e-6)
    assert result.relative == pytest.approx(result.absolute / (80 / 6), rel=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_theta_is_the_pooled_regression_slope_and_the_test_is_welchs_on_adjusted_values(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    users = revenue_sim.draw(rng, 1, 500, lift=0.2)
    y, pre, history = users.revenue[0], users.pre[0], users.history[0]
    c, t = arm(y[:500], pre[:500]), arm(y[500:], pre[500:])
    theta = cuped.theta(c, t)
    # statsmodels: the slope of y on the pre-exposure value, both arms pooled, blind to the arm.
    slope = sm.OLS(y, sm.add_constant(pre)).fit().params[1]
    assert theta == pytest.approx(slope, rel=1e-9)
    # scipy: Welch's t on each user's adjusted value; a user without history keeps their own.
    adjusted = np.where(history, y - theta * pre, y)
    assert np.all(adjusted[~history] == y[~history])
    welch = stats.ttest_ind(adjusted[500:], adjusted[:500], equal_var=False)
    ours = compare(c, t, method="fixed")
    assert ours.absolute == pytest.approx(adjusted[500:].mean() - adjusted[:500].mean(), rel=1e-9)
    assert ours.p_value == pytest.approx(welch.pvalue, abs=1e-9)
    assert ours.dof == pytest.approx(welch.df, rel=1e-9)
    assert ours.absolute_ci == pytest.approx(tuple(welch.confidence_interval(0.95)), rel=1e-9)


@pytest.mark.parametrize("method", ["fixed", "sequential"])
@pytest.mark.parametrize("cap", [None, revenue_sim.P99, Cap(absolute=300.0)])
@pytest.mark.parametrize("seed", [4, 5])
def test_cuped_equals_gbstats(method: Method, cap: Cap | None, seed: int) -> None:
    # gbstats caps the data before its test, so capping is compared on the capped values.
    users = revenue_sim.draw(np.random.default_rng(seed), 1, 2000 + 300 * seed, lift=0.1)
    control, treatment, _ = revenue_sim.arms(users, 0, cap=cap, cuped=True)
    ours = compare(control, treatment, method=method)
    theirs = _gb(control, treatment, method, "absolute")
    assert theirs.error_message is None
    assert ours.cuped is not None and ours.cuped.applied
    assert ours.absolute == pytest.approx(theirs.expected, abs=TOLERANCE)
    assert ours.absolute_se == pytest.approx(theirs.uplift.stddev, abs=TOLERANCE)
    assert ours.absolute_ci == pytest.approx(tuple(theirs.ci), abs=TOLERANCE)
    assert ours.p_value == pytest.approx(theirs.p_value, abs=TOLERANCE)
    relative = _gb(control, treatment, method, "relative")
    assert ours.relative == pytest.approx(relative.expected, abs=TOLERANCE)
    assert ours.relative_se == pytest.approx(relative.uplift.stddev, abs=TOLERANCE)


# -- what CUPED leaves alone ----------------------------------------------------------------------


def _without_cuped(c: RatioSummary, t: RatioSummary, method: Method = "fixed") -> object:
    plain = compare(
        dataclasses.replace(c, pre=None), dataclasses.replace(t, pre=None), method=method
    )
    return dataclasses.replace(plain, cuped=None)


def test_without_pre_exposure_sums_nothing_changes() -> None:
    c, t = RatioSummary.from_values(CONTROL_Y), RatioSummary.from_values(TREATMENT_Y)
    result = compare(c, t, method="fixed")
    assert result.cuped is None
    assert result.absolute == pytest.approx(13 / 3 * 1, rel=1e-12)  # 106/6 - 80/6


def test_a_ratio_metric_is_analysed_without_cuped_and_says_so() -> None:
    searches = [3.0, 1.0, 4.0, 1.0, 5.0, 2.0]
    c = dataclasses.replace(
        RatioSummary.from_values(CONTROL_Y, searches), pre=cuped.pre_summary(CONTROL_Y, CONTROL_PRE)
    )
    t = dataclasses.replace(
        RatioSummary.from_values(TREATMENT_Y, searches),
        pre=cuped.pre_summary(TREATMENT_Y, TREATMENT_PRE),
    )
    result = compare(c, t, method="fixed")
    assert result.cuped is not None and not result.cuped.applied
    assert result.cuped.reason == cuped.RATIO_REASON
    assert dataclasses.replace(result, cuped=None) == _without_cuped(c, t)


@pytest.mark.parametrize(
    ("control_pre", "treatment_pre", "reason"),
    [
        ([0.0] * 6, [0.0] * 6, "no user of either arm has history"),
        ([5.0] * 6, [5.0] * 6, "theta is 0"),  # every user had the same: nothing to adjust by
    ],
)
def test_no_usable_history_gives_the_unadjusted_comparison(
    control_pre: list[float], treatment_pre: list[float], reason: str
) -> None:
    c, t = arm(CONTROL_Y, control_pre), arm(TREATMENT_Y, treatment_pre)
    result = compare(c, t, method="sequential")
    assert result.cuped is not None and not result.cuped.applied
    assert result.cuped.reason is not None and result.cuped.reason.startswith(reason)
    assert dataclasses.replace(result, cuped=None) == _without_cuped(c, t, "sequential")


def test_one_arm_without_pre_exposure_sums_is_named() -> None:
    c, t = arm(CONTROL_Y, CONTROL_PRE), RatioSummary.from_values(TREATMENT_Y)
    result = compare(c, t, method="fixed", names=("search_v1", "search_v2"))
    assert result.cuped is not None and not result.cuped.applied
    assert result.cuped.reason == "search_v2 has no pre-exposure values: CUPED needs both arms'"


def test_power_and_the_decision_read_the_adjusted_variance() -> None:
    users = revenue_sim.draw(np.random.default_rng(8), 1, 4000)
    c, t, _ = revenue_sim.arms(users, 0, cuped=True)
    plain_c, plain_t = dataclasses.replace(c, pre=None), dataclasses.replace(t, pre=None)
    adjusted, plain = compare(c, t, method="fixed"), compare(plain_c, plain_t, method="fixed")
    assert adjusted.absolute_se is not None and plain.absolute_se is not None
    saving = adjusted.absolute_se / plain.absolute_se
    assert saving == pytest.approx(0.853, abs=0.001)
    power = estimate_power(c, t, shares=(0.5, 0.5), total_users=8000, target_lift=0.05)
    plain_power = estimate_power(
        plain_c, plain_t, shares=(0.5, 0.5), total_users=8000, target_lift=0.05
    )
    assert power.absolute_mde is not None and plain_power.absolute_mde is not None
    assert power.absolute_mde / plain_power.absolute_mde == pytest.approx(saving, rel=1e-9)
    needed = users_needed(c, t, 0.05, shares=(0.5, 0.5), method="fixed")
    plain_needed = users_needed(plain_c, plain_t, 0.05, shares=(0.5, 0.5), method="fixed")
    assert needed is not None and plain_needed is not None
    assert needed / plain_needed == pytest.approx(saving**2, rel=1e-3)

    summary = ExperimentSummary(
        variants=(
            VariantSummary("search_v1", c.users, {"revenue_per_user": c}),
            VariantSummary("search_v2", t.users, {"revenue_per_user": t}),
        ),
        weights={"search_v1": 1.0, "search_v2": 1.0},
    )
    result = analyze(summary, method="fixed", primary_metric="revenue_per_user")
    comparison = result.variants[1].metrics["revenue_per_user"].comparison
    assert comparison is not None and comparison.cuped is not None and comparison.cuped.applied
    assert comparison.absolute_ci == adjusted.absolute_ci
    # The sentence quotes the unadjusted values and CUPED's change: it says which is which.
    assert " after CUPED, 95% CI " in result.decision.summary


# -- seeded simulations ---------------------------------------------------------------------------


def _rates(lift: float, cap: Cap | None, seed: int) -> dict[str, float]:
    users = revenue_sim.draw(np.random.default_rng(seed), RUNS, USERS, lift)
    truth = revenue_sim.true_difference(lift)
    significant, covered, widths = [0, 0], [0, 0], [[], []]  # type: ignore[var-annotated]
    for run in range(RUNS):
        for k, adjusted in enumerate((False, True)):
            c, t, _ = revenue_sim.arms(users, run, cap=cap, cuped=adjusted)
            result = compare(c, t, method="fixed")
            assert result.absolute_ci is not None
            significant[k] += result.significant
            covered[k] += result.absolute_ci[0] <= truth <= result.absolute_ci[1]
            widths[k].append(result.absolute_ci[1] - result.absolute_ci[0])
    return {
        "rejected": significant[0] / RUNS,
        "rejected_cuped": significant[1] / RUNS,
        "covered": covered[0] / RUNS,
        "covered_cuped": covered[1] / RUNS,
        "width_ratio": round(float(np.mean(widths[1]) / np.mean(widths[0])), 3),
    }


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        (None, {"rejected_cuped": 0.05}),  # without CUPED: tests/stats/test_capping.py
        (revenue_sim.P99, {"rejected_cuped": 0.0475}),
    ],
)
def test_aa_false_positive_rate_with_cuped(cap: Cap | None, expected: dict[str, float]) -> None:
    rates = _rates(0.0, cap, 20260614)
    print(f"\nA/A, cap {cap}: {rates}")
    assert {k: rates[k] for k in expected} == expected  # seeded: the figures measured
    for key in expected:
        assert 0.05 - MC <= rates[key] <= 0.05 + MC


def test_coverage_and_the_width_cuped_saves() -> None:
    # A real lift (+10% orders): the interval holds the true difference as often as promised,
    # with and without CUPED, and CUPED's is narrower by the share the pre-period explains.
    rates = _rates(LIFT, None, 77)
    print(f"\n+10%: {rates}")
    assert rates == {
        "rejected": 0.15,
        "rejected_cuped": 0.1625,
        "covered": 0.9525,
        "covered_cuped": 0.9525,
        "width_ratio": 0.82,
    }
    for key in ("covered", "covered_cuped"):
        assert 0.95 - MC <= rates[key] <= 0.95 + MC
