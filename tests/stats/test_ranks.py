from __future__ import annotations

import numpy as np
import pytest

from clickstats.stats.ranks import summarize_ranks


def test_fixed_values() -> None:
    s = summarize_ranks({1: 3, 2: 1, 5: 2})  # ranks 1,1,1,2,5,5
    assert s.total == 6
    assert s.mean == pytest.approx(15 / 6)
    assert s.median == 1.5
    assert (s.minimum, s.maximum) == (1, 5)


def test_odd_count_median_is_the_middle_click() -> None:
    assert summarize_ranks({1: 1, 3: 1, 9: 1}).median == 3


def test_empty_and_zero_counts() -> None:
    s = summarize_ranks({})
    assert (s.total, s.mean, s.median, s.minimum, s.maximum) == (0, None, None, None, None)
    assert summarize_ranks({4: 0, 2: 1}).minimum == 2


def test_agrees_with_numpy_on_random_histograms() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        ranks = rng.geometric(0.3, size=rng.integers(1, 60))
        values, counts = np.unique(ranks, return_counts=True)
        s = summarize_ranks(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        assert s.median == pytest.approx(float(np.median(ranks)))
        assert s.mean == pytest.approx(float(np.mean(ranks)))
        assert (s.minimum, s.maximum) == (ranks.min(), ranks.max())
