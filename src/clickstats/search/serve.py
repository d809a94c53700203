"""One answered search, as /search/text and the simulator both run it: assign, search, time, log.

It builds the impression; storing it is the caller's job (awaited by the endpoint, batched
by the simulator), so this module never touches a store.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickstats.events import SearchImpression, new_id
from clickstats.experiments import DEFAULT_EXPERIMENT, Experiment, ExperimentManager
from clickstats.interleaving import Team, team_draft
from clickstats.search.engine import Hit, Ranking, SearchEngine

#: The experiment whose variant picks the ranker.
EXPERIMENT = DEFAULT_EXPERIMENT


@dataclass(frozen=True, slots=True)
class Served:
    impression: SearchImpression
    ranking: Ranking

    @property
    def took_ms(self) -> float:
        return self.impression.response_time_ms or 0.0


def serve_search(
    engine: SearchEngine,
    experiments: ExperimentManager,
    user_id: str,
    query: str,
    limit: int = 10,
    timestamp: datetime | None = None,
) -> Served:
    """The user's variant's results for `query`, and the impression that records them.

    Raises UnknownExperiment or UnknownRanker when the experiment is missing or assigns a
    variant that no ranker implements.
    """
    search_id = new_id()
    fields: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
    duel = experiments.active_interleaving()
    start = time.perf_counter()
    if duel is None:
        variant = experiments.assign_variant(user_id, EXPERIMENT)
        ranking = engine.rank(query, variant, limit)
    else:
        variant = duel.name  # the impression is the experiment's, not one ranker's
        ranking, fields["teams"] = _interleave(engine, duel, query, limit, search_id)
    took_ms = round((time.perf_counter() - start) * 1000, 3)
    impression = SearchImpression(
        user_id=user_id,
        variant=variant,
        query=query,
        search_id=search_id,
        results=ranking.product_ids,
        results_count=ranking.total,
        response_time_ms=took_ms,
        **fields,
    )
    return Served(impression, ranking)


def _interleave(
    engine: SearchEngine, duel: Experiment, query: str, limit: int, search_id: str
) -> tuple[Ranking, list[Team]]:
    """Team-draft the two rankers' lists; the coin flips are seeded by the search id, so a
    search's list can be rebuilt from its id."""
    ranker_a, ranker_b = duel.variants
    a, b = engine.rank(query, ranker_a, limit), engine.rank(query, ranker_b, limit)
    merged = team_draft(a.product_ids, b.product_ids, limit=limit, rng=random.Random(search_id))
    by_id = {hit.product.id: hit for hit in [*b.hits, *a.hits]}
    hits = [
        Hit(rank=rank, product=by_id[pid].product, score=by_id[pid].score)
        for rank, pid in enumerate(merged.product_ids, start=1)
    ]
    return Ranking(hits=hits, total=max(a.total, b.total)), merged.teams
