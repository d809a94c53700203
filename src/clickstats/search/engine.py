"""The reference search: one in-memory tantivy index over the catalog, and two rankers on it.

- `search_v1`, the control: BM25 over titles only. Titles often leave out the brand and call
  the product by another name ("Trainers" for shoes), so v1 misses good products and ranks
  short accessory titles ("Shoe Laces") high.
- `search_v2`: BM25 over title, category and brand with field boosts, then the top
  V2_CANDIDATES re-ranked by the visible rating (which follows the hidden quality):
  `score = bm25 * (rating / 5) ** V2_RATING_POWER`. It is better on the catalog's ground
  truth (docs/SEARCH.md has the measured NDCG@10).

Both parse the query the same way: lowercased words, any order, any of them may match.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import tantivy

from clickstats.search.catalog import Catalog, Product, default_catalog

V1 = "search_v1"
V2 = "search_v2"
#: The stemmer makes "shoes" find "Shoe" and "backpacks" find "Backpack".
TOKENIZER = "en_stem"
V2_BOOSTS = {"title": 1.0, "category": 2.0, "brand": 2.5}
V2_CANDIDATES = 60
V2_RATING_POWER = 0.5
MAX_LIMIT = 1000
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Hit:
    """One result: its 1-based rank, the product, and the ranker's score."""

    rank: int
    product: Product
    score: float

    @property
    def product_id(self) -> str:
        return self.product.id


@dataclass(frozen=True, slots=True)
class Ranking:
    """The first `limit` hits in rank order, and how many products matched in all."""

    hits: list[Hit]
    total: int

    @property
    def product_ids(self) -> list[str]:
        return [hit.product.id for hit in self.hits]

    @property
    def indices(self) -> list[int]:
        """Catalog indices in rank order (for Catalog.grades(query)[indices])."""
        return [hit.product.index for hit in self.hits]


class Ranker(Protocol):
    name: str

    def rank(self, query: str, limit: int = 10) -> Ranking: ...


class UnknownRanker(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name, self.known = name, known

    def __str__(self) -> str:
        return f"no ranker named {self.name!r}; rankers: {', '.join(self.known)}"


def query_text(query: str) -> str:
    """The query's words, lowercased, without the query language's operators and quotes."""
    return " ".join(_WORD.findall(query.lower()))


class _Index:
    """The catalog in an in-memory tantivy index; document -> catalog index via a fast field."""

    def __init__(self, catalog: Catalog) -> None:
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("index", fast=True)
        for field in ("title", "category", "brand"):
            builder.add_text_field(field, tokenizer_name=TOKENIZER, index_option="freq")
        self.index = tantivy.Index(builder.build())
        writer = self.index.writer(heap_size=50_000_000, num_threads=1)
        for p in catalog.products:
            writer.add_document(
                tantivy.Document(index=p.index, title=p.title, category=p.category, brand=p.brand)
            )
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()
        self.products = catalog.products

    def search(
        self, query: str, fields: list[str], boosts: dict[str, float], limit: int
    ) -> tuple[list[tuple[float, Product]], int]:
        text = query_text(query)
        if not text:
            return [], 0
        parsed = self.index.parse_query(text, fields, field_boosts=boosts)
        result = self.searcher.search(parsed, limit=limit, count=True)
        rows = self.searcher.fast_field_values("index", [address for _, address in result.hits])
        scored = [
            (float(score), self.products[int(row or 0)])
            for (score, _), row in zip(result.hits, rows, strict=True)
        ]
        total: int = result.count  # type: ignore[attr-defined]  # missing from tantivy's stubs
        return scored, total


class TitleBm25:
    """search_v1: BM25 over the title alone."""

    name = V1

    def __init__(self, index: _Index) -> None:
        self._index = index

    def rank(self, query: str, limit: int = 10) -> Ranking:
        scored, total = self._index.search(query, ["title"], {}, limit)
        hits = [Hit(r, p, s) for r, (s, p) in enumerate(scored, start=1)]
        return Ranking(hits, total)


class BoostedBm25Rated:
    """search_v2: BM25 over title, category and brand (boosted), re-ranked by rating."""

    name = V2

    def __init__(self, index: _Index) -> None:
        self._index = index

    def rank(self, query: str, limit: int = 10) -> Ranking:
        scored, total = self._index.search(
            query, list(V2_BOOSTS), V2_BOOSTS, max(limit, V2_CANDIDATES)
        )
        rescored = sorted(
            ((s * (p.rating / 5) ** V2_RATING_POWER, p.index, p) for s, p in scored),
            key=lambda row: (-row[0], row[1]),
        )
        hits = [Hit(r, p, s) for r, (s, _, p) in enumerate(rescored[:limit], start=1)]
        return Ranking(hits, total)


class SearchEngine:
    """The catalog, its index, and the rankers by variant name."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        index = _Index(catalog)
        self.rankers: Mapping[str, Ranker] = {V1: TitleBm25(index), V2: BoostedBm25Rated(index)}

    def rank(self, query: str, variant: str, limit: int = 10) -> Ranking:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        try:
            ranker = self.rankers[variant]
        except KeyError:
            raise UnknownRanker(variant, list(self.rankers)) from None
        return ranker.rank(query, limit)

    def search(self, query: str, variant: str, limit: int = 10) -> list[Hit]:
        """The hits `variant` returns for `query`, best first."""
        return self.rank(query, variant, limit).hits


_engine: SearchEngine | None = None
_engine_lock = threading.Lock()


def default_engine() -> SearchEngine:
    """The engine over the bundled catalog, built on first use (~0.2 s) and kept."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = SearchEngine(default_catalog())
        return _engine
