"""Simulated shoppers: a favourite category and brand, a price band, and how much they search,
click and buy: users differ in all of these, as real ones do (docs/SEARCH.md, "Calibration").

- Activity: how often a user searches, lognormal with mean 1 (sigma ACTIVITY_SIGMA): a few
  heavy users and many light ones, as in real traffic. From one period to the next it drifts
  (`period_activity`: times a lognormal of mean 1, sigma ACTIVITY_DRIFT).
- Click propensity: a factor on every click probability, Gamma with mean 1 (shape
  CLICK_PROPENSITY_SHAPE): some users click much more than others on the same results.
- Purchase propensity: a factor on the probability that a click leads to an add to cart, Gamma
  with mean 1 (shape PURCHASE_PROPENSITY_SHAPE): most users rarely buy, a few buy often.

`make_users(..., alike=True)` gives the users of the simulator before issue 14: the same
habits, activity lognormal with sigma ALIKE_ACTIVITY_SIGMA, and propensities of 1 (for a test
that needs a small A/B test to be decisive, and to show what heterogeneity costs an A/B test:
docs/INTERLEAVING.md).
- Queries: a user picks query q of the catalog's vocabulary with probability proportional to
  `q.popularity * CATEGORY_AFFINITY [q in the favourite category]
  * BRAND_AFFINITY [q names the favourite brand]`.
- Price band: a user buys in one third of each category's prices (budget, mid, premium).
  A result outside it is less attractive: the click model's `scale` is OFF_BAND_SCALE for it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clickstats.search.catalog import ACCESSORIES, Catalog

ACTIVITY_SIGMA = 1.25
ALIKE_ACTIVITY_SIGMA = 1.0
ACTIVITY_DRIFT = 0.5
CLICK_PROPENSITY_SHAPE = 2.0
PURCHASE_PROPENSITY_SHAPE = 1.0
CATEGORY_AFFINITY = 4.0
BRAND_AFFINITY = 4.0
OFF_BAND_SCALE = 0.6
PRICE_BANDS = ("budget", "mid", "premium")


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    category: str
    brand: str
    #: index into PRICE_BANDS
    price_band: int
    #: relative search rate (mean 1 over users)
    activity: float
    #: factor on the click model's probabilities (mean 1 over users)
    click_propensity: float = 1.0
    #: factor on the purchase model's add-to-cart probability (mean 1 over users)
    purchase_propensity: float = 1.0


@functools.cache
def price_bands(catalog: Catalog) -> npt.NDArray[np.int8]:
    """Each product's price band (0, 1, 2): its price's third within its own category."""
    out = np.zeros(len(catalog), dtype=np.int8)
    for code in np.unique(catalog.category_codes):
        members = np.flatnonzero(catalog.category_codes == code)
        cuts = np.quantile(catalog.prices[members], [1 / 3, 2 / 3])
        out[members] = np.searchsorted(cuts, catalog.prices[members], side="right")
    out.flags.writeable = False
    return out


def make_users(
    catalog: Catalog, n: int, rng: np.random.Generator, prefix: str = "sim", alike: bool = False
) -> list[User]:
    """`n` users with habits drawn from `rng` (ids `{prefix}-00001`, ...); `alike`: users who
    differ only in their habits (module docstring), with the same habits for the same draws."""
    categories = sorted({q.category for q in catalog.queries} - {ACCESSORIES})
    sellers: dict[str, list[str]] = {}
    for q in catalog.queries:
        if q.brand is not None:
            sellers.setdefault(q.category, []).append(q.brand)
    sigma = ALIKE_ACTIVITY_SIGMA if alike else ACTIVITY_SIGMA
    activity = rng.lognormal(-(sigma**2) / 2, sigma, size=n)
    habits = []
    for _ in range(n):
        category = categories[rng.integers(len(categories))]
        brands = sellers.get(category) or [""]
        habits.append(
            (category, brands[rng.integers(len(brands))], int(rng.integers(len(PRICE_BANDS))))
        )
    clicks = rng.gamma(CLICK_PROPENSITY_SHAPE, 1 / CLICK_PROPENSITY_SHAPE, size=n)
    purchases = rng.gamma(PURCHASE_PROPENSITY_SHAPE, 1 / PURCHASE_PROPENSITY_SHAPE, size=n)
    if alike:
        clicks, purchases = np.ones(n), np.ones(n)
    return [
        User(
            user_id=f"{prefix}-{i + 1:05d}",
            category=category,
            brand=brand,
            price_band=band,
            activity=float(activity[i]),
            click_propensity=float(clicks[i]),
            purchase_propensity=float(purchases[i]),
        )
        for i, (category, brand, band) in enumerate(habits)
    ]


def period_activity(
    users: Sequence[User], rng: np.random.Generator, drift: float = ACTIVITY_DRIFT
) -> npt.NDArray[np.float64]:
    """The users' search rates over one period (e.g. a week): their activity, drifted."""
    activity = np.array([u.activity for u in users])
    factor = rng.lognormal(-(drift**2) / 2, drift, size=activity.size)
    rates: npt.NDArray[np.float64] = activity * factor
    return rates


def query_probabilities(catalog: Catalog, user: User) -> npt.NDArray[np.float64]:
    """P(user searches catalog.queries[i]), for every i."""
    weights = _query_weights(catalog, user.category, user.brand)
    probabilities: npt.NDArray[np.float64] = weights / weights.sum()
    return probabilities


@functools.cache
def query_cdf(catalog: Catalog, category: str, brand: str) -> npt.NDArray[np.float64]:
    """The cumulative query_probabilities of a user with these habits (cached, read-only)."""
    weights = _query_weights(catalog, category, brand)
    cdf: npt.NDArray[np.float64] = np.cumsum(weights) / weights.sum()
    cdf.flags.writeable = False
    return cdf


def _query_weights(catalog: Catalog, category: str, brand: str) -> npt.NDArray[np.float64]:
    return np.array(
        [
            q.popularity
            * (CATEGORY_AFFINITY if q.category == category else 1.0)
            * (BRAND_AFFINITY if q.brand is not None and q.brand == brand else 1.0)
            for q in catalog.queries
        ]
    )


def click_scale(catalog: Catalog, user: User, indices: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The click model's `scale` for these products (catalog indices) and this user: their
    click propensity, times OFF_BAND_SCALE for a product outside their price band."""
    scale: npt.NDArray[np.float64] = click_scales(catalog, [user], np.asarray(indices)[None])[0]
    return scale


def click_scales(
    catalog: Catalog, users: Sequence[User], indices: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """`click_scale` of many result lists at once: row i, of shape (ranks,), is users[i]'s."""
    bands = price_bands(catalog)[np.asarray(indices, dtype=np.intp)]
    band = np.array([u.price_band for u in users])[:, None]
    propensity = np.array([u.click_propensity for u in users])[:, None]
    scale: npt.NDArray[np.float64] = propensity * np.where(bands == band, 1.0, OFF_BAND_SCALE)
    return scale
