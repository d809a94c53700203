"""Summaries: the per-user sums a store must produce, and what follows from them."""

from __future__ import annotations

import numpy as np
import pytest

from clickstats.stats.summary import METRICS, ExperimentSummary, RatioSummary, VariantSummary


def test_metric_names_are_the_api() -> None:
    assert list(METRICS) == [
        "search_ctr",
        "clicks_per_search",
        "mrr",
        "avg_click_position",
        "abandonment_rate",
        "zero_result_rate",
        "time_to_first_click_ms",
        "conversion_rate",
        "add_to_cart_rate",
        "purchase_rate",
        "revenue_per_search",
        "revenue_per_user",
        "average_order_value",
        "products_per_purchase",
    ]
    lower = {name for name, spec in METRICS.items() if not spec.higher_is_better}
    assert lower == {
        "avg_click_position",
        "abandonment_rate",
        "zero_result_rate",
        "time_to_first_click_ms",
    }


def test_moments_of_a_hand_computed_case() -> None:
    # x = [1, 0, 2], y = [2, 1, 3]: every moment is worked out by hand.
    s = RatioSummary.from_values([1, 0, 2], [2, 1, 3])
    assert (s.users, s.sum_x, s.sum_y, s.sum_x2, s.sum_y2, s.sum_xy) == (3, 3, 6, 5, 14, 8)
    assert s.ratio == 0.5
    assert (s.mean_x, s.mean_y) == (1.0, 2.0)
    assert s.var_x == pytest.approx(1.0, abs=1e-12)  # (5 - 3^2/3) / 2
    assert s.var_y == pytest.approx(1.0, abs=1e-12)  # (14 - 6^2/3) / 2
    assert s.cov_xy == pytest.approx(1.0, abs=1e-12)  # (8 - 3*6/3) / 2


def test_moments_agree_with_numpy() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.poisson(3, 500).astype(float), rng.poisson(8, 500).astype(float) + 1
    s = RatioSummary.from_values(x, y)
    assert s.var_x == pytest.approx(np.var(x, ddof=1), rel=1e-12)
    assert s.var_y == pytest.approx(np.var(y, ddof=1), rel=1e-12)
    assert s.cov_xy == pytest.approx(np.cov(x, y, ddof=1)[0, 1], rel=1e-12)
    assert s.ratio == pytest.approx(x.sum() / y.sum(), rel=1e-15)


def test_a_plain_mean_is_a_ratio_with_y_one() -> None:
    s = RatioSummary.from_values([2.0, 4.0, 9.0])
    assert (s.sum_y, s.sum_y2, s.ratio, s.var_y, s.cov_xy) == (3, 3, 5.0, 0.0, 0.0)


def test_degenerate_summaries_give_none_not_errors() -> None:
    empty = RatioSummary(0, 0, 0, 0, 0, 0)
    assert (empty.mean_x, empty.ratio, empty.var_x, empty.cov_xy) == (None, None, None, None)
    one = RatioSummary.from_values([1.0], [0.0])
    assert (one.ratio, one.var_x) == (None, None)


def test_mismatched_lengths_name_the_problem() -> None:
    with pytest.raises(ValueError, match="x has 2 users but y has 1"):
        RatioSummary.from_values([1, 2], [1])


def test_control_defaults_to_the_first_variant() -> None:
    s = RatioSummary.from_values([1.0, 2.0])
    variants = (VariantSummary("a", 2, {"m": s}), VariantSummary("b", 2, {"m": s}))
    assert ExperimentSummary(variants, {"a": 1, "b": 1}).control_name == "a"
    assert ExperimentSummary(variants, {"a": 1, "b": 1}, control="b").control_name == "b"
    assert ExperimentSummary((), {}).control_name is None
