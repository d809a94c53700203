"""The reference search: a sample catalog with ground truth, two rankers, a click model, users.

Usable without HTTP (docs/SEARCH.md):

    catalog = default_catalog()
    engine = default_engine()
    hits = engine.search("red shoes", "search_v2", limit=10)
    grades = catalog.grades_of(catalog.query("red shoes"), [h.product_id for h in hits])
    clicks = ClickModel().sample(grades, np.random.default_rng(0))
"""

from __future__ import annotations

from clickstats.search.catalog import (
    Catalog,
    Product,
    Query,
    default_catalog,
    generate_catalog,
    relevance,
)
from clickstats.search.clickmodel import ClickModel
from clickstats.search.engine import (
    V1,
    V2,
    Hit,
    Ranker,
    Ranking,
    SearchEngine,
    UnknownRanker,
    default_engine,
)
from clickstats.search.evaluate import grade_matrix, mean_ndcg, ndcg
from clickstats.search.users import (
    User,
    click_scale,
    make_users,
    price_bands,
    query_probabilities,
)

__all__ = [
    "V1",
    "V2",
    "Catalog",
    "ClickModel",
    "Hit",
    "Product",
    "Query",
    "Ranker",
    "Ranking",
    "SearchEngine",
    "UnknownRanker",
    "User",
    "click_scale",
    "default_catalog",
    "default_engine",
    "generate_catalog",
    "grade_matrix",
    "make_users",
    "mean_ndcg",
    "ndcg",
    "price_bands",
    "query_probabilities",
    "relevance",
]
