"""Treatment vs control: fixed values, agreement with statsmodels, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from clickstats.stats.compare import METHODS, compare, ratio_variance
from clickstats.stats.summary import RatioSummary

Array = NDArray[np.float64]


def test_hand_computed_fixed_comparison() -> None:
    # Control 0,1,1,0: mean 1/2, Var(mean) = (1/3)/4. Treatment 1,1,1,0: 3/4, (1/4)/4.
    # Difference 0.25 with SE sqrt(1/12 + 1/16) = sqrt(7/48); Welch dof
    # (1/12 + 1/16)^2 / (((1/12)^2 + (1/16)^2) / 3) = 5.88; t_(0.975, 5.88) = 2.459068.
    # Relative: 0.5, its interval the difference's divided by the control's 1/2; its own
    # delta-method SE sqrt(0.0625/0.25 + 0.5625*(1/12)/0.0625) = 1 (reported, not tested).
    c = compare(
        RatioSummary.from_values([0, 1, 1, 0]),
        RatioSummary.from_values([1, 1, 1, 0]),
        method="fixed",
    )
    se = math.sqrt(7 / 48)
    assert c.absolute == pytest.approx(0.25, abs=1e-12)
    assert c.absolute_se == pytest.approx(se, abs=1e-12)
    assert c.relative == pytest.approx(0.5, abs=1e-12)
    assert c.relative_se == pytest.approx(1.0, abs=1e-12)
    assert c.dof == pytest.approx(5.88, abs=1e-12)
    assert c.p_value == pytest.approx(0.537440, abs=1e-6)
    width = 2.459068 * se
    assert c.absolute_ci == pytest.approx((0.25 - width, 0.25 + width), abs=1e-6)
    assert c.relative_ci == pytest.approx((0.5 - 2 * width, 0.5 + 2 * width), abs=1e-6)
    assert (c.significant, c.ci_level, c.reason) == (False, 0.95, None)


def test_hand_computed_delta_method_variance() -> None:
    # x = [1, 0, 2], y = [2, 1, 3]: R = 1/2, linearised residuals (x - R y) / mean_y = 0, -1/4, 1/4.
    s = RatioSummary.from_values([1, 0, 2], [2, 1, 3])
    assert ratio_variance(s) == pytest.approx((1 / 16 + 1 / 16) / 2 / 3, abs=1e-15)


def _ratio_data(rng: np.random.Generator, users: int, ctr: float) -> tuple[Array, Array]:
    searches = np.ceil(rng.lognormal(1.0, 1.0, users))
    clicked = rng.binomial(searches.astype(np.int64), rng.beta(ctr * 10, (1 - ctr) * 10, users))
    return clicked.astype(float), searches


def _pseudo_values(x: Array, y: Array) -> Array:
    # Linearisation of the ratio (an independent route to the delta method): each user's
    # influence R + (x - R y) / mean(y). Its mean is R; its variance / n is Var(R).
    r = float(x.sum() / y.sum())
    return r + (x - r * y) / float(y.mean())


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_ratio_comparison_agrees_with_statsmodels(alpha: float) -> None:
    rng = np.random.default_rng(2024)
    xc, yc = _ratio_data(rng, 700, 0.3)
    xt, yt = _ratio_data(rng, 650, 0.33)
    c = compare(
        RatioSummary.from_values(xc, yc),
        RatioSummary.from_values(xt, yt),
        alpha=alpha,
        method="fixed",
    )
    means = CompareMeans(DescrStatsW(_pseudo_values(xt, yt)), DescrStatsW(_pseudo_values(xc, yc)))
    low, high = means.tconfint_diff(alpha=alpha, usevar="unequal")
    _, p, dof = means.ttest_ind(usevar="unequal")
    assert c.absolute_ci == pytest.approx((low, high), abs=1e-9)
    assert c.p_value == pytest.approx(p, abs=1e-9)
    assert c.dof == pytest.approx(dof, rel=1e-9)
    assert c.absolute_se == pytest.approx(means.std_meandiff_separatevar, rel=1e-9)
    rc = float(xc.sum() / yc.sum())
    assert c.relative_ci == pytest.approx((low / rc, high / rc), rel=1e-9)


def test_mean_comparison_agrees_with_statsmodels() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.exponential(1.0, 400), rng.exponential(1.15, 380)
    c = compare(RatioSummary.from_values(a), RatioSummary.from_values(b), method="fixed")
    means = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    assert c.absolute_ci == pytest.approx(means.tconfint_diff(usevar="unequal"), abs=1e-9)
    assert c.p_value == pytest.approx(means.ttest_ind(usevar="unequal")[1], abs=1e-9)


def test_complementary_metrics_get_the_same_test() -> None:
    # Abandonment = 1 - search CTR when every search has results: the same difference, the
    # same p-value, opposite signs (a ratio test would give them different p-values).
    rng = np.random.default_rng(8)
    xc, yc = _ratio_data(rng, 300, 0.45)
    xt, yt = _ratio_data(rng, 300, 0.55)
    ctr = compare(RatioSummary.from_values(xc, yc), RatioSummary.from_values(xt, yt))
    abandon = compare(RatioSummary.from_values(yc - xc, yc), RatioSummary.from_values(yt - xt, yt))
    assert ctr.absolute == pytest.approx(-(abandon.absolute or 0), rel=1e-12)
    assert ctr.p_value == pytest.approx(abandon.p_value, rel=1e-9)
    assert ctr.significant == abandon.significant


def test_relative_se_is_the_delta_method_on_the_four_means() -> None:
    # Independent computation: gradient of (xt/yt)/(xc/yc) - 1 with the covariance of the
    # four sample means (the arms are independent, so it is block-diagonal).
    rng = np.random.default_rng(3)
    xc, yc = _ratio_data(rng, 900, 0.25)
    xt, yt = _ratio_data(rng, 800, 0.28)
    c = compare(RatioSummary.from_values(xc, yc), RatioSummary.from_values(xt, yt), method="fixed")
    mxc, myc, mxt, myt = xc.mean(), yc.mean(), xt.mean(), yt.mean()
    rc, rt = mxc / myc, mxt / myt
    grad = np.array([-rt / rc / mxc, rt / rc / myc, 1 / myt / rc, -mxt / myt**2 / rc])
    cov = np.zeros((4, 4))
    cov[:2, :2] = np.cov(xc, yc, ddof=1) / len(xc)
    cov[2:, 2:] = np.cov(xt, yt, ddof=1) / len(xt)
    assert c.relative == pytest.approx(rt / rc - 1, rel=1e-12)
    assert c.relative_se == pytest.approx(math.sqrt(grad @ cov @ grad), rel=1e-9)


def test_sequential_intervals_are_wider_and_agree_with_their_p_value() -> None:
    rng = np.random.default_rng(5)
    xc, yc = _ratio_data(rng, 3000, 0.30)
    xt, yt = _ratio_data(rng, 3000, 0.32)
    control, treatment = RatioSummary.from_values(xc, yc), RatioSummary.from_values(xt, yt)
    fixed = compare(control, treatment, method="fixed")
    seq = compare(control, treatment, method="sequential")
    assert fixed.absolute_ci is not None and seq.absolute_ci is not None
    assert seq.absolute_ci[0] < fixed.absolute_ci[0] and seq.absolute_ci[1] > fixed.absolute_ci[1]
    assert seq.p_value is not None and fixed.p_value is not None and seq.p_value >= fixed.p_value
    assert seq.significant == (seq.absolute_ci[0] > 0 or seq.absolute_ci[1] < 0)


@pytest.mark.parametrize(
    ("control", "treatment", "reason"),
    [
        (RatioSummary(0, 0, 0, 0, 0, 0), RatioSummary.from_values([1, 2]), "a has 0 users"),
        (RatioSummary.from_values([1, 2]), RatioSummary.from_values([1]), "b has 1 user:"),
        (
            RatioSummary.from_values([0, 0], [0, 0]),
            RatioSummary.from_values([1, 0], [2, 1]),
            "a has a zero denominator",
        ),
        (
            RatioSummary.from_values([1, 1, 1], [2, 2, 2]),
            RatioSummary.from_values([1, 1], [2, 2]),
            "zero variance",
        ),
    ],
)
def test_degenerate_inputs_say_why(
    control: RatioSummary, treatment: RatioSummary, reason: str
) -> None:
    for method in METHODS:
        c = compare(control, treatment, method=method, names=("a", "b"))
        assert c.reason is not None and reason in c.reason
        assert (c.p_value, c.absolute_ci, c.significant) == (None, None, False)


def test_zero_control_rate_has_no_relative_change() -> None:
    for method in METHODS:
        c = compare(
            RatioSummary.from_values([0, 0, 0], [1, 2, 1]),
            RatioSummary.from_values([1, 0, 1], [1, 2, 1]),
            method=method,
        )
        assert c.absolute == pytest.approx(0.5) and c.p_value is not None
        assert (c.relative, c.relative_se, c.relative_ci) == (None, None, None)


def test_arguments_outside_their_domain_raise() -> None:
    s = RatioSummary.from_values([1, 2, 3])
    with pytest.raises(ValueError, match="method"):
        compare(s, s, method="bayes")  # type: ignore[arg-type]  # on purpose
    with pytest.raises(ValueError, match="alpha"):
        compare(s, s, alpha=1.5)
