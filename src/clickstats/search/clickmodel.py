"""A position-based click model (PBM) on graded relevance: who clicks what, given a ranking.

A result at rank r (1-based) with ground-truth grade g is clicked with probability

    P(click) = examination(r) * attractiveness(g) * scale
    examination(r)    = r ** -eta
    attractiveness(g) = epsilon + (alpha_max - epsilon) * (2**g - 1) / (2**3 - 1)

independently of the other results (so a search may get several clicks, or none). `scale`
(default 1) is the user's own taste for that product, e.g. its price band (see
clickstats.search.users). Grades below 0 are empty slots: never clicked. With the defaults
(eta=1, epsilon=0.02, alpha_max=0.5) attractiveness is 0.02, 0.089, 0.226, 0.5 for grades 0-3,
and examination 1, 1/2, 1/3, ... by rank.

Every function takes arrays of any leading shape (..., ranks): one ranking, or a whole
simulation of many rankings at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clickstats.search.catalog import MAX_GRADE

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ClickModel:
    """PBM parameters; the defaults are the ones docs/SEARCH.md states."""

    eta: float = 1.0
    epsilon: float = 0.02
    alpha_max: float = 0.5

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if not 0 <= self.epsilon <= self.alpha_max <= 1:
            raise ValueError(
                f"need 0 <= epsilon <= alpha_max <= 1, got {self.epsilon}, {self.alpha_max}"
            )

    def examination(self, ranks: int) -> FloatArray:
        """P(a user looks at rank r), for r = 1..ranks."""
        return np.arange(1, ranks + 1, dtype=np.float64) ** -self.eta

    def attractiveness(self, grades: npt.ArrayLike) -> FloatArray:
        """P(a user who looks at a result clicks it), by grade; 0 for an empty slot (< 0)."""
        g = np.asarray(grades)
        if np.issubdtype(g.dtype, np.integer):  # a table lookup: simulations pass millions
            table = self.attractiveness(np.arange(-1, MAX_GRADE + 1, dtype=np.float64))
            looked_up: FloatArray = table[np.clip(g, -1, MAX_GRADE) + 1]
            return looked_up
        g = g.astype(np.float64)
        gain = (2.0 ** np.clip(g, 0, MAX_GRADE) - 1) / (2.0**MAX_GRADE - 1)
        alpha = self.epsilon + (self.alpha_max - self.epsilon) * gain
        return np.where(g < 0, 0.0, alpha)

    def click_probabilities(
        self, grades: npt.ArrayLike, scale: npt.ArrayLike | None = None
    ) -> FloatArray:
        """P(click) for every slot of every ranking: shape of `grades` (..., ranks)."""
        g = np.asarray(grades)
        p = self.examination(g.shape[-1]) * self.attractiveness(g)
        if scale is not None:
            p = p * np.asarray(scale, dtype=np.float64)
        return np.clip(p, 0.0, 1.0)

    def expected_clicks(
        self, grades: npt.ArrayLike, scale: npt.ArrayLike | None = None
    ) -> FloatArray:
        """Expected clicks per search (its CTR, as clickstats counts it): shape (...)."""
        expected: FloatArray = self.click_probabilities(grades, scale).sum(axis=-1)
        return expected

    def sample(
        self,
        grades: npt.ArrayLike,
        rng: np.random.Generator,
        scale: npt.ArrayLike | None = None,
    ) -> BoolArray:
        """Which slots are clicked: one draw per slot, shape of `grades`."""
        p = self.click_probabilities(grades, scale)
        clicked: BoolArray = rng.random(p.shape) < p
        return clicked


DEFAULT_CLICK_MODEL = ClickModel()
