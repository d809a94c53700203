"""The outlier-user rule: fixed values, agreement with numpy/scipy, and a seeded whale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import median_abs_deviation

from clickstats.stats.compare import compare
from clickstats.stats.outliers import DEFAULT_OUTLIER_Z, MIN_SCALE, apply, max_searches
from tests.stats import sim


def test_hand_computed_threshold() -> None:
    # 11 users: log searches 0 (x5), ln 2 (x3), ln 3 (x2), ln 100. Median ln 2; absolute
    # deviations ln 2 (x5), 0 (x3), ln 1.5 (x2), ln 50: MAD ln 2, robust SD 1.4826 ln 2 = 1.0277.
    # T = floor(2 * exp(3.5 * 1.0277)) = 72: the user with 100 searches is out.
    histogram = {1: 5, 2: 3, 3: 2, 100: 1}
    assert max_searches(histogram, 3.5) == 72
    rule = apply({"v1": {1: 5, 2: 1}, "v2": {2: 2, 3: 2, 100: 1}}, 3.5)
    assert (rule.max_searches, dict(rule.excluded), rule.total_excluded) == (
        72,
        {"v1": 0, "v2": 1},
        1,
    )


def test_alike_users_keep_a_floor_of_e_to_the_z() -> None:
    # Everybody searched 10 times: MAD 0, so the scale is MIN_SCALE and T = 10 e^3.5 = 331.
    assert max_searches({10: 500}, 3.5) == math.floor(10 * math.exp(3.5 * MIN_SCALE)) == 331


def test_off_and_empty() -> None:
    assert max_searches({1: 10, 5000: 1}, 0) is None
    assert max_searches({}, 3.5) is None
    rule = apply({"v1": {1: 3, 9000: 1}}, 0)
    assert rule.max_searches is None and rule.total_excluded == 0
    with pytest.raises(ValueError, match="outlier z"):
        max_searches({1: 1}, -1)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_numpy_median_and_scipy_mad(seed: int) -> None:
    rng = np.random.default_rng(seed)
    searches = np.ceil(rng.lognormal(1.5, 1.3, rng.integers(1, 3000))).astype(np.int64)
    values, counts = np.unique(searches, return_counts=True)
    histogram = dict(zip(values.tolist(), counts.tolist(), strict=True))
    logs = np.log(searches.astype(np.float64))
    scale = max(float(median_abs_deviation(logs, scale="normal")), MIN_SCALE)
    expected = math.floor(math.exp(float(np.median(logs)) + DEFAULT_OUTLIER_Z * scale))
    assert max_searches(histogram) == expected


def test_a_single_whale_no_longer_flips_the_verdict() -> None:
    # A/A experiments of 1,000 users per arm (the calibration's users), plus one user in the
    # treatment with 5,000 searches and no click: a bot. Without the rule it makes the
    # treatment "significantly worse" in about half of them; with it, the false positive rate
    # is back at the nominal 5%.
    rng = np.random.default_rng(20261201)
    runs, per_arm = 1000, 1000
    users = sim.draw_users(rng, runs, 2 * per_arm, ranks=False)
    whale = np.full((runs, 1), 5000.0)
    searches = np.concatenate([users.searches, whale], axis=1)
    clicked = np.concatenate([users.clicked, np.zeros((runs, 1))], axis=1)
    a, b = slice(0, per_arm), slice(per_arm, None)
    everyone = np.ones(searches.shape, dtype=bool)
    keep = sim.kept(searches, DEFAULT_OUTLIER_Z)
    assert not keep[:, -1].any()  # the whale is out in every run
    assert (~keep[:, :-1]).mean() < 0.001  # and almost nobody else is

    def false_positives(mask: np.ndarray) -> float:
        control = sim.masked_sums(clicked[:, a], searches[:, a], mask[:, a])
        treatment = sim.masked_sums(clicked[:, b], searches[:, b], mask[:, b])
        return float(
            np.mean(
                [
                    compare(sim.summary(c), sim.summary(t), method="fixed").significant
                    for c, t in zip(control, treatment, strict=True)
                ]
            )
        )

    without, with_rule = false_positives(everyone), false_positives(keep)
    print(
        f"\nA/A with a whale: false positives {without:.3f} without the rule, {with_rule:.3f} with"
    )
    assert without > 0.3
    assert 0.032 <= with_rule <= 0.068
