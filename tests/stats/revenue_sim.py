"""Seeded simulation of revenue per user, with a pre-exposure period, reduced to summaries.

Heavy-tailed on purpose, as shop revenue is: most users buy nothing. Each user has an activity
level (lognormal, so a few users buy a lot) that sets their rate of orders, Poisson in the
window and, for users with history, in a pre-exposure window of the same length (the source of
CUPED's correlation); each order's value is lognormal around the user's own typical basket
(log-scale sigma SIGMA_USER between users, SIGMA_ORDER within a user: about 1.2 overall). A
treatment multiplies each user's order rate by 1 + lift, so the true difference in revenue per
user (uncapped) is known exactly (`true_difference`). Used by tests/stats/test_cuped.py,
tests/stats/test_capping.py and scripts/calibrate_revenue.py (which prints the tables of
docs/STATISTICS.md, "Revenue: capping and CUPED").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from clickstats.stats.capping import Cap, cap_values
from clickstats.stats.summary import PreSummary, RatioSummary

Array = NDArray[np.float64]

ORDERS_PER_USER = 0.5  # mean orders per user in the window (most users: none)
ACTIVITY_SIGMA = 1.5  # log-scale spread of users' order rates
HISTORY = 0.7  # share of users with a pre-exposure window (the rest: pre value 0)
BASKET_MU = 3.5  # log of the median order value (about 33 in the shop's currency)
SIGMA_USER = 0.8  # spread of users' typical order value (log scale)
SIGMA_ORDER = 0.9  # spread of one user's orders around it (log scale)
P99 = Cap(percentile=0.99)


@dataclass(frozen=True)
class Users:
    """Per-user revenue in the window and in the pre-exposure window (0 without history), for
    `runs` experiments of `users` users per arm: (runs, 2 * users), control first."""

    revenue: Array
    pre: Array
    history: NDArray[np.bool_]  # users with a pre-exposure window (searches before exposure)
    users: int


def _revenue(rng: np.random.Generator, rate: Array, basket: Array) -> Array:
    orders = rng.poisson(rate)
    owner = np.repeat(np.arange(orders.size), orders.ravel())
    values = rng.lognormal(basket.ravel()[owner], SIGMA_ORDER)
    return np.bincount(owner, weights=values, minlength=orders.size).reshape(orders.shape)


def draw(rng: np.random.Generator, runs: int, users: int, lift: float = 0.0) -> Users:
    """`runs` experiments of `users` users per arm; the treatment's order rates times 1 + lift."""
    shape = (runs, 2 * users)
    activity = rng.lognormal(-(ACTIVITY_SIGMA**2) / 2, ACTIVITY_SIGMA, shape)  # mean 1
    rate = ORDERS_PER_USER * activity
    basket = rng.normal(BASKET_MU, SIGMA_USER, shape)
    history = rng.random(shape) < HISTORY
    pre = _revenue(rng, rate * history, basket)
    rate[:, users:] *= 1 + lift
    return Users(_revenue(rng, rate, basket), pre, history, users)


def true_difference(lift: float) -> float:
    """E[treatment revenue per user] - E[control's], uncapped."""
    order_value = math.exp(BASKET_MU + (SIGMA_USER**2 + SIGMA_ORDER**2) / 2)
    return lift * ORDERS_PER_USER * order_value


def summary(
    revenue: Array, pre: Array | None = None, history: NDArray[np.bool_] | None = None
) -> RatioSummary:
    """One arm's summary of revenue per user (y = 1 per user), with CUPED's sums when `pre`."""
    s = RatioSummary(
        users=revenue.size,
        sum_x=float(revenue.sum()),
        sum_y=float(revenue.size),
        sum_x2=float((revenue * revenue).sum()),
        sum_y2=float(revenue.size),
        sum_xy=float(revenue.sum()),
    )
    if pre is None:
        return s
    covariate = PreSummary(
        users_with_history=int(np.count_nonzero(pre if history is None else history)),
        sum_pre=float(pre.sum()),
        sum_pre2=float((pre * pre).sum()),
        sum_x_pre=float((revenue * pre).sum()),
    )
    return dataclasses.replace(s, pre=covariate)


def arms(
    u: Users, run: int, *, cap: Cap | None = None, cuped: bool = False
) -> tuple[RatioSummary, RatioSummary, float | None]:
    """Control and treatment of one run as a store would sum them: capped over both arms'
    users pooled (`capping.cap_values`; the pre-exposure values at the same cap), with CUPED's
    sums when `cuped`; and the cap used."""
    revenue, pre, used = u.revenue[run], u.pre[run], None
    if cap is not None:
        revenue, used = cap_values(revenue, cap)
        pre = np.minimum(pre, used)
    n, history = u.users, u.history[run]
    if not cuped:
        control, treatment = summary(revenue[:n]), summary(revenue[n:])
    else:
        control = summary(revenue[:n], pre[:n], history[:n])
        treatment = summary(revenue[n:], pre[n:], history[n:])
    return dataclasses.replace(control, cap=used), dataclasses.replace(treatment, cap=used), used
