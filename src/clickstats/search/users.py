"""Simulated shoppers: each has a favourite category and brand, a price band and an activity.

- Activity: how often a user searches, lognormal with mean 1 (sigma ACTIVITY_SIGMA): a few
  heavy users and many light ones, as in real traffic.
- Queries: a user picks query q of the catalog's vocabulary with probability proportional to
  `q.popularity * CATEGORY_AFFINITY [q in the favourite category]
  * BRAND_AFFINITY [q names the favourite brand]`.
- Price band: a user buys in one third of each category's prices (budget, mid, premium).
  A result outside it is less attractive: the click model's `scale` is OFF_BAND_SCALE for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clickstats.search.catalog import ACCESSORIES, Catalog

ACTIVITY_SIGMA = 1.0
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
    catalog: Catalog, n: int, rng: np.random.Generator, prefix: str = "sim"
) -> list[User]:
    """`n` users with habits drawn from `rng` (ids `{prefix}-00001`, ...)."""
    categories = sorted({q.category for q in catalog.queries} - {ACCESSORIES})
    sellers: dict[str, list[str]] = {}
    for q in catalog.queries:
        if q.brand is not None:
            sellers.setdefault(q.category, []).append(q.brand)
    activity = rng.lognormal(-(ACTIVITY_SIGMA**2) / 2, ACTIVITY_SIGMA, size=n)
    users = []
    for i in range(n):
        category = categories[rng.integers(len(categories))]
        brands = sellers.get(category) or [""]
        users.append(
            User(
                user_id=f"{prefix}-{i + 1:05d}",
                category=category,
                brand=brands[rng.integers(len(brands))],
                price_band=int(rng.integers(len(PRICE_BANDS))),
                activity=float(activity[i]),
            )
        )
    return users


def query_probabilities(catalog: Catalog, user: User) -> npt.NDArray[np.float64]:
    """P(user searches catalog.queries[i]), for every i."""
    weights = np.array(
        [
            q.popularity
            * (CATEGORY_AFFINITY if q.category == user.category else 1.0)
            * (BRAND_AFFINITY if q.brand is not None and q.brand == user.brand else 1.0)
            for q in catalog.queries
        ]
    )
    probabilities: npt.NDArray[np.float64] = weights / weights.sum()
    return probabilities


def click_scale(catalog: Catalog, user: User, indices: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The click model's `scale` for these products (catalog indices) and this user."""
    bands = price_bands(catalog)[np.asarray(indices, dtype=np.intp)]
    return np.where(bands == user.price_band, 1.0, OFF_BAND_SCALE)
