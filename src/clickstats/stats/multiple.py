"""Correction for comparing several treatments with the control on the same metric.

Each metric is one family: its treatment-vs-control p-values are adjusted together (Holm by
default, which controls the family-wise error rate; Benjamini-Hochberg on request, which
controls the false discovery rate). With a single comparison both are the identity.

BH is scipy's `false_discovery_control`. Holm's step-down is written out here (a sort and a
running maximum): statsmodels' `multipletests` gives the same numbers (the tests check it
against it) but runs a full `gc.collect()` on every Holm call, measured at 0.3 s per call in a
large process, paid for every metric of every results request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.stats import false_discovery_control  # type: ignore[import-untyped]

from clickstats.stats.compare import Comparison, with_adjusted_p_value

Correction = Literal["holm", "bh"]
CORRECTIONS: dict[Correction, str] = {"holm": "holm", "bh": "fdr_bh"}  # -> statsmodels' name


def adjust_p_values(p_values: Sequence[float], correction: Correction = "holm") -> list[float]:
    """Adjusted p-values, as statsmodels' `multipletests(p_values, method=...)[1]`."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if len(p_values) < 2:
        return [float(p) for p in p_values]
    p = np.asarray(p_values, dtype=np.float64)
    if correction == "bh":
        return [float(v) for v in false_discovery_control(p, method="bh")]
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(steps, 1.0)
    return [float(v) for v in adjusted]


def correct(comparisons: Sequence[Comparison], correction: Correction = "holm") -> list[Comparison]:
    """The comparisons with adjusted p-values, intervals and significance.

    Comparisons that could not be tested (no p-value) are left out of the family.
    """
    tested = [(i, c.p_value) for i, c in enumerate(comparisons) if c.p_value is not None]
    adjusted = adjust_p_values([p for _, p in tested], correction)
    result = list(comparisons)
    for (i, p), p_adjusted in zip(tested, adjusted, strict=True):
        result[i] = with_adjusted_p_value(comparisons[i], p_value=p, p_value_adjusted=p_adjusted)
    return result
