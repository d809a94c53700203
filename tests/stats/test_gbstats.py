"""Agreement with an independent engine: GrowthBook's gbstats, on the same per-user sums.

gbstats (test-only dependency) tests a difference of ratio metrics with the delta method,
Welch's t for the fixed horizon and the Waudby-Smith confidence sequence for the sequential
test. We test the absolute difference, as its `difference_type="absolute"` does: there our
estimates, intervals and p-values must equal its results. The
intended differences are named in docs/STATISTICS.md ("Agreement with gbstats") and tested
here too, so that the doc cannot drift.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from clickstats.stats.compare import Method, compare
from clickstats.stats.summary import RatioSummary

with warnings.catch_warnings():  # gbstats' own imports warn under new pandas/pydantic
    warnings.simplefilter("ignore")
    from gbstats.frequentist.tests import (  # type: ignore[import-untyped]
        FrequentistConfig,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )
    from gbstats.models.statistics import (  # type: ignore[import-untyped]
        RatioStatistic,
        SampleMeanStatistic,
    )

TOLERANCE = 1e-6


def _gb(s: RatioSummary, ratio: bool) -> object:
    m = SampleMeanStatistic(n=s.users, sum=s.sum_x, sum_squares=s.sum_x2)
    if not ratio:
        return m
    d = SampleMeanStatistic(n=s.users, sum=s.sum_y, sum_squares=s.sum_y2)
    return RatioStatistic(n=s.users, m_statistic=m, d_statistic=d, m_d_sum_of_products=s.sum_xy)


def _users(rng: np.random.Generator, users: int, ctr: float) -> RatioSummary:
    searches = np.ceil(rng.lognormal(1.0, 1.0, users))
    clicked = rng.binomial(searches.astype(np.int64), rng.beta(ctr * 8, (1 - ctr) * 8, users))
    return RatioSummary.from_values(clicked, searches)


def _gb_result(  # type: ignore[no-untyped-def]
    a: RatioSummary,
    b: RatioSummary,
    method: Method,
    alpha: float,
    ratio: bool,
    difference: str = "absolute",
):
    if method == "fixed":
        config = FrequentistConfig(alpha=alpha, difference_type=difference)
        test = TwoSidedTTest(_gb(a, ratio), _gb(b, ratio), config)
    else:
        config = SequentialConfig(
            alpha=alpha, sequential_tuning_parameter=5000, difference_type=difference
        )
        test = SequentialTwoSidedTTest(_gb(a, ratio), _gb(b, ratio), config)
    return test.compute_result()


CASES = [
    # (seed, control users, treatment users, control CTR, treatment CTR, alpha)
    (1, 40, 45, 0.30, 0.36, 0.05),
    (2, 500, 480, 0.30, 0.33, 0.05),
    (3, 3000, 3100, 0.25, 0.25, 0.10),
    (4, 12000, 11800, 0.40, 0.41, 0.01),
    (5, 200, 900, 0.10, 0.14, 0.05),
]


@pytest.mark.parametrize("method", ["fixed", "sequential"])
@pytest.mark.parametrize(("seed", "n_a", "n_b", "ctr_a", "ctr_b", "alpha"), CASES)
def test_ratio_metrics_equal_gbstats(
    method: Method, seed: int, n_a: int, n_b: int, ctr_a: float, ctr_b: float, alpha: float
) -> None:
    rng = np.random.default_rng(seed)
    a, b = _users(rng, n_a, ctr_a), _users(rng, n_b, ctr_b)
    ours = compare(a, b, alpha=alpha, method=method)
    theirs = _gb_result(a, b, method, alpha, ratio=True)
    assert theirs.error_message is None
    assert ours.absolute == pytest.approx(theirs.expected, abs=TOLERANCE)
    assert ours.absolute_ci == pytest.approx(tuple(theirs.ci), abs=TOLERANCE)
    assert ours.p_value == pytest.approx(theirs.p_value, abs=TOLERANCE)
    assert ours.absolute_se == pytest.approx(theirs.uplift.stddev, abs=TOLERANCE)
    assert ours.significant == (theirs.p_value < alpha)
    # The lift's own delta-method SE (reported, not tested) is gbstats' relative one.
    relative = _gb_result(a, b, method, alpha, ratio=True, difference="relative")
    assert ours.relative == pytest.approx(relative.expected, abs=TOLERANCE)
    assert ours.relative_se == pytest.approx(relative.uplift.stddev, abs=TOLERANCE)


@pytest.mark.parametrize("method", ["fixed", "sequential"])
def test_mean_metrics_equal_gbstats(method: Method) -> None:
    rng = np.random.default_rng(11)
    a = RatioSummary.from_values(rng.exponential(2.0, 300))
    b = RatioSummary.from_values(rng.exponential(2.3, 320))
    ours = compare(a, b, method=method)
    theirs = _gb_result(a, b, method, 0.05, ratio=False)
    assert ours.absolute == pytest.approx(theirs.expected, abs=TOLERANCE)
    assert ours.absolute_ci == pytest.approx(tuple(theirs.ci), abs=TOLERANCE)
    assert ours.p_value == pytest.approx(theirs.p_value, abs=TOLERANCE)


def test_intended_difference_a_zero_control_still_tests_the_difference() -> None:
    # gbstats' relative test returns its default (p = 1, CI [0, 0]) with a message; we test the
    # difference and leave the relative change undefined (the verdict is blocked as a tracking
    # problem by the implausible-change guard, tests/stats/test_analysis.py).
    a = RatioSummary.from_values([0, 0, 0], [2, 1, 3])
    b = RatioSummary.from_values([1, 0, 1], [2, 1, 3])
    theirs = _gb_result(a, b, "fixed", 0.05, ratio=True, difference="relative")
    assert theirs.error_message is not None and theirs.p_value == 1
    ours = compare(a, b, method="fixed")
    assert ours.p_value is not None and ours.relative is None and ours.relative_ci is None


def test_intended_difference_the_relative_interval_is_the_absolute_one_scaled() -> None:
    # gbstats' relative test has its own SE (the delta method on the ratio of means); ours is
    # the absolute test divided by the control's value, so both intervals tell one story and
    # complementary metrics (abandonment = 1 - search CTR) get the same verdict.
    rng = np.random.default_rng(21)
    a, b = _users(rng, 800, 0.3), _users(rng, 800, 0.34)
    ours = compare(a, b, method="fixed")
    config = FrequentistConfig(alpha=0.05, difference_type="relative")
    theirs = TwoSidedTTest(_gb(a, True), _gb(b, True), config).compute_result()
    assert ours.relative == pytest.approx(theirs.expected, abs=1e-12)  # same lift
    assert ours.absolute_ci is not None and ours.relative_ci is not None and a.ratio is not None
    assert ours.relative_ci == pytest.approx(
        (ours.absolute_ci[0] / a.ratio, ours.absolute_ci[1] / a.ratio), rel=1e-12
    )
    assert ours.relative_ci != pytest.approx(tuple(theirs.ci), abs=TOLERANCE)
