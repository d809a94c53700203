"""What a click leads to: an add to cart, then a purchase, more likely for a relevant product
and less likely for an expensive one.

After a click on a product with ground-truth grade g and price p, by a user whose purchase
propensity is u (clickstats.search.users):

    P(add to cart | click)    = cart_max * relevance(g) * (p / reference_price) ** -cart_elasticity * u
    P(purchase | add to cart) = buy_max * (1 + relevance(g)) / 2 * (p / reference_price) ** -buy_elasticity
    relevance(g)              = floor + (1 - floor) * (2**g - 1) / (2**3 - 1)

both clipped to [0, 1]; an empty slot (g < 0) is never bought. A product put in the cart comes
in 1 + Geometric units: one more with probability `extra_unit`, again and again. The defaults
are calibrated to published e-commerce rates (docs/SEARCH.md, "Calibration").

Like the click model, every function takes arrays of any leading shape (..., ranks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clickstats.search.catalog import MAX_GRADE

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Basket:
    """What the clicks of some rankings led to, slot by slot (the shape of the grades)."""

    carted: BoolArray
    bought: BoolArray
    #: units of each carted product (bought in the same number); 0 where nothing was carted
    quantities: IntArray


@dataclass(frozen=True, slots=True)
class PurchaseModel:
    """The parameters of the formulas above; the defaults are the ones docs/SEARCH.md states."""

    cart_max: float = 0.23
    buy_max: float = 0.33
    floor: float = 0.1
    reference_price: float = 50.0
    cart_elasticity: float = 0.3
    buy_elasticity: float = 0.15
    extra_unit: float = 0.15

    def __post_init__(self) -> None:
        for name in ("cart_max", "buy_max", "floor"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.reference_price <= 0:
            raise ValueError(f"reference_price must be > 0, got {self.reference_price}")
        if not 0 <= self.extra_unit < 1:
            raise ValueError(f"extra_unit must be in [0, 1), got {self.extra_unit}")

    def relevance(self, grades: npt.ArrayLike) -> FloatArray:
        """relevance(g) by grade; 0 for an empty slot (< 0)."""
        g = np.asarray(grades)
        if np.issubdtype(g.dtype, np.integer):  # a table lookup: simulations pass millions
            table = self.relevance(np.arange(-1, MAX_GRADE + 1, dtype=np.float64))
            looked_up: FloatArray = table[np.clip(g, -1, MAX_GRADE) + 1]
            return looked_up
        g = g.astype(np.float64)
        gain = (2.0 ** np.clip(g, 0, MAX_GRADE) - 1) / (2.0**MAX_GRADE - 1)
        return np.where(g < 0, 0.0, self.floor + (1 - self.floor) * gain)

    def cart_probabilities(
        self, grades: npt.ArrayLike, prices: npt.ArrayLike, propensity: npt.ArrayLike = 1.0
    ) -> FloatArray:
        """P(add to cart | click) for every slot; `propensity` broadcasts (e.g. shape (..., 1))."""
        price = self._price_ratio(prices)
        p = self.cart_max * self.relevance(grades) * price**-self.cart_elasticity
        return np.clip(p * np.asarray(propensity, dtype=np.float64), 0.0, 1.0)

    def buy_probabilities(self, grades: npt.ArrayLike, prices: npt.ArrayLike) -> FloatArray:
        """P(purchase | add to cart) for every slot."""
        relevance = self.relevance(grades)
        price = self._price_ratio(prices)
        p = self.buy_max * (1 + relevance) / 2 * price**-self.buy_elasticity
        return np.where(relevance > 0, np.clip(p, 0.0, 1.0), 0.0)

    def sample(
        self,
        clicked: npt.ArrayLike,
        grades: npt.ArrayLike,
        prices: npt.ArrayLike,
        rng: np.random.Generator,
        propensity: npt.ArrayLike = 1.0,
    ) -> Basket:
        """Which clicked slots are carted, which of those bought, and how many units (drawn
        for the clicked slots only: a simulation has far more slots than clicks)."""
        click = np.asarray(clicked, dtype=bool)
        at = np.nonzero(click)
        grade = np.asarray(grades)[at]
        price = np.broadcast_to(np.asarray(prices, dtype=np.float64), click.shape)[at]
        lean = np.broadcast_to(np.asarray(propensity, dtype=np.float64), click.shape)[at]
        cart = rng.random(grade.shape) < self.cart_probabilities(grade, price, lean)
        buy = cart & (rng.random(grade.shape) < self.buy_probabilities(grade, price))
        units = np.where(cart, rng.geometric(1 - self.extra_unit, size=grade.shape), 0)
        carted, bought = np.zeros_like(click), np.zeros_like(click)
        quantities = np.zeros(click.shape, dtype=np.int64)
        carted[at], bought[at], quantities[at] = cart, buy, units
        return Basket(carted, bought, quantities)

    def _price_ratio(self, prices: npt.ArrayLike) -> FloatArray:
        # An empty slot's price (0) must not make a probability infinite.
        ratio: FloatArray = np.maximum(np.asarray(prices, dtype=np.float64), 0.01)
        return ratio / self.reference_price


DEFAULT_PURCHASE_MODEL = PurchaseModel()
