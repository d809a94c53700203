"""Implicit judgments (COEC, PBM) against the simulator's true relevance, compared with raw CTR.

Seeded simulated traffic (clickstats.simulate: the catalog's ground-truth grades, the
position-based click model with examination 1/rank) goes through the real search path into a
DuckDB store; `judgment_counts` reads it back as the endpoint does, and each (query, product)
shown in at least --min-impressions searches is scored three ways: COEC, PBM's attractiveness
and raw CTR (clicks / impressions). Each score is rank-correlated with the true grade (0-3):

- pooled: Kendall's tau-b and Spearman's rho over every pair;
- within query: Kendall's tau-b per query (queries with 3+ pairs and 2+ distinct grades), the
  mean over queries.

Prints a table per seed and the medians over seeds (the table of the judgments doc):

    .venv/bin/python scripts/validate_judgments.py             # 5 seeds x 100,000 searches
    .venv/bin/python scripts/validate_judgments.py --searches 20000 --users 500
    .venv/bin/python scripts/validate_judgments.py --drawn     # the same model, no event path

`--drawn` draws the clicks as counts from the same rankings, click model and user population
(drawn_counts), in seconds instead of minutes: tests/test_judgments_validation.py uses it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from clickstats.events import utcnow
from clickstats.experiments import ExperimentManager
from clickstats.search.catalog import Catalog, default_catalog
from clickstats.search.engine import default_engine
from clickstats.simulate import InProcess, simulate
from clickstats.stats.judgments import judge
from clickstats.store import open_store
from clickstats.store.base import Filters, JudgmentCounts

SCORES = ("coec", "pbm", "ctr")
RESULTS = 10  # results per search, as the simulator's
MIN_IMPRESSIONS = 20
FIGURES = ("pooled_tau", "pooled_rho", "query_tau")


@dataclass(frozen=True, slots=True)
class Correlations:
    """One score's rank correlation with the true grade."""

    pooled_tau: float
    pooled_rho: float
    query_tau: float  # mean over queries of the within-query Kendall tau-b
    queries: int


@dataclass(frozen=True, slots=True)
class Validation:
    seed: int
    searches: int
    pairs: int
    scores: dict[str, Correlations]


def simulated_counts(
    seed: int, searches: int, users: int, min_impressions: int, directory: Path
) -> JudgmentCounts:
    """Simulated traffic (the default experiment: two rankers, half the users each) in a
    DuckDB store, read back by judgment_counts."""
    store = open_store(f"duckdb://{directory / f'judgments-{seed}.duckdb'}")
    store.open()
    try:
        backend = InProcess(store, ExperimentManager(None), default_engine())
        simulate(backend, default_catalog(), users=users, searches=searches, seed=seed, days=7)
        since = utcnow() - timedelta(days=8)
        return store.judgment_counts(Filters(since=since), min_impressions, max_rank=20)
    finally:
        store.close()


def drawn_counts(
    seed: int, searches: int, min_impressions: int = MIN_IMPRESSIONS
) -> JudgmentCounts:
    """The same model without the event path, for a fast check: `searches` searches of the
    catalog's queries (by popularity), half served by each ranker, the top 10 clicked by the
    simulator's click model (clickstats.search.clickmodel) with each product's mean click scale
    over a population of simulated users (search.users: propensity, price band), clicks drawn
    per (query, ranker, rank) as binomial counts."""
    from clickstats.search.clickmodel import DEFAULT_CLICK_MODEL
    from clickstats.search.engine import V1, V2
    from clickstats.search.users import OFF_BAND_SCALE, make_users, price_bands
    from clickstats.store.base import Counts, JudgmentCount

    rng = np.random.default_rng(seed)
    catalog, engine = default_catalog(), default_engine()
    people = make_users(catalog, 1000, rng)
    band_share = np.bincount([u.price_band for u in people], minlength=3) / len(people)
    propensity = float(np.mean([u.click_propensity for u in people]))
    popularity = np.array([q.popularity for q in catalog.queries])
    per_query = rng.multinomial(searches, popularity / popularity.sum())
    cells: dict[tuple[str, str, int], list[int]] = {}
    for query, n_query in zip(catalog.queries, per_query, strict=True):
        for ranker, n in zip((V1, V2), rng.multinomial(n_query, [0.5, 0.5]), strict=True):
            shown = engine.rank(query.text, ranker, RESULTS).product_ids
            if not n or not shown:
                continue
            index = np.array([catalog.product(pid).index for pid in shown])
            share = band_share[price_bands(catalog)[index]]
            scale = propensity * (share + OFF_BAND_SCALE * (1 - share))
            p = DEFAULT_CLICK_MODEL.click_probabilities(catalog.grades(query)[index], scale)
            clicked = rng.binomial(n, p)
            for rank, (pid, clicks) in enumerate(zip(shown, clicked, strict=True), start=1):
                cell = cells.setdefault((query.text, pid, rank), [0, 0])
                cell[0] += int(n)
                cell[1] += int(clicks)
    ranks: dict[int, Counts] = {}
    for (_, _, rank), (n, c) in cells.items():
        total = ranks.get(rank, Counts())
        ranks[rank] = Counts(total.impressions + n, total.clicks + c)
    shown_pair: dict[tuple[str, str], int] = {}
    for (query_text, pid, _), (n, _) in cells.items():
        shown_pair[query_text, pid] = shown_pair.get((query_text, pid), 0) + n
    rows = tuple(
        JudgmentCount(q, pid, rank, n, c)
        for (q, pid, rank), (n, c) in sorted(cells.items())
        if shown_pair[q, pid] >= min_impressions
    )
    return JudgmentCounts(rows=rows, ranks=ranks)


def true_grades(catalog: Catalog, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out = {}
    for text, product in pairs:
        query = catalog.query(text)
        if query is None:
            raise ValueError(f"the simulator searched {text!r}, which is not a catalog query")
        out[text, product] = int(catalog.grades(query)[catalog.product(product).index])
    return out


def correlate(
    score: dict[tuple[str, str], float], truth: dict[tuple[str, str], int]
) -> Correlations:
    keys = [k for k in truth if k in score]
    x = np.array([score[k] for k in keys])
    y = np.array([truth[k] for k in keys])
    by_query: dict[str, list[tuple[float, int]]] = {}
    for k, s, g in zip(keys, x, y, strict=True):
        by_query.setdefault(k[0], []).append((s, g))
    taus = []
    for rows in by_query.values():
        scores, grades = zip(*rows, strict=True)
        if len(rows) >= 3 and len(set(grades)) >= 2 and len(set(scores)) >= 2:
            taus.append(float(kendalltau(scores, grades).statistic))
    return Correlations(
        pooled_tau=float(kendalltau(x, y).statistic),
        pooled_rho=float(spearmanr(x, y).statistic),
        query_tau=float(np.mean(taus)) if taus else float("nan"),
        queries=len(taus),
    )


def validate(counts: JudgmentCounts, seed: int = 0, searches: int = 0) -> Validation:
    """The three scores of every judged pair, correlated with the truth. Pairs COEC cannot
    score (no click at their ranks) are left out of all three, so that all compare the same
    pairs."""
    coec = {(j.query, j.product_id): j.score for j in judge(counts, "coec").judgments}
    pbm = {(j.query, j.product_id): j.score for j in judge(counts, "pbm").judgments}
    shown: dict[tuple[str, str], list[int]] = {}
    for r in counts.rows:
        n_c = shown.setdefault((r.query, r.product_id), [0, 0])
        n_c[0] += r.impressions
        n_c[1] += r.clicks
    ctr = {k: c / n for k, (n, c) in shown.items()}
    keys = [k for k, s in coec.items() if s is not None]
    truth = true_grades(default_catalog(), keys)
    scores: dict[str, dict[tuple[str, str], float]] = {
        "coec": {k: float(coec[k]) for k in keys},  # type: ignore[arg-type]
        "pbm": {k: float(pbm[k]) for k in keys},  # type: ignore[arg-type]
        "ctr": {k: ctr[k] for k in keys},
    }
    return Validation(
        seed, searches, len(keys), {name: correlate(s, truth) for name, s in scores.items()}
    )


def table(rows: Sequence[Validation], pick: Callable[[Correlations], float]) -> list[float]:
    return [pick(v.scores[name]) for v in rows for name in SCORES]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N (default 5)")
    parser.add_argument("--searches", type=int, default=100_000, help="searches per seed")
    parser.add_argument("--users", type=int, default=1000, help="simulated users per seed")
    parser.add_argument(
        "--min-impressions", type=int, default=MIN_IMPRESSIONS, help="pairs kept from this"
    )
    parser.add_argument("--drawn", action="store_true", help="clicks drawn as counts (fast)")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for seed in range(1, args.seeds + 1):
            counts = (
                drawn_counts(seed, args.searches, args.min_impressions)
                if args.drawn
                else simulated_counts(
                    seed, args.searches, args.users, args.min_impressions, Path(directory)
                )
            )
            v = validate(counts, seed, args.searches)
            results.append(v)
            print(f"seed {seed}: {v.pairs} pairs with {args.min_impressions}+ impressions")
            for name in SCORES:
                c = v.scores[name]
                print(
                    f"  {name:5} pooled tau {c.pooled_tau:.3f} rho {c.pooled_rho:.3f}  "
                    f"within-query tau {c.query_tau:.3f} ({c.queries} queries)"
                )
    print(f"\nmedians over {len(results)} seeds ({args.searches:,} searches each):")
    print("| score | pooled Kendall tau | pooled Spearman rho | within-query Kendall tau |")
    print("|---|---|---|---|")
    for name in SCORES:
        figures = [statistics.median(getattr(v.scores[name], f) for v in results) for f in FIGURES]
        print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in figures) + " |")
    print(f"pairs judged: median {statistics.median(v.pairs for v in results):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
