"""One answered search, as /search/text and the simulator both run it: assign, search, time, log.

It builds the impression; storing it is the caller's job (awaited by the endpoint, batched
by the simulator), so this module never touches a store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickstats.events import SearchImpression, new_id
from clickstats.experiments import DEFAULT_EXPERIMENT, ExperimentManager
from clickstats.search.engine import Ranking, SearchEngine

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
    variant = experiments.assign_variant(user_id, EXPERIMENT)
    start = time.perf_counter()
    ranking = engine.rank(query, variant, limit)
    took_ms = round((time.perf_counter() - start) * 1000, 3)
    fields: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
    impression = SearchImpression(
        user_id=user_id,
        variant=variant,
        query=query,
        search_id=new_id(),
        results=ranking.product_ids,
        results_count=ranking.total,
        response_time_ms=took_ms,
        **fields,
    )
    return Served(impression, ranking)
