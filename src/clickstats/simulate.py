"""Simulated traffic through the real search path, with a known better ranker (docs/SEARCH.md).

Users who differ as real users do (clickstats.search.users: how much they search, click and
buy) search the catalog's vocabulary; each search goes through the same code as
`POST /search/text` (in this process, or over HTTP to a server); the position-based click
model (clickstats.search.clickmodel) clicks on the results according to their ground-truth
grades; a click may lead to an add to cart, then a purchase (clickstats.search.purchasemodel).
Impressions, clicks and conversions land in the store. Searches are spread over the last
`days` days, so the dashboard has daily series; with `pre_days`, the same users searched
during that many days before, served by the control ranker with no experiment running (so that
CUPED has history: docs/STATISTICS.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import click

from clickstats.events import (
    ADD_TO_CART,
    DEFAULT_VARIANT,
    MAX_BATCH_EVENTS,
    PURCHASE,
    ActionEvent,
    ClickEvent,
    ConversionEvent,
    SearchImpression,
    utcnow,
)
from clickstats.settings import DEFAULT_STORE

if TYPE_CHECKING:  # numpy, the search index and the stores load when a simulation runs
    import numpy as np
    import numpy.typing as npt
    from rich.table import Table

    from clickstats.experiments import ExperimentManager
    from clickstats.search.catalog import Catalog, Query
    from clickstats.search.clickmodel import ClickModel
    from clickstats.search.engine import SearchEngine
    from clickstats.search.purchasemodel import Basket, PurchaseModel
    from clickstats.search.users import User
    from clickstats.store.base import AnyEvent

DEFAULT_USERS = 200
DEFAULT_SEARCHES = 3000
DEFAULT_DAYS = 7
#: The command's pre-period, in this process (a server refuses events older than its
#: max_event_age_days, 7 by default, so with --server there is none unless asked for).
DEFAULT_PRE_DAYS = 14
DEFAULT_SEED = 1
RESULTS_PER_SEARCH = 10
#: Searches end this long before the run starts, and begin this long after the window opens,
#: so that every event is in the past and inside a `days`-day report run right afterwards.
END_MARGIN = timedelta(minutes=1)
START_MARGIN = timedelta(minutes=10)
#: Seconds from a search to its first click, and between clicks: FIRST + Exp(mean GAP).
FIRST_CLICK_S = 2.0
CLICK_GAP_MEAN_S = 8.0
#: The currency of the catalog's prices, and so of every simulated conversion.
CURRENCY = "EUR"
#: Seconds from a click to its add to cart: Exp(mean).
CART_DELAY_MEAN_S = 40.0
#: A purchase follows the search's last add to cart: in the same visit (Exp(mean
#: CHECKOUT_DELAY_MEAN_S)), or, with probability LATER_PURCHASE, hours later (Exp(mean
#: LATER_PURCHASE_MEAN_H)): then some come after the 24-hour attribution window. A conversion
#: that would happen after the run has not happened yet, and is not sent.
CHECKOUT_DELAY_MEAN_S = 300.0
LATER_PURCHASE = 0.2
LATER_PURCHASE_MEAN_H = 12.0
#: The share of conversions sent without the search_id, as a site that does not keep it through
#: to the cart or the checkout page would: the server attributes them (last clicked search).
NO_SEARCH_ID = 0.3
#: The share of purchased products sold at a discount, and the discounts (share of the price).
DISCOUNTED = 0.1
DISCOUNTS = (0.1, 0.2, 0.3)


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
    def search_before(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown:
        """A search before the experiment: the control ranker's results, an impression of
        variant DEFAULT_VARIANT (no experiment assigned one)."""
        ...

    def log_events(self, events: Sequence[ClickEvent | ConversionEvent | ActionEvent]) -> None: ...
    def flush(self) -> None: ...


class Sink(Protocol):
    """Where InProcess stores events: the service (ClickTrackingService), or a bare store."""

    def append_sync(self, events: Sequence[AnyEvent]) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Answer:
    product_ids: list[str]
    total: int
    took_ms: float


class _Control:
    """Searches before the experiment: the control ranker's answers, ranked once per query
    (the engine is deterministic), each recorded as an impression of variant DEFAULT_VARIANT."""

    def __init__(self, engine: Callable[[], SearchEngine]) -> None:
        self._engine = engine
        self._answers: dict[tuple[str, int], _Answer] = {}

    def search(self, user_id: str, query: str, limit: int, timestamp: datetime) -> SearchImpression:
        answer = self._answers.get((query, limit))
        if answer is None:
            from clickstats.search.serve import DEFAULT_RANKER

            start = time.perf_counter()
            ranking = self._engine().rank(query, DEFAULT_RANKER, limit)
            took_ms = round((time.perf_counter() - start) * 1000, 3)
            answer = self._answers[query, limit] = _Answer(
                ranking.product_ids, ranking.total, took_ms
            )
        return SearchImpression(
            user_id=user_id,
            variant=DEFAULT_VARIANT,
            query=query,
            results=answer.product_ids,
            results_count=answer.total,
            response_time_ms=answer.took_ms,
            timestamp=timestamp,
        )


class InProcess:
    """The endpoint's own code path (serve_search), stored in batches through the service."""

    #: Events per batch: larger than an HTTP batch, as each write has a fixed cost.
    batch_events = 5 * MAX_BATCH_EVENTS

    def __init__(self, store: Sink, experiments: ExperimentManager, engine: SearchEngine) -> None:
        self.store, self.experiments, self.engine = store, experiments, engine
        self._pending: list[AnyEvent] = []
        self._control = _Control(lambda: self.engine)

    def search(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown:
        from clickstats.search.serve import serve_search

        served = serve_search(self.engine, self.experiments, user_id, query, limit, timestamp)
        self._add([served.impression])
        imp = served.impression
        return Shown(imp.search_id, imp.variant, served.ranking.product_ids)

    def search_before(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown:
        impression = self._control.search(user_id, query, limit, timestamp)
        self._add([impression])
        return Shown(impression.search_id, impression.variant, impression.results or [])

    def log_events(self, events: Sequence[ClickEvent | ConversionEvent | ActionEvent]) -> None:
        self._add(events)

    def _add(self, events: Sequence[AnyEvent]) -> None:
        self._pending.extend(events)
        if len(self._pending) >= self.batch_events:
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
    """POST /search/text for each search; the other events in batches to POST /analytics/events
    (a search before the experiment is ranked here, by the same bundled engine, and sent as an
    impression)."""

    def __init__(self, client: HttpClient) -> None:
        from clickstats.search.engine import default_engine

        self.client = client
        self._pending: list[dict[str, Any]] = []
        self._control = _Control(default_engine)

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

    def search_before(self, user_id: str, query: str, limit: int, timestamp: datetime) -> Shown:
        impression = self._control.search(user_id, query, limit, timestamp)
        self._queue([impression])
        return Shown(impression.search_id, impression.variant, impression.results or [])

    def log_events(self, events: Sequence[ClickEvent | ConversionEvent | ActionEvent]) -> None:
        self._queue(events)

    def _queue(self, events: Sequence[AnyEvent]) -> None:
        self._pending.extend(event.to_dict() for event in events)
        if len(self._pending) >= MAX_BATCH_EVENTS:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_BATCH_EVENTS]
            answer = self._post("/analytics/events", {"events": batch})
            if answer["rejected"]:
                problems = [r for r in answer["results"] if r["status"] == "rejected"]
                raise SimulationError(
                    f"the server rejected {answer['rejected']} events: {problems[:3]} (a server "
                    "refuses events older than its max_event_age_days: simulate fewer --days "
                    "and --pre-days, or start it with --max-event-age-days 0)"
                )
            del self._pending[:MAX_BATCH_EVENTS]


@dataclass(slots=True)
class Tally:
    searches: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    #: searches with at least one add to cart
    cart_searches: int = 0
    #: purchase events: at most one per search, so also the searches with a purchase
    purchases: int = 0
    units: int = 0
    #: purchases' value, in CURRENCY
    revenue: float = 0.0

    @property
    def clicks_per_search(self) -> float | None:
        return self.clicks / self.searches if self.searches else None

    @property
    def purchase_rate(self) -> float | None:
        return self.purchases / self.searches if self.searches else None

    @property
    def revenue_per_search(self) -> float | None:
        return self.revenue / self.searches if self.searches else None

    def add(self, other: Tally) -> None:
        for name in _TALLIED:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_TALLIED = tuple(f.name for f in fields(Tally))


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """Totals and `by_variant` are over the last `days` days (the experiment); `pre` is the
    pre-period's (variant DEFAULT_VARIANT), None without one."""

    users: int
    searches: int
    clicks: int
    by_variant: dict[str, Tally] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None
    add_to_carts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    pre: Tally | None = None
    #: when the experiment's period began (the pre-period ends there)
    start: datetime | None = None


def search_times(
    rng: np.random.Generator, searches: int, start: datetime, end: datetime
) -> list[datetime]:
    """`searches` moments, uniform over [start, end), in order."""
    import numpy as np

    window = (end - start).total_seconds()
    ago = np.sort(rng.uniform(0.0, window, size=searches))[::-1]
    return [end - timedelta(seconds=float(s)) for s in ago]


@dataclass(frozen=True, slots=True)
class _Search:
    """One simulated search, as the conversions need it."""

    user: User
    query: Query
    shown: Shown
    when: datetime
    before: bool


def _clicks(
    s: _Search, positions: list[int], rng: np.random.Generator, now: datetime
) -> list[ClickEvent]:
    clicks = []
    moment = s.when + timedelta(seconds=FIRST_CLICK_S)
    for position in positions:
        moment += timedelta(seconds=float(rng.exponential(CLICK_GAP_MEAN_S)))
        clicks.append(
            ClickEvent(
                user_id=s.user.user_id,
                variant=s.shown.variant,
                product_id=s.shown.product_ids[position],
                rank=position + 1,
                search_query=s.query.text,
                search_id=s.shown.search_id,
                timestamp=min(moment, now),
            )
        )
    return clicks


def _views(clicks: list[ClickEvent], now: datetime) -> list[ActionEvent]:
    """The product page each click opens, seen a second later: a "view" action (what Algolia's
    view events and UBI's "view" carry). No random draw: the simulation stays as seeded."""
    return [
        ActionEvent(
            name="view",
            user_id=c.user_id,
            product_ids=[c.product_id],
            position=c.rank,
            search_id=c.search_id,
            search_query=c.search_query,
            timestamp=min(c.timestamp + timedelta(seconds=1), now),
        )
        for c in clicks
    ]


def _conversions(
    s: _Search,
    clicks: list[ClickEvent],
    basket: Basket,
    prices: npt.NDArray[np.float64],
    rng: np.random.Generator,
    now: datetime,
    tally: Tally,
) -> list[ConversionEvent]:
    """An add to cart per carted product, then one purchase of the bought ones, in order;
    counted in `tally`."""
    import numpy as np

    events: list[ConversionEvent] = []
    carted = np.flatnonzero(basket.carted).tolist()
    if not carted:
        return events
    at = {c.rank - 1: c.timestamp for c in clicks}
    last = s.when
    for position in carted:
        moment = at[position] + timedelta(seconds=float(rng.exponential(CART_DELAY_MEAN_S)))
        last = max(last, moment)
        if moment <= now:
            events.append(_conversion(s, ADD_TO_CART, [position], basket, prices, moment, rng))
            tally.add_to_carts += 1
            tally.cart_searches = 1
    bought = [p for p in carted if basket.bought[p]]
    if not bought:
        return events
    later = rng.random() < LATER_PURCHASE
    delay = rng.exponential(LATER_PURCHASE_MEAN_H * 3600 if later else CHECKOUT_DELAY_MEAN_S)
    moment = last + timedelta(seconds=float(delay))
    discounts = [
        round(float(prices[p]) * float(rng.choice(DISCOUNTS)), 2)
        if rng.random() < DISCOUNTED
        else 0.0
        for p in bought
    ]
    if moment <= now:
        purchase = _conversion(s, PURCHASE, bought, basket, prices, moment, rng, discounts)
        events.append(purchase)
        tally.purchases = 1
        tally.units = purchase.units
        tally.revenue = purchase.value or 0.0
    return events


def _conversion(
    s: _Search,
    subtype: str,
    positions: list[int],
    basket: Basket,
    prices: npt.NDArray[np.float64],
    moment: datetime,
    rng: np.random.Generator,
    discounts: list[float] | None = None,
) -> ConversionEvent:
    known = rng.random() >= NO_SEARCH_ID
    return ConversionEvent(
        user_id=s.user.user_id,
        subtype=subtype,
        product_ids=[s.shown.product_ids[p] for p in positions],
        prices=[float(prices[p]) for p in positions],
        quantities=[int(basket.quantities[p]) for p in positions],
        discounts=discounts if discounts and any(discounts) else None,
        currency=CURRENCY,
        search_id=s.shown.search_id if known else None,
        timestamp=moment,
    )


#: Searches served, then clicked and converted as one array: numpy's cost is per call.
CHUNK = 1000


def _chunk(
    backend: Backend,
    catalog: Catalog,
    people: Sequence[User],
    plan: Sequence[tuple[int, datetime, bool]],
    rng: np.random.Generator,
    limit: int,
    now: datetime,
    models: tuple[ClickModel, PurchaseModel],
) -> Iterator[tuple[_Search, Tally]]:
    """Serve these searches, then sample their clicks, carts and purchases; send the events."""
    import numpy as np

    from clickstats.search.purchasemodel import Basket
    from clickstats.search.users import click_scales

    click_model, purchase_model = models
    users = [people[who] for who, _, _ in plan]
    queries = [catalog.queries[q] for q in _queries(catalog, users, rng)]
    searches = []
    index = np.full((len(plan), limit), -1, dtype=np.intp)
    grades = np.full((len(plan), limit), -1, dtype=np.int8)
    for row, ((_, when, before), user, query) in enumerate(zip(plan, users, queries, strict=True)):
        ask = backend.search_before if before else backend.search
        shown = ask(user.user_id, query.text, limit, when)
        searches.append(_Search(user, query, shown, when, before))
        shown_at = [catalog.product(pid).index for pid in shown.product_ids]
        index[row, : len(shown_at)] = shown_at
        grades[row, : len(shown_at)] = catalog.grades(query)[shown_at]
    prices = np.where(index < 0, 0.0, catalog.prices[index])
    clicked = click_model.sample(grades, rng, click_scales(catalog, users, index))
    propensity = np.array([u.purchase_propensity for u in users])[:, None]
    baskets = purchase_model.sample(clicked, grades, prices, rng, propensity)
    for row, search in enumerate(searches):
        tally = Tally(searches=1)
        if clicked[row].any():
            clicks = _clicks(search, np.flatnonzero(clicked[row]).tolist(), rng, now)
            basket = Basket(baskets.carted[row], baskets.bought[row], baskets.quantities[row])
            conversions = _conversions(search, clicks, basket, prices[row], rng, now, tally)
            backend.log_events([*clicks, *_views(clicks, now), *conversions])
            tally.clicks = len(clicks)
        yield search, tally


def _queries(
    catalog: Catalog, users: Sequence[User], rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """Each user's query (an index into catalog.queries), drawn from their habits."""
    import numpy as np

    from clickstats.search.users import query_cdf

    cdf = np.stack([query_cdf(catalog, u.category, u.brand) for u in users])
    draws = rng.random((len(users), 1))
    picked: npt.NDArray[np.intp] = (cdf <= draws).sum(axis=1).clip(0, cdf.shape[1] - 1)
    return picked


def simulate(
    backend: Backend,
    catalog: Catalog,
    *,
    users: int = DEFAULT_USERS,
    searches: int = DEFAULT_SEARCHES,
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
    pre_days: int = 0,
    limit: int = RESULTS_PER_SEARCH,
    click_model: ClickModel | None = None,
    purchase_model: PurchaseModel | None = None,
    alike: bool = False,
    now: datetime | None = None,
    on_search: Callable[[], None] | None = None,
) -> SimulationReport:
    """Run `searches` searches by `users` simulated users through `backend` over the last
    `days` days, with clicks and conversions; with `pre_days`, the same users' searches at the
    same daily rate during the `pre_days` days before (Backend.search_before).

    Everything random (users, who searches when, what, which results get clicked, carted and
    bought) comes from `seed`; the ids of searches and events do not. The click and purchase
    models are the defaults (clickstats.search.clickmodel, .purchasemodel) unless given.
    `alike`: users who differ only in their habits, as before issue 14 (make_users): a small
    A/B test then finds the better ranker, which it rarely does among users who differ.
    """
    import numpy as np

    from clickstats.search.clickmodel import DEFAULT_CLICK_MODEL
    from clickstats.search.purchasemodel import DEFAULT_PURCHASE_MODEL
    from clickstats.search.users import ACTIVITY_DRIFT, make_users, period_activity

    models = (click_model or DEFAULT_CLICK_MODEL, purchase_model or DEFAULT_PURCHASE_MODEL)
    if not 1 <= days <= 365:
        raise ValueError(f"days must be between 1 and 365, got {days}")
    if not 0 <= pre_days <= 365:
        raise ValueError(f"pre_days must be between 0 and 365, got {pre_days}")
    now = now or utcnow()
    rng = np.random.default_rng(seed)
    people = make_users(catalog, users, rng, prefix=f"sim{seed}", alike=alike)
    start = now - timedelta(days=days)
    # (who, when, before the experiment?) for every search, in time order
    plan: list[tuple[int, datetime, bool]] = []
    pre_searches = round(searches * pre_days / days)
    for count, since, until, before in (
        (pre_searches, start - timedelta(days=pre_days) + START_MARGIN, start, True),
        (searches, start + START_MARGIN, now - END_MARGIN, False),
    ):
        if count:
            rates = period_activity(people, rng, 0.0 if alike else ACTIVITY_DRIFT)
            who = rng.choice(len(people), size=count, p=rates / rates.sum()).tolist()
            times = search_times(rng, count, since, until)
            plan += [(w, t, before) for w, t in zip(who, times, strict=True)]
    tallies: dict[str, Tally] = {}
    pre = Tally() if pre_searches else None
    for begin in range(0, len(plan), CHUNK):
        for search, tally in _chunk(
            backend, catalog, people, plan[begin : begin + CHUNK], rng, limit, now, models
        ):
            if pre is not None and search.before:
                pre.add(tally)
            else:
                tallies.setdefault(search.shown.variant, Tally()).add(tally)
            if on_search is not None:
                on_search()
    backend.flush()
    total = Tally()
    for tally in tallies.values():
        total.add(tally)
    during = [when for _, when, before in plan if not before]
    return SimulationReport(
        users=users,
        searches=searches,
        clicks=total.clicks,
        by_variant=dict(sorted(tallies.items())),
        first=during[0] if during else None,
        last=during[-1] if during else None,
        add_to_carts=total.add_to_carts,
        purchases=total.purchases,
        revenue=total.revenue,
        pre=pre,
        start=start,
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
    help="Searches over the last --days days, shared out by the users' activity.",
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
    "--pre-days",
    type=click.IntRange(0, 365),
    default=None,
    help=f"Before those days, this many days of the same users' searches at the same daily "
    f"rate, served by the control ranker with no experiment (CUPED's history). Default: "
    f"{DEFAULT_PRE_DAYS} in this process, 0 with --server (a server refuses events older than "
    "its --max-event-age-days).",
)
@click.option(
    "--key",
    envvar="CLICKSTATS_KEY",
    default=None,
    help="With --server: an ingest (or admin) key, when the server requires keys "
    "[env CLICKSTATS_KEY].",
)
def simulate_command(
    users: int,
    searches: int,
    server: str | None,
    store: str,
    seed: int,
    days: int,
    pre_days: int | None,
    key: str | None,
) -> None:
    """Simulated users search the sample catalog, click, add to cart and buy; the events are
    stored.

    The click and purchase models know the catalog's ground truth, so the better ranker is
    known (search_v2): docs/SEARCH.md.
    """
    import httpx  # not at import: `clickstats --help` need not load it
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

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
    if pre_days is None:
        pre_days = 0 if server is not None else DEFAULT_PRE_DAYS

    def run(backend: Backend) -> SimulationReport:
        with progress:
            total = searches + round(searches * pre_days / days)
            task = progress.add_task("searching", total=total)
            return simulate(
                backend,
                default_catalog(),
                users=users,
                searches=searches,
                seed=seed,
                days=days,
                pre_days=pre_days,
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

    out = Console()
    out.print(summary_table(report, days, pre_days))
    out.print(f"stored in {where} in {time.perf_counter() - started:.1f} s")


def summary_table(report: SimulationReport, days: int, pre_days: int) -> Table:
    """Each variant's searches, clicks and conversions; the pre-period's on a row of its own."""
    from rich.table import Table

    title = f"{report.searches} searches by {report.users} users, last {days} days"
    if report.pre is not None:
        title += f"; {report.pre.searches} in the {pre_days} days before ({DEFAULT_VARIANT})"
    table = Table(title=title)
    for column in ("variant", "searches", "clicks/search", "carts", "purchases", "revenue"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    rows = list(report.by_variant.items())
    if report.pre is not None:
        rows.append((DEFAULT_VARIANT, report.pre))
    for variant, tally in rows:
        table.add_row(
            variant,
            str(tally.searches),
            _figure(tally.clicks_per_search, "{:.3f}"),
            str(tally.add_to_carts),
            str(tally.purchases),
            f"{tally.revenue:,.0f} {CURRENCY}",
        )
    return table


def _figure(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
