"""Revenue per user, capped and CUPED-adjusted, calibrated by seeded simulation.

Prints the tables of docs/STATISTICS.md, "Revenue: capping and CUPED": the A/A false-positive
rate and the coverage of the 95% interval with capping (p99) and CUPED each on and off, the
interval width CUPED saves, and the largest difference from gbstats on the same summaries.

    .venv/bin/python scripts/calibrate_revenue.py             # 2,000 experiments per check
    .venv/bin/python scripts/calibrate_revenue.py --runs 200  # a quick look

The users are tests/stats/revenue_sim.py's (heavy-tailed: most users buy nothing, lognormal
order values); each run is passed to `clickstats.stats.compare.compare` as `analyze` does,
capped by `clickstats.stats.capping.cap_values` as the store caps (p99 of the non-zero per-user
values, both arms pooled).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.stats.revenue_sim

from clickstats.stats.capping import Cap, cap_values
from clickstats.stats.compare import Comparison, Method, compare
from clickstats.stats.summary import RatioSummary
from tests.stats import revenue_sim

ALPHA = 0.05
LIFT = 0.10  # the treatment's order rate, x 1.10
FPR_BAND = (0.032, 0.068)
COVERAGE_BAND = (0.932, 0.968)
CAPS: dict[str, Cap | None] = {"off": None, "p99": revenue_sim.P99}
CHUNK = 100  # runs drawn at once


@dataclass
class Tally:
    """Per (capping, CUPED): how often the test rejected and the interval held the truth."""

    significant: int = 0
    covered: int = 0
    widths: list[float] = field(default_factory=list)
    relative_widths: list[float] = field(default_factory=list)

    def add(self, c: Comparison, truth: float) -> None:
        assert c.absolute_ci is not None and c.relative_ci is not None
        self.significant += c.significant
        self.covered += c.absolute_ci[0] <= truth <= c.absolute_ci[1]
        self.widths.append(c.absolute_ci[1] - c.absolute_ci[0])
        self.relative_widths.append(c.relative_ci[1] - c.relative_ci[0])


def _runs(
    rng: np.random.Generator, runs: int, users: int, lift: float
) -> Iterator[tuple[revenue_sim.Users, int]]:
    for start in range(0, runs, CHUNK):
        block = revenue_sim.draw(rng, min(CHUNK, runs - start), users, lift)
        for run in range(block.revenue.shape[0]):
            yield block, run


def capped_truth(rng: np.random.Generator, users: int, lift: float, cap: Cap | None) -> float:
    """The true difference of revenue per user: exact uncapped; capped, from one experiment of
    `users` users per arm capped at its pooled percentile (the population's, at that size)."""
    if cap is None:
        return revenue_sim.true_difference(lift)
    big = revenue_sim.draw(rng, 1, users, lift)
    capped = cap_values(big.revenue[0], cap).values
    return float(capped[users:].mean() - capped[:users].mean())


def simulate(
    rng: np.random.Generator, runs: int, users: int, lift: float, truths: dict[str, float]
) -> dict[tuple[str, bool], Tally]:
    tallies = {(cap, cuped): Tally() for cap in CAPS for cuped in (False, True)}
    for block, run in _runs(rng, runs, users, lift):
        for (cap, cuped), tally in tallies.items():
            control, treatment, _ = revenue_sim.arms(block, run, cap=CAPS[cap], cuped=cuped)
            tally.add(compare(control, treatment, alpha=ALPHA, method="fixed"), truths[cap])
    return tallies


def correlation(rng: np.random.Generator, users: int) -> dict[str, float]:
    """Pooled correlation of the window's and the pre-exposure window's revenue per user."""
    u = revenue_sim.draw(rng, 1, users)
    out = {}
    for name, cap in CAPS.items():
        revenue, pre = u.revenue[0], u.pre[0]
        if cap is not None:
            revenue, used = cap_values(revenue, cap)
            pre = np.minimum(pre, used)
        out[name] = float(np.corrcoef(revenue, pre)[0, 1])
    return out


def gbstats_difference(rng: np.random.Generator, runs: int, users: int) -> dict[str, float]:
    """Largest absolute difference from gbstats (CUPED: RegressionAdjustedStatistic in its
    absolute t-test and sequential test) over `runs` experiments with a lift, capped and not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gbstats.frequentist.tests import (  # type: ignore[import-untyped]
            FrequentistConfig,
            SequentialConfig,
            SequentialTwoSidedTTest,
            TwoSidedTTest,
        )
        from gbstats.models.statistics import (  # type: ignore[import-untyped]
            RegressionAdjustedStatistic,
            SampleMeanStatistic,
        )

    def statistic(s: RatioSummary) -> object:
        assert s.pre is not None
        return RegressionAdjustedStatistic(
            n=s.users,
            post_statistic=SampleMeanStatistic(n=s.users, sum=s.sum_x, sum_squares=s.sum_x2),
            pre_statistic=SampleMeanStatistic(
                n=s.users, sum=s.pre.sum_pre, sum_squares=s.pre.sum_pre2
            ),
            post_pre_sum_of_products=s.pre.sum_x_pre,
            theta=0,
        )

    worst = {"estimate": 0.0, "standard error": 0.0, "interval": 0.0, "p-value": 0.0}
    methods: dict[Method, object] = {
        "fixed": lambda a, b: TwoSidedTTest(
            statistic(a), statistic(b), FrequentistConfig(alpha=ALPHA, difference_type="absolute")
        ),
        "sequential": lambda a, b: SequentialTwoSidedTTest(
            statistic(a),
            statistic(b),
            SequentialConfig(
                alpha=ALPHA, sequential_tuning_parameter=5000, difference_type="absolute"
            ),
        ),
    }
    for block, run in _runs(rng, runs, users, LIFT):
        for cap in CAPS.values():
            a, b, _ = revenue_sim.arms(block, run, cap=cap, cuped=True)
            for method, test in methods.items():
                ours = compare(a, b, alpha=ALPHA, method=method)
                theirs = test(a, b).compute_result()  # type: ignore[operator]
                assert ours.cuped is not None and ours.cuped.applied
                assert ours.absolute is not None and ours.absolute_se is not None
                assert ours.absolute_ci is not None and ours.p_value is not None
                differences = {
                    "estimate": abs(ours.absolute - theirs.expected),
                    "standard error": abs(ours.absolute_se - theirs.uplift.stddev),
                    "interval": max(
                        abs(ours.absolute_ci[0] - theirs.ci[0]),
                        abs(ours.absolute_ci[1] - theirs.ci[1]),
                    ),
                    "p-value": abs(ours.p_value - theirs.p_value),
                }
                for name, difference in differences.items():
                    worst[name] = max(worst[name], float(difference))
    return worst


def _band(value: float, band: tuple[float, float]) -> str:
    return "yes" if band[0] <= value <= band[1] else "**no**"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="experiments per check")
    parser.add_argument("--users", type=int, default=5000, help="users per arm")
    parser.add_argument("--gbstats-runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20260614)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    runs, users = args.runs, args.users

    rho = correlation(rng, 200_000)
    truths_aa = {name: 0.0 for name in CAPS}
    truths = {name: capped_truth(rng, 2_000_000, LIFT, cap) for name, cap in CAPS.items()}
    aa = simulate(rng, runs, users, 0.0, truths_aa)
    lift = simulate(rng, runs, users, LIFT, truths)
    worst = gbstats_difference(rng, args.gbstats_runs, users)

    print(
        f"{runs:,} experiments per row, {users:,} users per arm, fixed-horizon test at "
        f"alpha = {ALPHA}; seed {args.seed}. Pre/post correlation of revenue per user: "
        f"{rho['off']:.2f} uncapped, {rho['p99']:.2f} capped at p99.\n"
    )
    print("| check | capping | CUPED | result | required | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (cap, cuped), tally in aa.items():
        rate = tally.significant / runs
        print(
            f"| A/A false-positive rate | {cap} | {'on' if cuped else 'off'} | {rate:.3f} | "
            f"{FPR_BAND[0]}-{FPR_BAND[1]} | {_band(rate, FPR_BAND)} |"
        )
    for (cap, cuped), tally in lift.items():
        rate = tally.covered / runs
        print(
            f"| coverage of the true difference, +{LIFT:.0%} orders | {cap} | "
            f"{'on' if cuped else 'off'} | {rate:.3f} | {COVERAGE_BAND[0]}-{COVERAGE_BAND[1]} | "
            f"{_band(rate, COVERAGE_BAND)} |"
        )

    print(
        "\n| capping | mean 95% CI width, without CUPED | with CUPED | ratio | "
        "relative to the control's mean, without / with | "
        f"power at +{LIFT:.0%}, without / with |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for cap in CAPS:
        raw, adjusted = lift[cap, False], lift[cap, True]
        w_raw, w_adj = float(np.mean(raw.widths)), float(np.mean(adjusted.widths))
        r_raw, r_adj = float(np.mean(raw.relative_widths)), float(np.mean(adjusted.relative_widths))
        print(
            f"| {cap} | {w_raw:.2f} | {w_adj:.2f} | {w_adj / w_raw:.3f} | "
            f"{r_raw:.1%} / {r_adj:.1%} | "
            f"{raw.significant / runs:.3f} / {adjusted.significant / runs:.3f} |"
        )
    truth_line = ", ".join(f"{cap} {value:.4f}" for cap, value in truths.items())
    print(f"\nTrue difference per user at +{LIFT:.0%}: {truth_line}.")

    print(
        f"\nAgreement with gbstats (CUPED on, capped and uncapped, fixed and sequential), "
        f"{args.gbstats_runs:,} experiments: largest absolute difference"
    )
    print("\n| quantity | largest difference | required |")
    print("| --- | --- | --- |")
    for name, value in worst.items():
        print(f"| {name} | {value:.1e} | <= 1e-6 |")
    if math.isfinite(max(worst.values())) and max(worst.values()) > 1e-6:
        raise SystemExit("gbstats disagrees by more than 1e-6")


if __name__ == "__main__":
    main()
