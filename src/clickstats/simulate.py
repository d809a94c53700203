"""Simulated traffic through the real search path, with a known better ranker (docs/SEARCH.md).

Users with their own habits (clickstats.search.users) search the catalog's vocabulary; each
search goes through the same code as `POST /search/text` (in this process, or over HTTP to a
server); the position-based click model (clickstats.search.clickmodel) clicks on the results
according to their ground-truth grades; impressions and clicks land in the store. Searches are
spread over the last `days` days, so the dashboard has daily series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import click

from clickstats.events import MAX_BATCH_EVENTS, ClickEvent, utcnow
from clickstats.settings import DEFAULT_STORE

if TYPE_CHECKING:  # numpy, the search index and the stores load when a simulation runs
    import numpy as np
    import numpy.typing as npt

    from clickstats.experiments import ExperimentManager
    from clickstats.search.catalog import Catalog
    from clickstats.search.clickmodel import ClickModel
    from clickstats.search.engine import SearchEngine
    from clickstats.store.base import AnyEvent

DEFAULT_USERS = 200
DEFAULT_SEARCHES = 3000
DEFAULT_DAYS = 7
DEFAULT_SEED = 1
RESULTS_PER_SEARCH = 10
#: Searches end this long before the run starts, and begin this long after the window opens,
#: so that every event is in the past and inside a `days`-day report run right afterwards.
END_MARGIN = timedelta(minutes=1)
START_MARGIN = timedelta(minutes=10)
#: Seconds from a search to its first click, and between clicks: FIRST + Exp(mean GAP).
FIRST_CLICK_S = 2.0
CLICK_GAP_MEAN_S = 8.0


class SimulationError(RuntimeError):
    """The server or the store refused the simulated traffic."""


@dataclass(frozen=True, slots=True)
class Shown:
    """What a search answered: the ids to cite, and the results in rank order."""

    search_id: str
    variant: str
    product_ids: list[str]


class Backend(Protocol):
    def search(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown: ...
    def log_clicks(self, clicks: Sequence[ClickEvent]) -> None: ...
    def flush(self) -> None: ...


class Sink(Protocol):
    """Where InProcess stores events: the service (ClickTrackingService), or a bare store."""

    def append_sync(self, events: Sequence[AnyEvent]) -> Any: ...


class InProcess:
    """The endpoint's own code path (serve_search), stored in batches through the service."""

    def __init__(self, store: Sink, experiments: ExperimentManager, engine: SearchEngine) -> None:
        self.store, self.experiments, self.engine = store, experiments, engine
        self._pending: list[AnyEvent] = []

    def search(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown:
        from clickstats.search.serve import serve_search

        served = serve_search(self.engine, self.experiments, user_id, query, limit, timestamp)
        self._add([served.impression])
        imp = served.impression
        return Shown(imp.search_id, imp.variant, served.ranking.product_ids)

    def log_clicks(self, clicks: Sequence[ClickEvent]) -> None:
        self._add(clicks)

    def _add(self, events: Sequence[AnyEvent]) -> None:
        self._pending.extend(events)
        if len(self._pending) >= MAX_BATCH_EVENTS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.store.append_sync(self._pending)
            self._pending = []


class HttpClient(Protocol):
    """What OverHttp needs of a client: httpx.Client, or a test client, with a base URL."""

    def post(self, url: str, *, json: Any) -> Any: ...


#: 429 answers in a row (each waited out as Retry-After says) before the simulation gives up.
MAX_THROTTLED = 30


class OverHttp:
    """POST /search/text for each search; clicks in batches to POST /analytics/events."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self._pending: list[dict[str, Any]] = []

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        for _ in range(MAX_THROTTLED):
            response = self.client.post(path, json=body)
            if response.status_code != 429:
                break
            # The server's rate limit: wait as long as it says, then send the same body again.
            time.sleep(float(response.headers.get("Retry-After", "1")))
        if response.status_code != 200:
            raise SimulationError(f"POST {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def search(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown:
        body = {
            "query": query,
            "limit": limit,
            "user_id": user_id,
            "timestamp": timestamp.isoformat(),
        }
        answer = self._post("/search/text", body)
        ids = [result["product_id"] for result in answer["results"]]
        return Shown(answer["search_id"], answer["variant"], ids)

    def log_clicks(self, clicks: Sequence[ClickEvent]) -> None:
        self._pending.extend(event.to_dict() for event in clicks)
        if len(self._pending) >= MAX_BATCH_EVENTS:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_BATCH_EVENTS]
            answer = self._post("/analytics/events", {"events": batch})
            if answer["rejected"]:
                raise SimulationError(f"the server rejected clicks: {answer['results'][:3]}")
            del self._pending[:MAX_BATCH_EVENTS]


@dataclass(slots=True)
class Tally:
    searches: int = 0
    clicks: int = 0

    @property
    def clicks_per_search(self) -> float | None:
        return self.clicks / self.searches if self.searches else None


@dataclass(frozen=True, slots=True)
class SimulationReport:
    users: int
    searches: int
    clicks: int
    by_variant: dict[str, Tally] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None


def search_times(
    rng: np.random.Generator, searches: int, days: int, now: datetime
) -> list[datetime]:
    """`searches` moments, uniform over the last `days` days (within the margins), in order."""
    import numpy as np

    window = (timedelta(days=days) - START_MARGIN - END_MARGIN).total_seconds()
    ago = np.sort(rng.uniform(0.0, window, size=searches))[::-1]
    end = now - END_MARGIN
    return [end - timedelta(seconds=float(s)) for s in ago]


def simulate(
    backend: Backend,
    catalog: Catalog,
    *,
    users: int = DEFAULT_USERS,
    searches: int = DEFAULT_SEARCHES,
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
    limit: int = RESULTS_PER_SEARCH,
    click_model: ClickModel | None = None,
    now: datetime | None = None,
    on_search: Callable[[], None] | None = None,
) -> SimulationReport:
    """Run `searches` searches by `users` simulated users through `backend`, with clicks.

    Everything random (users, who searches when, what, which results get clicked) comes from
    `seed`; the ids of searches and events do not. The click model is the default
    (clickstats.search.clickmodel) unless `click_model` is given.
    """
    import numpy as np

    from clickstats.search.clickmodel import DEFAULT_CLICK_MODEL
    from clickstats.search.users import click_scale, make_users, query_probabilities

    click_model = click_model or DEFAULT_CLICK_MODEL
    if not 1 <= days <= 365:
        raise ValueError(f"days must be between 1 and 365, got {days}")
    now = now or utcnow()
    rng = np.random.default_rng(seed)
    people = make_users(catalog, users, rng, prefix=f"sim{seed}")
    activity = np.array([u.activity for u in people])
    searcher = rng.choice(len(people), size=searches, p=activity / activity.sum())
    times = search_times(rng, searches, days, now)
    probabilities: dict[int, npt.NDArray[np.float64]] = {}
    tallies: dict[str, Tally] = {}
    total_clicks = 0
    for who, when in zip(searcher.tolist(), times, strict=True):
        user = people[who]
        if who not in probabilities:
            probabilities[who] = query_probabilities(catalog, user)
        query = catalog.queries[rng.choice(len(catalog.queries), p=probabilities[who])]
        shown = backend.search(user.user_id, query.text, limit, when)
        indices = [catalog.product(pid).index for pid in shown.product_ids]
        clicked = click_model.sample(
            catalog.grades(query)[indices], rng, click_scale(catalog, user, indices)
        )
        clicks = []
        moment = when + timedelta(seconds=FIRST_CLICK_S)
        for position in np.flatnonzero(clicked).tolist():
            moment += timedelta(seconds=float(rng.exponential(CLICK_GAP_MEAN_S)))
            clicks.append(
                ClickEvent(
                    user_id=user.user_id,
                    variant=shown.variant,
                    product_id=shown.product_ids[position],
                    rank=position + 1,
                    search_query=query.text,
                    search_id=shown.search_id,
                    timestamp=min(moment, now),
                )
            )
        backend.log_clicks(clicks)
        tally = tallies.setdefault(shown.variant, Tally())
        tally.searches += 1
        tally.clicks += len(clicks)
        total_clicks += len(clicks)
        if on_search is not None:
            on_search()
    backend.flush()
    return SimulationReport(
        users=users,
        searches=searches,
        clicks=total_clicks,
        by_variant=dict(sorted(tallies.items())),
        first=times[0] if times else None,
        last=times[-1] if times else None,
    )


# -- the `clickstats simulate` command ---------------------------------------------------------


@click.command("simulate")
@click.option(
    "--users",
    type=click.IntRange(1, 1_000_000),
    default=DEFAULT_USERS,
    show_default=True,
    help="Simulated users, each with their own habits.",
)
@click.option(
    "--searches",
    type=click.IntRange(1, 10_000_000),
    default=DEFAULT_SEARCHES,
    show_default=True,
    help="Searches in all, shared out by the users' activity.",
)
@click.option(
    "--server",
    default=None,
    metavar="URL",
    help="Send the traffic to this running server over HTTP "
    "(e.g. http://127.0.0.1:8000). Default: in this process, into --store.",
)
@click.option(
    "--store",
    envvar="CLICKSTATS_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="The store to fill when there is no --server [env CLICKSTATS_STORE].",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULT_SEED,
    show_default=True,
    help="Seed of everything random: users, queries, clicks.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=DEFAULT_DAYS,
    show_default=True,
    help="Spread the searches over the last this many days.",
)
@click.option(
    "--key",
    envvar="CLICKSTATS_KEY",
    default=None,
    help="With --server: an ingest (or admin) key, when the server requires keys "
    "[env CLICKSTATS_KEY].",
)
def simulate_command(
    users: int, searches: int, server: str | None, store: str, seed: int, days: int, key: str | None
) -> None:
    """Simulated users search the sample catalog and click; the events are stored.

    The click model knows the catalog's ground truth, so the better ranker is known
    (search_v2): docs/SEARCH.md.
    """
    import httpx  # not at import: `clickstats --help` need not load it
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from clickstats.cli.options import opened_store
    from clickstats.experiments import open_experiments
    from clickstats.search.catalog import default_catalog
    from clickstats.search.engine import default_engine
    from clickstats.settings import Settings
    from clickstats.tracking import ClickTrackingService

    console = Console(stderr=True)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    started = time.perf_counter()

    def run(backend: Backend) -> SimulationReport:
        with progress:
            task = progress.add_task("searching", total=searches)
            return simulate(
                backend,
                default_catalog(),
                users=users,
                searches=searches,
                seed=seed,
                days=days,
                on_search=lambda: progress.advance(task),
            )

    if server is not None:
        where = server
        try:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            with httpx.Client(base_url=server, timeout=30, headers=headers) as client:
                report = run(OverHttp(client))
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach the server at {server}: {exc}") from exc
        except SimulationError as exc:
            raise click.ClickException(str(exc)) from exc
    else:
        where = store
        busy = "Stop it, or send the traffic to it with --server URL."
        with opened_store(store, busy) as event_store:
            experiments = open_experiments(Settings(store=store))
            service = ClickTrackingService(event_store)
            report = run(InProcess(service, experiments, default_engine()))

    table = Table(title=f"{report.searches} searches by {report.users} users, last {days} days")
    for column in ("variant", "searches", "clicks", "clicks per search"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant, tally in report.by_variant.items():
        per_search = "-" if tally.clicks_per_search is None else f"{tally.clicks_per_search:.3f}"
        table.add_row(variant, str(tally.searches), str(tally.clicks), per_search)
    out = Console()
    out.print(table)
    out.print(f"stored in {where} in {time.perf_counter() - started:.1f} s")
