"""One answered search, as /search/text and the simulator both run it: assign, search, time, log.

It builds the impression; storing it is the caller's job (awaited by the endpoint, batched
by the simulator), so this module never touches a store.

The experiments it serves name rankers: the API refuses others (`ranker_problem`). Should one
still name a variant that is no ranker (a state document edited by hand), the search is served
by a ranker all the same, with a warning in the log: never an error for the searcher.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickstats.events import SearchImpression, new_id
from clickstats.experiments import (
    DEFAULT_EXPERIMENT,
    Experiment,
    ExperimentManager,
    ExperimentStatus,
    ExperimentType,
    UnknownExperiment,
)
from clickstats.interleaving import Team, team_draft
from clickstats.search.engine import V1, V2, Hit, Ranking, SearchEngine

log = logging.getLogger("clickstats.search")

#: The experiment whose variant picks the ranker.
EXPERIMENT = DEFAULT_EXPERIMENT
#: The rankers SearchEngine implements (engine.py), by variant name.
RANKERS = (V1, V2)
#: The ranker that serves a search when its experiment names no ranker: the control.
DEFAULT_RANKER = V1


def served_by_search(experiment: Experiment) -> bool:
    """Whether /search/text serves the experiment's variants as rankers: the A/B experiment
    EXPERIMENT, and an interleaving experiment while it runs."""
    return experiment.name == EXPERIMENT or (
        experiment.type is ExperimentType.INTERLEAVING
        and experiment.status is ExperimentStatus.RUNNING
    )


def unknown_rankers(experiment: Experiment, rankers: Collection[str] = RANKERS) -> list[str]:
    """The variants of an experiment /search/text serves that are not rankers."""
    if not served_by_search(experiment):
        return []
    return [variant for variant in experiment.variants if variant not in rankers]


def ranker_problem(experiment: Experiment) -> str | None:
    """Why /search/text could not serve the experiment as it stands, or None."""
    unknown = unknown_rankers(experiment)
    if not unknown:
        return None
    role = (
        f"{EXPERIMENT!r} picks the ranker of every search"
        if experiment.name == EXPERIMENT
        else "a running interleaving experiment merges two rankers' results"
    )
    return (
        f"{role}, so its variants must be rankers: unknown variant"
        f"{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; the rankers are "
        f"{', '.join(RANKERS)}"
    )


@functools.lru_cache(maxsize=64)
def _warn_once(message: str) -> None:
    """Log a misconfiguration once per process, not once per search."""
    log.warning(message)


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

    A variant that is no ranker never fails the search: an interleaving experiment with one
    is served as if it did not run; the A/B experiment's user gets its control, else
    DEFAULT_RANKER (and so does everyone, should the experiment be missing); the impression
    records the ranker that served it. Each such case is logged once.
    """
    search_id = new_id()
    fields: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
    duel = _duel(engine, experiments)
    start = time.perf_counter()
    if duel is None:
        variant = _ranker(engine, experiments, user_id)
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


def _duel(engine: SearchEngine, experiments: ExperimentManager) -> Experiment | None:
    """The running interleaving experiment, when its two variants are rankers."""
    duel = experiments.active_interleaving()
    if duel is not None and (unknown := unknown_rankers(duel, engine.rankers)):
        _warn_once(
            f"the running interleaving experiment {duel.name!r} has variants that are not "
            f"rankers ({', '.join(unknown)}; rankers: {', '.join(engine.rankers)}): searches "
            f"are served by the experiment {EXPERIMENT!r} instead"
        )
        return None
    return duel


def _ranker(engine: SearchEngine, experiments: ExperimentManager, user_id: str) -> str:
    """The ranker of the user's variant of EXPERIMENT, else its control, else the default."""
    try:
        experiment = experiments.get(EXPERIMENT)
    except UnknownExperiment:
        _warn_once(f"no experiment {EXPERIMENT!r}: searches are served by {DEFAULT_RANKER}")
        return DEFAULT_RANKER
    variant = experiment.assign(user_id)
    if variant in engine.rankers:
        return variant
    fallback = experiment.control if experiment.control in engine.rankers else DEFAULT_RANKER
    _warn_once(
        f"the experiment {EXPERIMENT!r} assigns {variant!r}, which is not a ranker (rankers: "
        f"{', '.join(engine.rankers)}): those searches are served by {fallback}"
    )
    return fallback


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
