"""Seeded simulations: the error rates the statistics promise, and the ones they avoid.

Every experiment is simulated at once with numpy (see `sim`): heterogeneous users (their own
click propensity, a heavy-tailed number of searches), reduced to the per-user sums a store
produces, then passed to the same functions `analyze` uses. `pytest -s` prints the table that
docs/STATISTICS.md shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import beta, kstest, norm
from statsmodels.stats.proportion import proportions_ztest

from clickstats.stats.compare import Comparison, Method, compare
from clickstats.stats.health import users_needed
from clickstats.stats.outliers import DEFAULT_OUTLIER_Z
from tests.stats import sim

RUNS = 1000
POWER_RUNS = 2000  # with a true lift: coverage there has a smaller Monte Carlo error
USERS_PER_ARM = 2000
LOOKS = 20
ALPHA = 0.05
LIFT = 0.05
FPR_BAND = (0.032, 0.068)
COVERAGE_BAND = (0.932, 0.968)
POWER_BAND = (0.75, 0.85)
# One-sided 95% Monte Carlo allowance on a rate of 0.05 estimated from RUNS experiments.
MC_ERROR = 1.645 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)

Bools = NDArray[np.bool_]


def _compare(a: NDArray[np.float64], b: NDArray[np.float64], method: Method) -> Comparison:
    return compare(sim.summary(a), sim.summary(b), alpha=ALPHA, method=method)


def _rule_sums(
    x: NDArray[np.float64], searches: NDArray[np.float64], looks: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both arms' sums at each of `looks` looks, the outlier rule applied at every look to the
    users seen so far (as the service does at every read): (runs, looks, 6) per arm."""
    half = x.shape[1] // 2
    block = half // looks
    out_a, out_b = [], []
    for k in range(1, looks + 1):
        cols = np.r_[0 : k * block, half : half + k * block]
        xs, ys = x[:, cols], searches[:, cols]
        keep = sim.kept(ys, DEFAULT_OUTLIER_Z)
        out_a.append(sim.masked_sums(xs[:, : k * block], ys[:, : k * block], keep[:, : k * block]))
        out_b.append(sim.masked_sums(xs[:, k * block :], ys[:, k * block :], keep[:, k * block :]))
    return np.stack(out_a, axis=1), np.stack(out_b, axis=1)


def _covers(ci: tuple[float, float] | None, value: float) -> bool:
    assert ci is not None
    return ci[0] <= value <= ci[1]


@dataclass(frozen=True)
class AA:
    p_values: dict[str, NDArray[np.float64]]  # fixed horizon, final look
    covered: dict[str, Bools]  # 95% CI of the absolute difference holds 0
    covered_relative: dict[str, Bools]
    sequential_any: dict[str, Bools]  # significant at any of the LOOKS looks
    fixed_any: Bools  # search CTR, fixed test read at every look
    sequential_last: Bools
    naive: Bools  # per-search two-proportion z-test, search CTR
    excluded: int  # users the outlier rule left out, over all runs (final look)


@pytest.fixture(scope="module")
def aa() -> AA:
    rng = np.random.default_rng(20260601)
    users = sim.draw_users(rng, RUNS, 2 * USERS_PER_ARM)
    a, b = slice(0, USERS_PER_ARM), slice(USERS_PER_ARM, None)
    numerators = {"search_ctr": users.clicked, "mrr": users.reciprocal_ranks}
    p_values, covered, covered_rel, seq_any = {}, {}, {}, {}
    excluded: list[int] = []
    fixed_any = np.zeros(RUNS, bool)
    seq_last = np.zeros(RUNS, bool)
    keep = sim.kept(users.searches, DEFAULT_OUTLIER_Z)  # the rule as the service applies it
    excluded.append(int((~keep).sum()))
    for metric, x in numerators.items():
        assert x is not None
        final_a = sim.masked_sums(x[:, a], users.searches[:, a], keep[:, a])
        final_b = sim.masked_sums(x[:, b], users.searches[:, b], keep[:, b])
        fixed = [_compare(ra, rb, "fixed") for ra, rb in zip(final_a, final_b, strict=True)]
        p_values[metric] = np.array([c.p_value for c in fixed])
        covered[metric] = np.array([_covers(c.absolute_ci, 0.0) for c in fixed])
        covered_rel[metric] = np.array([_covers(c.relative_ci, 0.0) for c in fixed])
        looks_a, looks_b = _rule_sums(x, users.searches, LOOKS)
        seq = np.array(
            [
                [
                    _compare(looks_a[r, k], looks_b[r, k], "sequential").significant
                    for k in range(LOOKS)
                ]
                for r in range(RUNS)
            ]
        )
        seq_any[metric] = np.asarray(seq.any(axis=1), dtype=bool)
        if metric == "search_ctr":
            seq_last = seq[:, -1]
            fixed_any = np.array(
                [
                    any(
                        _compare(looks_a[r, k], looks_b[r, k], "fixed").significant
                        for k in range(LOOKS)
                    )
                    for r in range(RUNS)
                ]
            )
    # The naive analysis: every search an independent Bernoulli trial, pooled z-test.
    clicks_a, clicks_b = users.clicked[:, a].sum(1), users.clicked[:, b].sum(1)
    searches_a, searches_b = users.searches[:, a].sum(1), users.searches[:, b].sum(1)
    pooled = (clicks_a + clicks_b) / (searches_a + searches_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / searches_a + 1 / searches_b))
    naive_p = 2 * norm.sf(np.abs(clicks_b / searches_b - clicks_a / searches_a) / se)
    _, reference = proportions_ztest([clicks_b[0], clicks_a[0]], [searches_b[0], searches_a[0]])
    assert naive_p[0] == pytest.approx(reference, rel=1e-9)  # it is statsmodels' test
    return AA(
        p_values, covered, covered_rel, seq_any, fixed_any, seq_last, naive_p < ALPHA, excluded[0]
    )


@dataclass(frozen=True)
class Power:
    users: int  # total, from the service's calculator
    detected: Bools
    covered: Bools
    covered_relative: Bools


@pytest.fixture(scope="module")
def power() -> Power:
    rng = np.random.default_rng(20260602)
    # The calculator, fed a large pilot of the same population with the lift in place.
    pilot_c = sim.draw_users(rng, 1, 100_000, ranks=False)
    pilot_t = sim.draw_users(rng, 1, 100_000, lift=1 + LIFT, ranks=False)
    needed = users_needed(
        sim.summary(sim.sums(pilot_c.clicked, pilot_c.searches)[0]),
        sim.summary(sim.sums(pilot_t.clicked, pilot_t.searches)[0]),
        LIFT,
        shares=(0.5, 0.5),
        alpha=ALPHA,
        power=0.8,
        method="fixed",
    )
    assert needed is not None
    # True rates: searches are independent of the propensity, so CTR = E[propensity].
    base = beta(*sim.CTR_BETA)
    true_c = base.mean()
    true_t = base.expect(lambda p: min((1 + LIFT) * p, 1.0))
    detected, covered, covered_rel = [], [], []
    chunk = 100
    for _ in range(POWER_RUNS // chunk):
        c = sim.draw_users(rng, chunk, needed // 2, ranks=False)
        t = sim.draw_users(rng, chunk, needed // 2, lift=1 + LIFT, ranks=False)
        keep = sim.kept(np.concatenate([c.searches, t.searches], axis=1), DEFAULT_OUTLIER_Z)
        half = c.searches.shape[1]
        for rc, rt in zip(
            sim.masked_sums(c.clicked, c.searches, keep[:, :half]),
            sim.masked_sums(t.clicked, t.searches, keep[:, half:]),
            strict=True,
        ):
            result = _compare(rc, rt, "fixed")
            assert result.absolute is not None
            detected.append(result.significant and result.absolute > 0)
            covered.append(_covers(result.absolute_ci, true_t - true_c))
            covered_rel.append(_covers(result.relative_ci, true_t / true_c - 1))
    return Power(needed, np.array(detected), np.array(covered), np.array(covered_rel))


def _within(rate: float, band: tuple[float, float]) -> bool:
    return band[0] <= rate <= band[1]


@pytest.mark.parametrize("metric", ["search_ctr", "mrr"])
def test_aa_false_positive_rate_is_nominal(aa: AA, metric: str) -> None:
    rate = float((aa.p_values[metric] < ALPHA).mean())
    assert _within(rate, FPR_BAND), f"{metric}: A/A false positive rate {rate:.3f}"


@pytest.mark.parametrize("metric", ["search_ctr", "mrr"])
def test_aa_p_values_are_uniform(aa: AA, metric: str) -> None:
    assert kstest(aa.p_values[metric], "uniform").pvalue > 0.01


@pytest.mark.parametrize("metric", ["search_ctr", "mrr"])
def test_aa_intervals_cover_the_true_difference(aa: AA, metric: str) -> None:
    assert _within(float(aa.covered[metric].mean()), COVERAGE_BAND)
    assert _within(float(aa.covered_relative[metric].mean()), COVERAGE_BAND)


def test_sequential_keeps_its_error_rate_under_daily_peeking(aa: AA) -> None:
    sequential = {m: float(v.mean()) for m, v in aa.sequential_any.items()}
    peeking = float(aa.fixed_any.mean())
    print(
        f"\nA/A, {LOOKS} looks, search CTR: fixed test at every look {peeking:.3f}, "
        f"sequential {sequential['search_ctr']:.3f} (MRR {sequential['mrr']:.3f})"
    )
    assert all(rate <= ALPHA + MC_ERROR for rate in sequential.values()), sequential
    assert peeking > 2 * ALPHA  # the inflation that sequential testing exists to prevent
    assert peeking > sequential["search_ctr"] + 0.1


def test_searches_are_not_independent_users_are(aa: AA) -> None:
    naive = float(aa.naive.mean())
    user_level = float((aa.p_values["search_ctr"] < ALPHA).mean())
    print(
        f"\nA/A search CTR: per-search z-test {naive:.3f}, per-user delta method {user_level:.3f}"
    )
    assert naive > ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)
    assert _within(user_level, FPR_BAND)


def test_power_at_the_calculators_sample_size(power: Power) -> None:
    rate = float(power.detected.mean())
    print(f"\n{LIFT:.0%} lift, {power.users:,} users from the calculator: detected {rate:.3f}")
    assert _within(rate, POWER_BAND)
    assert _within(float(power.covered.mean()), COVERAGE_BAND)
    assert _within(float(power.covered_relative.mean()), COVERAGE_BAND)


def test_print_calibration_table(aa: AA, power: Power) -> None:
    def rate(values: Bools) -> str:
        return f"{values.mean():.3f}"

    rows = [
        ("A/A false positive rate, fixed, search CTR", rate(aa.p_values["search_ctr"] < ALPHA), "0.032-0.068"),
        ("A/A false positive rate, fixed, MRR", rate(aa.p_values["mrr"] < ALPHA), "0.032-0.068"),
        ("A/A KS uniformity p-value, search CTR", f"{kstest(aa.p_values['search_ctr'], 'uniform').pvalue:.3f}", "> 0.01"),
        ("A/A KS uniformity p-value, MRR", f"{kstest(aa.p_values['mrr'], 'uniform').pvalue:.3f}", "> 0.01"),
        ("A/A 95% CI coverage, search CTR (absolute / relative)", f"{rate(aa.covered['search_ctr'])} / {rate(aa.covered_relative['search_ctr'])}", "0.932-0.968"),
        ("A/A 95% CI coverage, MRR (absolute / relative)", f"{rate(aa.covered['mrr'])} / {rate(aa.covered_relative['mrr'])}", "0.932-0.968"),
        (f"A/A fixed test read at {LOOKS} looks, search CTR", rate(aa.fixed_any), "inflated (> 0.10)"),
        (f"A/A sequential test read at {LOOKS} looks, search CTR", rate(aa.sequential_any["search_ctr"]), f"<= {ALPHA + MC_ERROR:.3f}"),
        (f"A/A sequential test read at {LOOKS} looks, MRR", rate(aa.sequential_any["mrr"]), f"<= {ALPHA + MC_ERROR:.3f}"),
        ("A/A sequential test, final look only, search CTR", rate(aa.sequential_last), "<= 0.05"),
        ("A/A naive per-search z-test, search CTR", rate(aa.naive), f"> {ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS):.3f} (shown wrong)"),
        (f"Power, +{LIFT:.0%} search CTR at the calculator's {power.users:,} users", rate(power.detected), "0.75-0.85"),
        ("Coverage of the true effect in those runs (absolute / relative)", f"{rate(power.covered)} / {rate(power.covered_relative)}", "0.932-0.968"),
    ]  # fmt: skip
    print(f"\n\n{RUNS:,} simulated experiments per row, {USERS_PER_ARM:,} users per arm (A/A)")
    print(f"outlier rule on (z = {DEFAULT_OUTLIER_Z}): {aa.excluded:,} users left out in all\n")
    print("| check | result | required |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")
