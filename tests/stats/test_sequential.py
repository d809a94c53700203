"""The asymptotic confidence sequence: fixed values and its own consistency."""

from __future__ import annotations

import math

import pytest

from clickstats.stats import sequential


def test_rho_for_the_default_tuning() -> None:
    # rho^2 = (-2 ln 0.05 + ln(-2 ln 0.05 + 1)) / 5000 = (5.991465 + 1.944700) / 5000
    assert sequential.DEFAULT_TUNING == 5000
    assert sequential.mixing_rho(0.05) == pytest.approx(math.sqrt(7.936165 / 5000), rel=1e-6)
    assert sequential.mixing_rho(0.05) == pytest.approx(0.0398401, abs=1e-7)


def test_halfwidth_at_n_star() -> None:
    # n rho^2 = 7.936165: sqrt(2 * 8.936165 / 7.936165 * ln(sqrt(8.936165) / 0.05)) = 3.035209,
    # against 1.959964 for a fixed-horizon interval at the same standard error.
    se = 1 / math.sqrt(5000)
    assert sequential.halfwidth(se, 5000, 0.05) / se == pytest.approx(3.035209, abs=1e-6)


def test_tightest_relative_to_the_fixed_interval_near_n_star() -> None:
    # For a fixed per-user variance, width / (1.96 * SE) is smallest around N*.
    def ratio(n: int) -> float:
        se = 1 / math.sqrt(n)
        return sequential.halfwidth(se, n, 0.05) / (1.959964 * se)

    ratios = {n: ratio(n) for n in (500, 2000, 5000, 12000, 50000)}
    assert min(ratios, key=ratios.__getitem__) == 5000
    assert all(r > 1 for r in ratios.values())


@pytest.mark.parametrize("n", [40, 1000, 5000, 80000])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
def test_p_value_is_alpha_exactly_on_the_interval_boundary(n: int, alpha: float) -> None:
    se = 0.37
    edge = sequential.halfwidth(se, n, alpha)
    assert sequential.p_value(edge, se, n, alpha) == pytest.approx(alpha, rel=1e-9)
    assert sequential.p_value(edge * 1.01, se, n, alpha) < alpha
    assert sequential.p_value(edge * 0.99, se, n, alpha) > alpha
    # A smaller ci_alpha (as a multiple-comparison adjustment asks for) keeps rho fixed.
    inner = sequential.halfwidth(se, n, alpha, ci_alpha=alpha / 3)
    assert sequential.p_value(inner, se, n, alpha) == pytest.approx(alpha / 3, rel=1e-9)


def test_p_value_is_capped_at_one() -> None:
    assert sequential.p_value(0.0, 1.0, 100, 0.05) == 1.0


def test_arguments_outside_their_domain_raise() -> None:
    with pytest.raises(ValueError, match="alpha"):
        sequential.mixing_rho(0.0)
    with pytest.raises(ValueError, match="N\\*"):
        sequential.mixing_rho(0.05, tuning=0)
