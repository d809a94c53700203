"""Holm and Benjamini-Hochberg across variants: statsmodels' answers (Holm exactly, BH to the
last bits: scipy's and statsmodels' BH round differently)."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from clickstats.stats.compare import METHODS, Method, compare
from clickstats.stats.multiple import CORRECTIONS, Correction, adjust_p_values, correct
from clickstats.stats.summary import RatioSummary


@pytest.mark.parametrize(("correction", "statsmodels_name"), list(CORRECTIONS.items()))
def test_adjusted_p_values_match_multipletests_exactly(
    correction: Correction, statsmodels_name: str
) -> None:
    rng = np.random.default_rng(99)
    for size in (2, 3, 4, 12):  # few calls: statsmodels' Holm runs gc.collect() each time
        p = [*rng.uniform(0, 0.2, size).tolist(), 0.0, 1.0]
        expected = multipletests(p, method=statsmodels_name)[1]
        assert adjust_p_values(p, correction) == pytest.approx(expected.tolist(), rel=1e-14)
        if correction == "holm":
            assert adjust_p_values(p, correction) == expected.tolist()


def test_one_comparison_is_left_alone() -> None:
    assert adjust_p_values([0.03], "holm") == [0.03]
    assert adjust_p_values([], "bh") == []


def test_unknown_correction_raises() -> None:
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values([0.1, 0.2], "bonferroni")  # type: ignore[arg-type]  # on purpose


@pytest.mark.parametrize("method", METHODS)
def test_adjusted_intervals_agree_with_adjusted_p_values(method: Method) -> None:
    rng = np.random.default_rng(4)
    control = RatioSummary.from_values(rng.binomial(1, 0.30, 6000))
    treatments = [RatioSummary.from_values(rng.binomial(1, p, 6000)) for p in (0.30, 0.32, 0.33)]
    raw = [compare(control, t, method=method) for t in treatments]
    adjusted = correct(raw, "holm")
    expected = multipletests([c.p_value for c in raw], method="holm")[1]
    for before, after, p_adj in zip(raw, adjusted, expected, strict=True):
        assert after.p_value == before.p_value
        assert after.p_value_adjusted == p_adj
        assert after.significant == (p_adj < 0.05)
        assert before.absolute_ci is not None and after.absolute_ci is not None
        excludes_zero = after.absolute_ci[0] > 0 or after.absolute_ci[1] < 0
        assert excludes_zero == after.significant
        assert after.absolute_ci[0] <= before.absolute_ci[0] <= before.absolute_ci[1]
        assert before.absolute_ci[1] <= after.absolute_ci[1]
        assert after.ci_level is not None and after.ci_level >= 0.95


def test_untestable_comparisons_are_left_out_of_the_family() -> None:
    s = RatioSummary.from_values([0, 1, 1, 0, 1] * 40)
    flat = RatioSummary.from_values([1])  # one user: no variance, no test
    raw = [compare(s, flat, method="fixed"), compare(s, s, method="fixed")]
    adjusted = correct(raw, "holm")
    assert adjusted[0] == raw[0] and adjusted[0].reason is not None
    assert adjusted[1].p_value_adjusted == adjusted[1].p_value  # a family of one
