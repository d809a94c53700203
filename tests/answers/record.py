"""Every read endpoint's answer on a fixed data set, at a frozen moment: recorded once into
tests/answers/<backend>.json, compared byte for byte by tests/test_answers.py, so that a change
of the read side that alters an answer shows.

    python tests/answers/record.py   # rewrite the recordings (only when an answer should change)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import time_machine
from fastapi.testclient import TestClient

from clickstats.search.serve import serve_search
from clickstats.simulate import InProcess, Shown

HERE = Path(__file__).parent
NOW = datetime(2026, 6, 10, 15, 30, tzinfo=UTC)
BACKENDS = ("duckdb", "mongomock")

EXPERIMENT = {
    "name": "ranking",
    "variants": {"search_v1": 1, "search_v2": 1},
    "primary_metric": "search_ctr",
}
DUEL = {"name": "duel", "type": "interleaving", "variants": {"search_v1": 1, "search_v2": 1}}

#: The read requests whose answers are recorded (each as a GET path with its query).
READS = [
    "/analytics/ctr",
    "/analytics/ctr?days=30",
    "/analytics/ctr?variant=search_v2",
    "/analytics/ctr?user_id=sim7-u0003",
    "/analytics/rank-metrics",
    "/analytics/rank-metrics?days=2&variant=search_v1",
    "/analytics/response-time",
    "/analytics/response-time?variant=search_v2",
    "/analytics/user/sim7-u0003",
    "/analytics/user/sim7-u0003?days=30",
    "/analytics/user/nobody",
    "/analytics/variants-comparison",
    "/analytics/variants-comparison?days=30",
    "/analytics/overview",
    "/analytics/overview?days=30&tz=America/New_York",
    "/analytics/overview?variant=search_v2&days=3",
    "/analytics/overview?user_id=sim7-u0003",
    "/analytics/queries",
    "/analytics/queries?days=30&limit=5",
    "/analytics/queries?variant=search_v1",
    "/experiments",
    "/experiments/ranking",
    "/experiments/ranking/results",
    "/experiments/ranking/results?method=fixed",
    "/experiments/ranking/results?days=3",
    "/experiments/duel/interleaving",
    "/experiments/duel/interleaving?outcome=purchases",
    "/analytics/overview?currency=EUR&days=30",
    "/analytics/overview?variant=duel&days=3",
    "/analytics/judgments?days=30&min_impressions=5",
    "/analytics/judgments?days=30&min_impressions=5&model=pbm&format=srw",
    "/analytics/queries?currency=USD",
]


def _interleaved(client: TestClient) -> None:
    """Interleaved searches with fixed ids and clicks, so that the duel has answers."""
    events: list[dict[str, object]] = []
    for n in range(60):
        user = f"duel-u{n % 12:02d}"
        query = ("laptop", "phone", "desk")[n % 3]
        when = NOW - timedelta(hours=n)
        teams = ["A", "B"] * 3 if n % 2 else ["B", "A"] * 3
        search_id = f"duel-s{n:03d}"
        events.append(
            {
                "type": "impression", "event_id": f"duel-i{n:03d}", "search_id": search_id,
                "user_id": user, "query": query, "variant": "duel", "teams": teams,
                "results": [f"p{k}" for k in range(6)], "results_count": 6,
                "response_time_ms": 5 + n % 7, "timestamp": when.isoformat(),
            }
        )  # fmt: skip
        for rank in sorted({1 + n % 4, 1 + (n * 7) % 6})[: 1 + n % 2]:
            events.append(
                {
                    "type": "click", "event_id": f"duel-c{n:03d}-{rank}", "search_id": search_id,
                    "user_id": user, "product_id": f"p{rank - 1}", "rank": rank,
                    "variant": "duel", "search_query": query,
                    "timestamp": (when + timedelta(seconds=rank)).isoformat(),
                }
            )  # fmt: skip
        if n % 4 == 0:  # a purchase of the first product shown, from the duel's search
            events.append(
                {
                    "type": "conversion", "event_id": f"duel-b{n:03d}", "search_id": search_id,
                    "user_id": user, "subtype": "purchase", "product_ids": [f"p{n % 3}"],
                    "prices": [10 + n], "currency": "EUR",
                    "timestamp": (when + timedelta(minutes=5)).isoformat(),
                }
            )  # fmt: skip
        if n % 5 == 0:  # a product page seen after the search, and now and then a share
            events.append(
                {
                    "type": "action", "event_id": f"duel-v{n:03d}", "name": "view",
                    "user_id": user, "product_ids": [f"p{n % 6}"], "search_id": search_id,
                    "timestamp": (when + timedelta(minutes=2)).isoformat(),
                }
            )  # fmt: skip
        if n % 7 == 0:
            events.append(
                {
                    "type": "action", "event_id": f"duel-h{n:03d}", "name": "share",
                    "user_id": user, "timestamp": (when + timedelta(minutes=3)).isoformat(),
                }
            )  # fmt: skip
    answer = client.post("/analytics/events", json={"events": events})
    assert answer.status_code == 200, answer.text


class _Fixed(InProcess):
    """The simulator's searches with fixed ids and response times (measured ones vary)."""

    searches = 0

    def search(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown:
        served = serve_search(self.engine, self.experiments, user_id, query, limit, timestamp)
        self.searches += 1
        impression = served.impression.model_copy(
            update={
                "search_id": f"s{self.searches:05d}",
                "event_id": f"i{self.searches:05d}",
                "response_time_ms": 1 + (self.searches * 37) % 400 / 10,
            }
        )
        self._add([impression])
        return Shown(impression.search_id, impression.variant, served.ranking.product_ids)


@contextmanager
def seeded(backend: str) -> Iterator[TestClient]:
    """The app on `backend` at NOW, with simulated A/B traffic and an interleaving duel."""
    from clickstats.app import create_app
    from clickstats.search.catalog import default_catalog
    from clickstats.search.engine import default_engine
    from clickstats.settings import Settings
    from clickstats.simulate import simulate

    with time_machine.travel(NOW, tick=False), TemporaryDirectory() as tmp:
        if backend == "duckdb":
            url = f"duckdb://{tmp}/answers.duckdb"
        else:
            url = f"mongomock://localhost/answers_{tmp.rsplit('/', 1)[-1]}"
        settings = Settings(store=url, max_event_age_days=0)
        with TestClient(create_app(settings)) as client:
            state = client.app.state  # type: ignore[attr-defined]
            assert client.post("/experiments", json=EXPERIMENT).status_code in (200, 201)
            backend_ = _Fixed(state.tracker.store, state.experiments, default_engine())
            simulate(backend_, default_catalog(), users=40, searches=500, seed=7, days=10, now=NOW)
            assert client.post("/experiments", json=DUEL).status_code in (200, 201)
            _interleaved(client)
            yield client


def answers(backend: str) -> dict[str, object]:
    with seeded(backend) as client:
        out: dict[str, object] = {}
        for path in READS:
            response = client.get(path)
            out[path] = {"status": response.status_code, "body": response.text}
        return out


def main() -> None:
    for backend in sys.argv[1:] or BACKENDS:
        path = HERE / f"{backend}.json"
        path.write_text(json.dumps(answers(backend), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
