"""What a store hands the statistics: per-variant sufficient statistics of per-user sums.

Every experiment metric is a ratio of two per-user sums, `x` over `y` (a plain per-user mean is
a ratio with y = 1 for every user). A store reduces its events to, for each variant and metric,
the number of users and the sums of x, y, x^2, y^2 and x*y over those users: five numbers that
are enough for the ratio, its delta-method variance and every test in this package, whatever
the size of the data. The registry (`clickstats.metrics.METRICS`) says what x and y are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clickstats.metrics import METRICS, Metric
from clickstats.stats.outliers import OutlierRule

#: A metric's meaning, from the registry (clickstats.metrics).
MetricSpec = Metric
__all__ = [
    "METRICS",
    "ExperimentSummary",
    "MetricSpec",
    "PreSummary",
    "RatioSummary",
    "VariantSummary",
]


@dataclass(frozen=True, slots=True)
class PreSummary:
    """CUPED's covariate over the users of one variant: each user's value of the same x over a
    pre-exposure window (0 for users without history). `users_with_history` counts the users
    who had any; `sum_x_pre` is the sum over users of x times the pre-exposure value."""

    users_with_history: int
    sum_pre: float
    sum_pre2: float
    sum_x_pre: float


@dataclass(frozen=True, slots=True)
class RatioSummary:
    """Sums over the users of one variant of per-user x and y (see `METRICS`).

    `users` counts every user of the variant, including those whose x and y are both 0: the
    metric is sum_x / sum_y, and the users are the independent units its variance is taken over.
    """

    users: int
    sum_x: float
    sum_y: float
    sum_x2: float
    sum_y2: float
    sum_xy: float
    #: CUPED's covariate of x, when the analysis asked for one
    pre: PreSummary | None = None
    #: the cap applied to each user's x before it was summed, when capped
    cap: float | None = None

    @classmethod
    def from_values(cls, x: Iterable[float], y: Iterable[float] | None = None) -> RatioSummary:
        """The summary of per-user values (y = 1 per user when omitted: a plain mean)."""
        xs = [float(v) for v in x]
        ys = [1.0] * len(xs) if y is None else [float(v) for v in y]
        if len(xs) != len(ys):
            raise ValueError(f"x has {len(xs)} users but y has {len(ys)}; give one pair per user")
        return cls(
            users=len(xs),
            sum_x=math.fsum(xs),
            sum_y=math.fsum(ys),
            sum_x2=math.fsum(v * v for v in xs),
            sum_y2=math.fsum(v * v for v in ys),
            sum_xy=math.fsum(a * b for a, b in zip(xs, ys, strict=True)),
        )

    @property
    def mean_x(self) -> float | None:
        return self.sum_x / self.users if self.users else None

    @property
    def mean_y(self) -> float | None:
        return self.sum_y / self.users if self.users else None

    @property
    def ratio(self) -> float | None:
        """The metric: sum_x / sum_y, or None when the denominator is 0."""
        return self.sum_x / self.sum_y if self.sum_y else None

    @property
    def var_x(self) -> float | None:
        """Sample variance (n - 1) of per-user x; None below 2 users."""
        value = self._covariance(self.sum_x2, self.sum_x, self.sum_x)
        return None if value is None else max(value, 0.0)  # rounding can dip below 0

    @property
    def var_y(self) -> float | None:
        value = self._covariance(self.sum_y2, self.sum_y, self.sum_y)
        return None if value is None else max(value, 0.0)

    @property
    def cov_xy(self) -> float | None:
        return self._covariance(self.sum_xy, self.sum_x, self.sum_y)

    def _covariance(self, sum_ab: float, sum_a: float, sum_b: float) -> float | None:
        n = self.users
        return (sum_ab - sum_a * sum_b / n) / (n - 1) if n >= 2 else None


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One variant: its users and one `RatioSummary` per metric name (see `METRICS`)."""

    name: str
    users: int
    metrics: Mapping[str, RatioSummary]


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    """All variants of one experiment, with the weights the experiment was configured with.

    The control is `control`, or the first variant when it is None (as in `Experiment`).
    `outliers` says which users the store left out of `variants` (see `stats.outliers`).
    """

    variants: tuple[VariantSummary, ...]
    weights: Mapping[str, float]
    control: str | None = None
    experiment: str = ""
    outliers: OutlierRule | None = None  # users left out before these sums were taken

    @property
    def control_name(self) -> str | None:
        if self.control is not None:
            return self.control
        return self.variants[0].name if self.variants else None

    def variant(self, name: str) -> VariantSummary | None:
        return next((v for v in self.variants if v.name == name), None)
