"""The preference for B between two interleaved rankers, with the user as the unit
(clickstats.stats.preference; docs/INTERLEAVING.md).

Fixed values worked by hand; the delta-method interval against independent computations
(statsmodels' cluster-robust standard error, a cluster bootstrap); degenerate inputs; verdicts
that agree with the interval and the p-value. The validation by simulation with the real
rankers: tests/test_interleaving.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm  # type: ignore[import-untyped]

from clickstats.search import V1, V2
from clickstats.stats.preference import (
    MIN_USERS,
    Outcome,
    PreferenceSummary,
    analyze_preference,
)
from clickstats.stats.summary import RatioSummary


def test_summary_of_outcomes() -> None:
    # The store contract's example (tests/store/test_preference.py): u1 A, B, tie; u2 B.
    searches: list[tuple[str, Outcome]] = [
        ("u1", "A"), ("u1", "B"), ("u1", "tie"), ("u2", "B"), ("u2", "none"), ("u3", "none"),
    ]  # fmt: skip
    summary = PreferenceSummary.from_outcomes(searches)
    assert summary == PreferenceSummary(2, 1, 2, 1, 1, 2, 1)
    assert summary.searches_with_clicks == 4
    assert summary == PreferenceSummary.from_user_counts([1, 0], [1, 1], [1, 0])
    ratio = summary.ratio()  # x = B wins (1, 1), y = A + B wins (2, 1)
    assert ratio == RatioSummary(users=2, sum_x=2, sum_y=3, sum_x2=2, sum_y2=5, sum_xy=3)
    with pytest.raises(ValueError, match="one count per user"):
        PreferenceSummary.from_user_counts([1, 2], [1], [0, 0])


WINS_A = [3, 1, 0, 2, 5, 1, 0, 4]
WINS_B = [4, 3, 2, 2, 6, 0, 1, 7]
TIES = [1, 0, 0, 1, 2, 0, 0, 3]


def test_fixed_values() -> None:
    result = analyze_preference(PreferenceSummary.from_user_counts(WINS_A, WINS_B, TIES))
    # 25 / 41; se^2 = n / (n - 1) * sum_u (b_u - p (a_u + b_u))^2 / 41^2, by hand.
    assert (result.wins_a, result.wins_b, result.ties, result.users) == (16, 25, 7, 8)
    assert result.searches_with_clicks == 48
    p = 25 / 41
    residuals = [b - p * (a + b) for a, b in zip(WINS_A, WINS_B, strict=True)]
    se = math.sqrt(8 / 7 * sum(r * r for r in residuals)) / 41
    assert result.preference == pytest.approx(0.6097560975609756, rel=1e-12)
    assert result.se == pytest.approx(se, rel=1e-9)
    assert result.se == pytest.approx(0.0395318209, rel=1e-9)
    assert result.p_value == pytest.approx(0.00549647539, rel=1e-8)
    assert result.ci_low == pytest.approx(p - 1.959963985 * se, rel=1e-9)
    assert result.ci_high == pytest.approx(p + 1.959963985 * se, rel=1e-9)
    assert result.significant and result.reason is None
    assert result.verdict == (
        "Users seem to prefer B, but 8 users are too few to rely on (at least 100 are needed): "
        "B wins 61.0% of the 41 searches won by either ranker (95% CI 53.2% to 68.7%, "
        "p = 0.0055, 8 users)."
    )


def test_agrees_with_statsmodels_cluster_robust_standard_error() -> None:
    # The preference is the mean of "B won" over the decided searches; its cluster-robust
    # (by user) standard error, with statsmodels' small-sample factor G / (G - 1), is the
    # delta-method one exactly.
    rng = np.random.default_rng(3)
    users = 60
    wins_a = rng.poisson(rng.gamma(1.0, 3.0, users)) + 1
    wins_b = rng.poisson(rng.gamma(1.5, 3.0, users))
    b_won = np.concatenate(
        [np.r_[np.zeros(a), np.ones(b)] for a, b in zip(wins_a, wins_b, strict=True)]
    )
    groups = np.repeat(np.arange(users), wins_a + wins_b)
    fit = sm.OLS(b_won, np.ones((b_won.size, 1))).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    result = analyze_preference(PreferenceSummary.from_user_counts(wins_a, wins_b, [0] * users))
    assert result.preference == pytest.approx(float(fit.params[0]), rel=1e-12)
    assert result.se == pytest.approx(float(fit.bse[0]), rel=1e-9)


def test_agrees_with_a_cluster_bootstrap() -> None:
    rng = np.random.default_rng(4)
    users = 400
    activity = rng.lognormal(-0.5, 1.0, users)  # heavy-tailed, as simulated users are
    taste = rng.beta(3, 2, users)  # each user's own leaning: their searches are correlated
    decided = rng.poisson(6 * activity)
    wins_b = rng.binomial(decided, taste)
    wins_a = decided - wins_b
    ties = rng.poisson(activity)
    result = analyze_preference(PreferenceSummary.from_user_counts(wins_a, wins_b, ties))
    resample = rng.integers(users, size=(4000, users))
    boot = wins_b[resample].sum(1) / decided[resample].sum(1)
    assert result.se == pytest.approx(float(boot.std(ddof=1)), rel=0.05)
    naive = math.sqrt(result.preference * (1 - result.preference) / decided.sum())  # type: ignore[operator]
    assert result.se > 1.5 * naive  # searches are not independent: the user is the unit


def test_degenerate_inputs_give_a_reason() -> None:
    cases = {
        "no search has a click": PreferenceSummary(0, 0, 0, 0, 0, 0, 0),
        "every search with clicks is a tie": PreferenceSummary.from_user_counts([0, 0], [0, 0], [2, 1]),
        "1 user has clicked": PreferenceSummary.from_user_counts([3], [5], [1]),
        "zero variance": PreferenceSummary.from_user_counts([0, 0], [2, 3], [0, 1]),
    }  # fmt: skip
    for reason, summary in cases.items():
        result = analyze_preference(summary, names=(V1, V2))
        assert result.reason is not None and result.reason.startswith(reason)
        assert result.verdict.startswith(f"Not enough data to compare {V1} and {V2}: {reason}")
        assert not result.significant and result.p_value is None and result.ci_low is None
    assert analyze_preference(cases["zero variance"]).preference == 1.0
    with pytest.raises(ValueError, match="alpha"):
        analyze_preference(cases["zero variance"], alpha=1.0)


def test_verdicts_and_the_interval_agree_with_the_p_value() -> None:
    def result(users: int, lean: float, seed: int = 0) -> Any:
        rng = np.random.default_rng(seed)
        decided = rng.poisson(10, users) + 1
        wins_b = rng.binomial(decided, lean)
        return analyze_preference(
            PreferenceSummary.from_user_counts(decided - wins_b, wins_b, rng.poisson(2, users)),
            names=(V1, V2),
        )

    assert result(400, 0.6).verdict.startswith(f"Users prefer {V2}: {V2} wins 6")
    assert result(400, 0.4).verdict.startswith(f"Users prefer {V1}: {V2} wins 3")
    assert result(MIN_USERS - 1, 0.7).verdict.startswith(
        f"Users seem to prefer {V2}, but {MIN_USERS - 1} users are too few to rely on"
    )
    for seed in range(200):
        r = result(50, 0.53, seed)
        assert r.significant == (r.p_value < 0.05) == (not r.ci_low <= 0.5 <= r.ci_high)
