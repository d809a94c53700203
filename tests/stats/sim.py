"""Seeded, vectorised simulation of search users, reduced to the summaries a store produces.

Users are heterogeneous on purpose: each has their own click propensity (Beta) and a
heavy-tailed number of searches (1 + a rounded-up lognormal), so a user's searches are
correlated, which is what makes search-level tests wrong and user-level tests right. Every
array is (runs, users): all simulated experiments are drawn at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from clickstats.stats import outliers
from clickstats.stats.summary import RatioSummary

Array = NDArray[np.float64]
CTR_BETA = (2.0, 5.0)  # per-user click propensity: mean 2/7
TOP_RANK_BETA = (4.0, 3.0)  # per-user chance that a clicked search's first click is on top
MAX_RANK = 10


@dataclass(frozen=True)
class Users:
    """Per-user sums: searches, searches with a click, sum of 1/rank of the first click."""

    searches: Array
    clicked: Array
    reciprocal_ranks: Array | None = None


def draw_users(
    rng: np.random.Generator, runs: int, users: int, lift: float = 1.0, ranks: bool = True
) -> Users:
    shape = (runs, users)
    searches = np.ceil(rng.lognormal(mean=1.0, sigma=1.0, size=shape))
    propensity = np.minimum(rng.beta(*CTR_BETA, size=shape) * lift, 1.0)
    clicked = rng.binomial(searches.astype(np.int64), propensity).astype(np.float64)
    if not ranks:
        return Users(searches, clicked)
    top = rng.beta(*TOP_RANK_BETA, size=shape).ravel()
    per_user = clicked.ravel().astype(np.int64)
    owner = np.repeat(np.arange(per_user.size), per_user)
    rank = np.minimum(rng.geometric(top[owner]), MAX_RANK)
    rr = np.bincount(owner, weights=1.0 / rank, minlength=per_user.size).astype(np.float64)
    return Users(searches, clicked, rr.reshape(shape))


def sums(x: Array, y: Array) -> Array:
    """The sufficient statistics over the last axis: (..., 6) = n, Σx, Σy, Σx², Σy², Σxy."""
    n = np.full(x.shape[:-1], x.shape[-1], dtype=np.float64)
    return np.stack(
        [n, x.sum(-1), y.sum(-1), (x * x).sum(-1), (y * y).sum(-1), (x * y).sum(-1)], axis=-1
    )


def look_sums(x: Array, y: Array, looks: int) -> Array:
    """Sums at each of `looks` evenly spaced interim looks: (runs, looks, 6), cumulative."""
    runs, users = x.shape
    block = users // looks
    xb = x[:, : block * looks].reshape(runs, looks, block)
    yb = y[:, : block * looks].reshape(runs, looks, block)
    return np.cumsum(sums(xb, yb), axis=1)


def summary(row: Array) -> RatioSummary:
    n, sx, sy, sx2, sy2, sxy = (float(v) for v in row)
    return RatioSummary(int(n), sx, sy, sx2, sy2, sxy)


def kept(searches: Array, z: float) -> NDArray[np.bool_]:
    """Per run, the users the outlier rule keeps (`clickstats.stats.outliers`, the service's own
    function, on each run's pooled histogram of searches per user)."""
    mask = np.ones(searches.shape, dtype=bool)
    for run, row in enumerate(searches):
        values, counts = np.unique(row.astype(np.int64), return_counts=True)
        threshold = outliers.max_searches(
            dict(zip(values.tolist(), counts.tolist(), strict=True)), z
        )
        if threshold is not None:
            mask[run] = row <= threshold
    return mask


def masked_sums(x: Array, y: Array, mask: NDArray[np.bool_]) -> Array:
    """`sums` over the users `mask` keeps: (..., 6)."""
    m = mask.astype(np.float64)
    xm, ym = x * m, y * m
    return np.stack(
        [m.sum(-1), xm.sum(-1), ym.sum(-1), (xm * x).sum(-1), (ym * y).sum(-1), (xm * y).sum(-1)],
        axis=-1,
    )
