"""Outlier users: activity no person produces (a bot, a crawler, a load test, a shared account).

One such user can hold a large share of an arm's searches and flip a verdict. The rule is
robust and blind to the arms: over every user of the experiment in the window, on the log of
searches per user (activity is roughly log-normal across people),

    log T = median + z * max(1.4826 * MAD, MIN_SCALE)

and users with more than T searches are left out of the analysis (their assignment still counts
for the sample ratio check). MAD is the median absolute deviation, 1.4826 MAD the robust
standard deviation; MIN_SCALE (1, a factor of e) keeps T far from the median when users are
alike. With the default z = 3.5 (the usual cut for robust z-scores) T is at least 33 times the
median user's searches. z = 0 turns the rule off. The store hands over only a histogram
(searches -> users), so this is exact and costs nothing at any size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

DEFAULT_OUTLIER_Z = 3.5
MIN_SCALE = 1.0
_MAD_TO_SD = 1 / NormalDist().inv_cdf(0.75)  # 1.4826: MAD -> SD for normal data


@dataclass(frozen=True, slots=True)
class OutlierRule:
    """What the rule did: `max_searches` is T (None when the rule is off or there is no data),
    `excluded` the users left out per variant."""

    z: float
    max_searches: int | None = None
    excluded: Mapping[str, int] = field(default_factory=dict)

    @property
    def total_excluded(self) -> int:
        return sum(self.excluded.values())


def _weighted_median(pairs: Iterable[tuple[float, int]]) -> float:
    """The median of values given with their counts (the mean of the two middle ones)."""
    items = sorted(pairs)
    total = sum(n for _, n in items)
    if total == 0:
        raise ValueError("no values")
    lower_rank, upper_rank = (total - 1) // 2, total // 2  # 0-based ranks of the middle
    seen, lower, upper = 0, math.nan, math.nan
    for value, n in items:
        if seen <= lower_rank < seen + n:
            lower = value
        if seen <= upper_rank < seen + n:
            upper = value
            break
        seen += n
    return (lower + upper) / 2


def max_searches(histogram: Mapping[int, int], z: float = DEFAULT_OUTLIER_Z) -> int | None:
    """T for a pooled histogram {searches per user: users}; None when z is 0 or nobody searched."""
    if z < 0 or not math.isfinite(z):
        raise ValueError(f"the outlier z must be a finite number >= 0, got {z}")
    logs = [(math.log(s), n) for s, n in histogram.items() if s > 0 and n > 0]
    if z == 0 or not logs:
        return None
    center = _weighted_median(logs)
    mad = _weighted_median((abs(v - center), n) for v, n in logs)
    scale = max(_MAD_TO_SD * mad, MIN_SCALE)
    return math.floor(math.exp(center + z * scale))


def apply(histograms: Mapping[str, Mapping[int, int]], z: float = DEFAULT_OUTLIER_Z) -> OutlierRule:
    """The rule over every variant's histogram: T and how many users each variant loses."""
    pooled: dict[int, int] = {}
    for histogram in histograms.values():
        for searches, users in histogram.items():
            pooled[searches] = pooled.get(searches, 0) + users
    threshold = max_searches(pooled, z)
    excluded = {
        name: 0 if threshold is None else sum(n for s, n in h.items() if s > threshold)
        for name, h in histograms.items()
    }
    return OutlierRule(z=z, max_searches=threshold, excluded=excluded)
