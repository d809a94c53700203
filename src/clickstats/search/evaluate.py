"""Offline evaluation of a ranker against the catalog's ground truth: grades and NDCG@k.

DCG@k = sum over ranks r <= k of (2^grade_r - 1) / log2(r + 1); NDCG@k divides it by the DCG
of the best possible ranking of the whole catalog for that query.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from clickstats.search.catalog import Query
from clickstats.search.engine import SearchEngine

#: Grade of an empty slot (fewer results than the limit): nothing to examine or click.
NO_RESULT = -1


def dcg(grades: npt.ArrayLike, k: int = 10) -> float:
    g = np.asarray(grades, dtype=float)[:k]
    g = np.where(g < 0, 0.0, g)
    return float(((2.0**g - 1) / np.log2(np.arange(2, g.size + 2))).sum())


def ndcg(ranked: npt.ArrayLike, all_grades: npt.ArrayLike, k: int = 10) -> float:
    """NDCG@k of a ranking (its grades in rank order) given every product's grade."""
    ideal = dcg(np.sort(np.asarray(all_grades))[::-1], k)
    return dcg(ranked, k) / ideal if ideal > 0 else 0.0


def grade_matrix(
    engine: SearchEngine, variant: str, queries: Sequence[Query], limit: int = 10
) -> npt.NDArray[np.int8]:
    """Ground-truth grades of each query's results in rank order, NO_RESULT past the end.

    Shape (len(queries), limit): the input the click model takes, one row per query.
    """
    out = np.full((len(queries), limit), NO_RESULT, dtype=np.int8)
    for row, query in enumerate(queries):
        indices = engine.rank(query.text, variant, limit).indices
        out[row, : len(indices)] = engine.catalog.grades(query)[indices]
    return out


def mean_ndcg(
    engine: SearchEngine, variant: str, queries: Sequence[Query] | None = None, k: int = 10
) -> float:
    """Mean NDCG@k over `queries` (default: the catalog's whole query vocabulary)."""
    queries = engine.catalog.queries if queries is None else queries
    ranked = grade_matrix(engine, variant, queries, k)
    catalog = engine.catalog
    return float(
        np.mean([ndcg(r, catalog.grades(q), k) for r, q in zip(ranked, queries, strict=True)])
    )
