"""Capping (winsorizing) per-user values: how a cap is written, and the reference computation.

A heavy-tailed metric (revenue) is moved more by one large order than by a thousand searches.
Capping replaces each user's value above a cap by the cap before the sums are taken, trading a
little bias (the metric becomes the mean of min(x, cap)) for a much smaller variance. The cap is
an absolute number or a percentile of the non-zero per-user values of every user of the
analysis, all variants pooled, so that it is blind to the arms (GrowthBook's percentile capping
with "ignore zeros").

The store applies caps inside its aggregate (`store.base.Cap`, `SumOptions.caps`); this module
says how an experiment writes one ("p99", 250) and is the reference the store's answer is
tested against and the simulations use: the percentile with linear interpolation between the two
closest ranks (numpy's default, DuckDB's quantile_cont), and only the upper tail is capped.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, NamedTuple

from clickstats.store.base import Cap

if TYPE_CHECKING:  # numpy is loaded where values are capped, not at import (experiments.py)
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

__all__ = ["Cap", "Capped", "cap_value", "cap_values", "describe", "parse_cap", "spec"]

#: How an experiment writes a cap: an absolute number, or "p" and a percentile in (0, 100).
CapSpec = float | str
#: "p1" to "p99.99...": the percentiles a cap may be (the pattern the API's schema states).
PERCENTILE_PATTERN = r"^p([1-9][0-9]?(?:\.[0-9]+)?)$"
_PERCENTILE = re.compile(PERCENTILE_PATTERN)


def parse_cap(value: CapSpec) -> Cap:
    """`Cap` of "p99" (the 99th percentile), "p99.5", or a positive number (an absolute cap).

    Raises ValueError with a message that says what is accepted."""
    if isinstance(value, bool):  # a bool is an int to Python; true is no cap
        raise ValueError(f"must be a positive number or a percentile such as 'p99', not {value}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"an absolute cap must be a positive finite number, got {value}")
        return Cap(absolute=float(value))
    match = _PERCENTILE.match(value)
    percentile = float(match.group(1)) if match else 0.0
    if not 0 < percentile < 100:
        raise ValueError(
            f"must be a percentile such as 'p99' (above p0, below p100) or a positive number, "
            f"got {value!r}"
        )
    return Cap(percentile=percentile / 100)


def spec(cap: Cap) -> CapSpec:
    """How `cap` is written: "p99" for the 99th percentile, else the absolute number."""
    if cap.percentile is not None:
        return f"p{cap.percentile * 100:g}"
    assert cap.absolute is not None, "a Cap is absolute or a percentile"
    return cap.absolute


def describe(cap: Cap, value: float, unit: str | None = None) -> str:
    """The cap used, in words: "p99 = 123.4 EUR" for a percentile, "250 EUR" for an absolute."""
    amount = f"{value:,.6g}" + (f" {unit}" if unit else "")
    return f"{spec(cap)} = {amount}" if cap.percentile is not None else amount


class Capped(NamedTuple):
    """Per-user values after capping, and the cap that was applied to them."""

    values: NDArray[np.float64]
    cap: float


def cap_value(values: ArrayLike, cap: Cap) -> float:
    """The cap `cap` means over `values`, the per-user values of every user of the analysis:
    its absolute number, or the percentile of the non-zero values (linear interpolation; nan
    without any). Zeros are left out, as GrowthBook's "ignore zeros" does: most users buy
    nothing, and over every user the p99 of revenue is 0 whenever fewer than 1% buy."""
    if cap.absolute is not None:
        return float(cap.absolute)
    import numpy as np

    assert cap.percentile is not None, "a Cap is absolute or a percentile"
    array = np.asarray(values, dtype=np.float64)
    array = array[array != 0]
    return float(np.quantile(array, cap.percentile)) if array.size else math.nan


def cap_values(values: ArrayLike, cap: Cap) -> Capped:
    """Each value above the cap replaced by the cap (winsorized from above), and the cap.

    The reference of the store's capping: the percentile is taken over the non-zero values of
    all of `values` (every user of the analysis, all variants pooled); zeros stay zeros. Without
    a non-zero value there is no percentile (cap nan) and nothing is capped, as in the store."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    threshold = cap_value(array, cap)
    if math.isnan(threshold):
        return Capped(array.copy(), threshold)
    return Capped(np.minimum(array, threshold), threshold)
