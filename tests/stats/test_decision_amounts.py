"""The decision's sentence on a metric that is an amount of money (`Metric.currency`, revenue
per user): values with two decimals and the analysis currency, never a bare number or a
percentage; the change stays relative; a per-user mean's minimum sample names users once."""

from __future__ import annotations

import numpy as np

from clickstats.stats.analysis import analyze
from clickstats.stats.summary import ExperimentSummary, RatioSummary, VariantSummary

METRIC = "revenue_per_user"


def _arm(name: str, values: np.ndarray) -> VariantSummary:
    return VariantSummary(name, values.size, {METRIC: RatioSummary.from_values(values)})


def _revenue(rng: np.random.Generator, users: int, mean: float) -> np.ndarray:
    """Per-user revenue with exactly `mean` as its mean."""
    values = rng.gamma(4.0, 1.0, users)
    return values - values.mean() + mean


def _experiment(control: np.ndarray, treatment: np.ndarray) -> ExperimentSummary:
    return ExperimentSummary(
        (_arm("search_v1", control), _arm("search_v2", treatment)),
        {"search_v1": 1.0, "search_v2": 1.0},
    )


def test_a_revenue_verdict_quotes_amounts_in_the_currency() -> None:
    rng = np.random.default_rng(1)
    summary = _experiment(_revenue(rng, 2000, 12.30), _revenue(rng, 2000, 13.10))
    result = analyze(summary, method="fixed", primary_metric=METRIC, currency="EUR")
    c = result.variants[1].metrics[METRIC].comparison
    assert c is not None and c.relative_ci is not None
    low, high = c.relative_ci
    assert result.decision.winner == "search_v2"
    # 13.10 / 12.30 - 1 = +6.5%; the interval is the relative change's, in percent
    assert result.decision.summary == (
        f"Ship search_v2: it raises revenue per user from 12.30 EUR to 13.10 EUR (+6.5%, "
        f"95% CI {low:+.1%} to {high:+.1%}), a significant improvement over search_v1."
    )
    # Without a currency (no purchase had one) the amounts keep their two decimals.
    plain = analyze(summary, method="fixed", primary_metric=METRIC).decision.summary
    assert plain.startswith("Ship search_v2: it raises revenue per user from 12.30 to 13.10 (")
    # A rate is unchanged: the currency is for amounts only.
    searches = np.ones(2000)
    ctr = ExperimentSummary(
        tuple(
            VariantSummary(name, 2000, {"search_ctr": RatioSummary.from_values(clicks, searches)})
            for name, clicks in (
                ("search_v1", (rng.random(2000) < 0.3).astype(float)),
                ("search_v2", (rng.random(2000) < 0.4).astype(float)),
            )
        ),
        {"search_v1": 1.0, "search_v2": 1.0},
    )
    text = analyze(ctr, method="fixed", currency="EUR").decision.summary
    assert "%" in text and "EUR" not in text


def test_large_amounts_have_thousands_separators() -> None:
    rng = np.random.default_rng(2)
    summary = _experiment(_revenue(rng, 2000, 1234.5), _revenue(rng, 2000, 1300.0))
    text = analyze(summary, method="fixed", primary_metric=METRIC, currency="JPY").decision.summary
    assert "from 1,234.50 JPY to 1,300.00 JPY (+5.3%" in text


def test_revenue_of_zero_in_one_arm_is_quoted_in_the_currency() -> None:
    rng = np.random.default_rng(3)
    summary = _experiment(np.zeros(400), _revenue(rng, 400, 13.10))
    result = analyze(summary, method="fixed", primary_metric=METRIC, currency="EUR")
    assert result.decision.blocked_by == ("implausible_lift",)
    assert result.decision.summary == (
        "Check the tracking before acting: revenue per user is 0.00 EUR in search_v1 and "
        "13.10 EUR in search_v2; a value of 0 in search_v1 usually means its events are not "
        "recorded."
    )


def test_too_early_for_a_per_user_mean_counts_users_once() -> None:
    rng = np.random.default_rng(4)
    summary = _experiment(_revenue(rng, 20, 12.30), _revenue(rng, 1, 13.10))
    result = analyze(summary, method="fixed", primary_metric=METRIC, currency="EUR")
    assert result.decision.blocked_by == ("minimum_sample",)
    # revenue per user's denominator is its users: 150 of them, not "30 users and 150 users"
    assert result.decision.summary == (
        "Too early to call: search_v1 has 20 users; search_v2 has 1 user; a verdict needs at "
        "least 150 users in every variant. Keep the experiment running."
    )
