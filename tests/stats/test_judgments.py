"""COEC and PBM judgments: fixed values computed by hand, agreement with scipy and statsmodels,
and seeded simulations (PBM recovers known parameters; the intervals cover)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2
from statsmodels.stats.proportion import proportion_confint

from clickstats.stats.judgments import (
    Judgment,
    coec,
    coec_grade,
    fit_pbm,
    jeffreys_interval,
    judge,
    pbm,
    poisson_rate_interval,
)
from clickstats.store.base import Counts, JudgmentCount, JudgmentCounts
from tests.store.test_judgments import ALL_RANKS, ALL_ROWS

# The data of tests/store/test_judgments.py: CTR 1/2, 1/3 and 1 at ranks 1, 2, 3.
COUNTS = JudgmentCounts(rows=ALL_ROWS, ranks=ALL_RANKS)


def by_pair(judgments: tuple[Judgment, ...]) -> dict[tuple[str, str], Judgment]:
    return {(j.query, j.product_id): j for j in judgments}


def test_coec_fixed_values() -> None:
    result = coec(COUNTS)
    assert result.rank_ctr == pytest.approx({1: 1 / 2, 2: 1 / 3, 3: 1.0})
    got = by_pair(result.judgments)
    # tv/p1: 2 clicks over 2 * 1/2 + 1 * 1/3 = 4/3 expected
    p1 = got["tv", "p1"]
    assert (p1.impressions, p1.clicks) == (3, 2)
    assert p1.evidence == pytest.approx(4 / 3)
    assert p1.score == pytest.approx(1.5)
    assert p1.grade == pytest.approx(1.8)  # 3 * 1.5 / 2.5
    assert got["tv", "p2"].score == 0.0 and got["tv", "p2"].grade == 0.0
    assert got["tv", "p2"].low == 0.0
    assert got["tv", "p3"].score == pytest.approx(1.0) and got["tv", "p3"].grade == 1.5
    assert got["radio", "p9"].score == pytest.approx(2.0) and got["radio", "p9"].grade == 2.0
    for j in result.judgments:
        assert j.low is not None and j.high is not None and j.score is not None
        assert j.low <= j.score <= j.high
        assert j.grade_low == pytest.approx(coec_grade(j.low))


def test_coec_of_no_data_says_why() -> None:
    assert coec(JudgmentCounts()).error == "no product was shown in enough searches"
    # Shown only at a rank nobody clicks: no expected clicks, no score.
    unclicked = JudgmentCounts(rows=(JudgmentCount("q", "p", 7, 5, 0),), ranks={7: Counts(5, 0)})
    (j,) = coec(unclicked).judgments
    assert (j.score, j.grade, j.evidence, j.impressions) == (None, None, 0.0, 5)


@pytest.mark.parametrize(("clicks", "expected"), [(0, 2.5), (1, 1.0), (7, 3.2), (40, 55.0)])
def test_poisson_interval_agrees_with_chi_square(clicks: int, expected: float) -> None:
    # Garwood's interval as usually written: chi-square quantiles over 2.
    low = chi2.ppf(0.025, 2 * clicks) / 2 / expected if clicks else 0.0
    high = chi2.ppf(0.975, 2 * clicks + 2) / 2 / expected
    assert poisson_rate_interval(clicks, expected) == pytest.approx((low, high), rel=1e-9)


@pytest.mark.parametrize(("successes", "trials"), [(1, 10), (3, 10), (9, 10), (17, 250)])
def test_jeffreys_interval_agrees_with_statsmodels(successes: int, trials: int) -> None:
    reference = proportion_confint(successes, trials, alpha=0.05, method="jeffreys")
    assert jeffreys_interval(successes, trials) == pytest.approx(reference, rel=1e-9)


def test_jeffreys_interval_ends_at_0_and_1_at_the_extremes() -> None:
    # Brown, Cai & DasGupta (2001): with no success the lower end is 0, with no failure the
    # upper end is 1 (statsmodels leaves the Beta quantiles there).
    assert jeffreys_interval(0, 10)[0] == 0.0
    assert jeffreys_interval(0, 10)[1] == pytest.approx(
        proportion_confint(0, 10, alpha=0.05, method="jeffreys")[1]
    )
    assert jeffreys_interval(10, 10)[1] == 1.0


def test_one_em_step_by_hand() -> None:
    # From alpha = gamma = 0.5: the unclicked session was attractive (and examined) with
    # probability 0.25 / 0.75 = 1/3. Attractiveness: (1 + 1/3) / 2 = 2/3; examination, with
    # one pseudo-click in two pseudo-sessions: (1 + 1 + 1/3) / (2 + 2) = 7/12.
    fit = fit_pbm([JudgmentCount("q", "p", 1, impressions=2, clicks=1)], max_iterations=1)
    assert fit.attractiveness == pytest.approx((2 / 3,))
    assert fit.examination == pytest.approx({1: 7 / 12})
    assert (fit.iterations, fit.converged) == (1, False)
    # Scaled so that rank 1 is examined with probability 1.
    result = pbm(JudgmentCounts(rows=(JudgmentCount("q", "p", 1, 2, 1),)), max_iterations=1)
    assert result.examination == {1: 1.0}
    assert result.judgments[0].score == pytest.approx(2 / 3 * 7 / 12)


def simulate_pbm(
    rng: np.random.Generator, alpha: np.ndarray, gamma: np.ndarray, sessions: int
) -> JudgmentCounts:
    """Each pair shown `sessions` times at uniformly random ranks; clicks by PBM."""
    rows, ranks = [], {}
    for pair, a in enumerate(alpha):
        shown = rng.multinomial(sessions, np.full(len(gamma), 1 / len(gamma)))
        clicks = rng.binomial(shown, a * gamma)
        for r, (n, c) in enumerate(zip(shown, clicks, strict=True), start=1):
            if n:
                rows.append(JudgmentCount("q", f"p{pair:02d}", r, int(n), int(c)))
                total = ranks.get(r, Counts())
                ranks[r] = Counts(total.impressions + int(n), total.clicks + int(c))
    return JudgmentCounts(rows=tuple(rows), ranks=ranks)


def test_pbm_recovers_known_parameters() -> None:
    rng = np.random.default_rng(15)
    alpha = rng.uniform(0.05, 0.7, size=40)
    gamma = 1 / np.arange(1, 6)
    result = pbm(simulate_pbm(rng, alpha, gamma, sessions=3000))
    assert result.converged
    assert list(result.examination.values()) == pytest.approx(gamma, abs=0.03)
    got = np.array([j.score for j in result.judgments])
    assert np.abs(got - alpha).max() < 0.05
    covered = [j.low <= a <= j.high for j, a in zip(result.judgments, alpha, strict=True)]  # type: ignore[operator]
    assert sum(covered) >= 0.85 * len(alpha)


def test_coec_interval_covers_in_simulation() -> None:
    # Known rank CTRs (from a huge number of searches), pairs at random ranks clicked with
    # probability theta * CTR_r: the 95% interval covers theta about 95% of the time or more.
    rng = np.random.default_rng(16)
    ctr = np.array([0.4, 0.2, 0.1, 0.05])
    ranks = {r: Counts(10**9, round(10**9 * p)) for r, p in enumerate(ctr, start=1)}
    theta = rng.uniform(0.2, 2.0, size=400)
    rows = []
    for pair, t in enumerate(theta):
        shown = rng.multinomial(60, np.full(4, 0.25))
        clicks = rng.binomial(shown, np.minimum(t * ctr, 1))
        rows += [
            JudgmentCount("q", f"p{pair:03d}", r, int(n), int(c))
            for r, (n, c) in enumerate(zip(shown, clicks, strict=True), start=1)
            if n
        ]
    result = judge(JudgmentCounts(rows=tuple(rows), ranks=ranks), "coec")
    covered = [j.low <= t <= j.high for j, t in zip(result.judgments, theta, strict=True)]  # type: ignore[operator]
    assert 0.93 <= sum(covered) / len(theta) <= 1.0
    # and the point estimate is unbiased: mean COEC over pairs near the mean theta
    scores = np.array([j.score for j in result.judgments])
    assert math.isclose(scores.mean(), theta.mean(), rel_tol=0.05)
