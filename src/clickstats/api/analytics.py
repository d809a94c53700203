"""/analytics/*: ingest clicks and impressions, answer the metrics of the original design."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from clickstats.api.auth import AUTH_RESPONSES, Authorized
from clickstats.api.batches import store_batch
from clickstats.api.deps import (
    DEFAULT_DAYS,
    Days,
    Limit,
    SettingsDep,
    TimeZone,
    TrackerDep,
    UserFilter,
    UserHeader,
    VariantFilter,
)
from clickstats.api.errors import READ_RESPONSES, STORE_RESPONSES, WRITE_RESPONSES, responses
from clickstats.bots import FromBot, count_dropped
from clickstats.events import (
    MAX_BATCH_EVENTS,
    MAX_ID_LENGTH,
    ActionEvent,
    BatchResult,
    ClickEvent,
    ConversionEvent,
    Currency,
    SearchImpression,
    loads,
    parse_events,
    too_old,
)
from clickstats.experiments import DEFAULT_EXPERIMENT, ExperimentManager
from clickstats.reports.analytics import (
    CtrReport,
    LogResult,
    MetricsReport,
    RankReport,
    ResetReport,
    ResponseTimeReport,
    UserSummary,
    VariantComparison,
)
from clickstats.reports.judgments import (
    DEFAULT_MAX_RANK,
    DEFAULT_MIN_IMPRESSIONS,
    MAX_RANK_LIMIT,
    Format,
    JudgmentsQuery,
    JudgmentsReport,
    SrwImport,
    render,
)
from clickstats.reports.overview import Overview
from clickstats.reports.queries import QueriesReport
from clickstats.settings import Settings
from clickstats.stats.judgments import Model
from clickstats.store.base import AnyEvent, AppendStatus
from clickstats.telemetry import count_events, count_rejected, type_of
from clickstats.tracking import ClickTrackingService

# Ingest for the event endpoints, read for the reports, admin for the rest (api/auth.py).
router = APIRouter(
    prefix="/analytics",
    tags=["analytics"],
    dependencies=[Authorized],
    responses={**AUTH_RESPONSES, **STORE_RESPONSES},
)

ANONYMOUS = "anonymous"
E = TypeVar("E", ClickEvent, SearchImpression, ConversionEvent, ActionEvent)

_BATCH_SCHEMA = {
    "type": "object",
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH_EVENTS,
            "items": {
                "oneOf": [
                    {"$ref": "#/components/schemas/ClickEvent"},
                    {"$ref": "#/components/schemas/SearchImpression"},
                    {"$ref": "#/components/schemas/ConversionEvent"},
                    {"$ref": "#/components/schemas/ActionEvent"},
                ],
                "discriminator": {"propertyName": "type"},
                "required": ["type"],  # in a batch, each event says what it is
            },
        }
    },
}


def _with_user(event: E, header_user: str | None) -> E:
    if "user_id" in event.model_fields_set:
        return event
    return event.model_copy(update={"user_id": header_user or ANONYMOUS})


def _logged(event: AnyEvent, status: AppendStatus | None) -> Response:
    """status None: not stored, a known crawler's event (clickstats.bots)."""
    # Serialized directly: this is the hot path, and the shape is fixed (LogResult).
    body: dict[str, Any] = {
        "status": "success" if status is not None else "dropped_bot",
        "event_id": event.event_id,
        "timestamp": event.timestamp,
        "duplicate": status is AppendStatus.DUPLICATE,
        "search_id": event.search_id,
    }
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


def _recent(event: AnyEvent, max_age_days: int) -> None:
    """422 naming timestamp for an event older than the server takes (max_event_age_days)."""
    problem = too_old(event.timestamp, max_age_days)
    if problem is not None:
        _bad_body("timestamp", problem)


_LOGGED = {200: {"model": LogResult}, **WRITE_RESPONSES}


async def _log_one(
    event: E,
    request: Request,
    tracker: ClickTrackingService,
    settings: Settings,
    from_bot: bool,
    x_user_id: str | None,
) -> Response:
    """One event of a single-event endpoint: too old is a 422, the header's user fills in a
    missing one, a crawler's is dropped; else it is stored and the answer says how."""
    _recent(event, settings.max_event_age_days)
    event = _with_user(event, x_user_id)
    if from_bot:
        count_dropped(request.app, 1)
        count_events(request, [event], [None])
        return _logged(event, None)
    (status,) = await tracker.append([event])
    count_events(request, [event], [status])  # its rejections: telemetry.RequestTimer
    return _logged(event, status)


@router.post("/log-click", response_class=Response, responses=_LOGGED)
async def log_click(
    event: ClickEvent,
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store one click. 200 means it is committed to disk; a retried event_id is not counted twice."""
    return await _log_one(event, request, tracker, settings, from_bot, x_user_id)


@router.post("/log-impression", response_class=Response, responses=_LOGGED)
async def log_impression(
    event: SearchImpression,
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store one search impression; the answer carries its search_id for the clicks to cite."""
    return await _log_one(event, request, tracker, settings, from_bot, x_user_id)


@router.post("/log-conversion", response_class=Response, responses=_LOGGED)
async def log_conversion(
    event: ConversionEvent,
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store one conversion (add_to_cart, purchase, or a subtype the site names). It counts for
    its search_id, else for the user's latest search in which they clicked one of its products
    within the attribution window (docs/CLICK_TRACKING.md, "Conversions")."""
    return await _log_one(event, request, tracker, settings, from_bot, x_user_id)


@router.post("/log-action", response_class=Response, responses=_LOGGED)
async def log_action(
    event: ActionEvent,
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store one other action under its name: a product view ("view"), a hover, a share. It is
    counted by name (the overview's `actions`) and exported, and no metric reads it."""
    return await _log_one(event, request, tracker, settings, from_bot, x_user_id)


def _bad_body(field: str, problem: str, status_code: int = 422) -> NoReturn:
    raise HTTPException(
        status_code, detail=[{"loc": ["body", field], "msg": problem, "type": "value_error"}]
    )


@router.post(
    "/events",
    responses={
        200: {"model": BatchResult},
        422: {
            "description": "Every event was rejected (a BatchResult), or the body is no batch",
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/BatchResult"},
                            {"$ref": "#/components/schemas/HTTPValidationError"},
                        ]
                    }
                }
            },
        },
        **WRITE_RESPONSES,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _BATCH_SCHEMA},
                "text/plain": {"schema": _BATCH_SCHEMA},
            },
        }
    },
)
async def log_events(
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store a batch of impressions, clicks and conversions (each with "type"), answered event
    by event.

    Accepts `text/plain` bodies as sent by `navigator.sendBeacon`. Each event is accepted,
    a duplicate (its event_id is already stored), rejected with the field and the problem,
    or dropped_bot (sent by a known crawler: not stored). 200 when anything was stored,
    already was or was dropped; 422 when every event was rejected.
    """
    body = await request.body()
    try:
        payload = loads(body)  # NaN and lone surrogates too: their events are rejected alone
    except ValueError as exc:
        _bad_body("events", f"body is not valid JSON: {exc}")
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        _bad_body("events", 'body must be an object {"events": [...]}')
    items: list[Any] = payload["events"]
    if not items:
        _bad_body("events", "is empty: send at least one event")
    if len(items) > MAX_BATCH_EVENTS:
        _bad_body("events", f"has {len(items)} events; at most {MAX_BATCH_EVENTS} per batch")

    good, rejected = parse_events(
        items, default_user=x_user_id or ANONYMOUS, max_age_days=settings.max_event_age_days
    )
    count_rejected(request, (type_of(items[rejection.index]) for rejection in rejected))
    stored = await store_batch(request, tracker, good, len(items), from_bot)
    results = stored.results
    for rejection in rejected:
        results[rejection.index] = {
            "index": rejection.index,
            "status": "rejected",
            "errors": rejection.errors,
        }
    answer = {
        "accepted": stored.accepted,
        "duplicates": stored.duplicates,
        "rejected": len(rejected),
        "results": results,
    }
    return Response(
        orjson.dumps(answer), status_code=422 if not good else 200, media_type="application/json"
    )


@router.get("/ctr", response_model=CtrReport, responses=READ_RESPONSES)
def ctr(
    tracker: TrackerDep,
    user_id: UserFilter = None,
    variant: VariantFilter = None,
    days: Days = DEFAULT_DAYS,
) -> Any:
    """Clicks per search (clicks / impressions), overall and per variant. The field keeps the
    original design's name `ctr`; search CTR (the share of searches with a click) is in
    /analytics/overview."""
    return tracker.get_ctr(user_id=user_id, variant=variant, days=days)


@router.get("/rank-metrics", response_model=RankReport, responses=READ_RESPONSES)
def rank_metrics(
    tracker: TrackerDep,
    user_id: UserFilter = None,
    variant: VariantFilter = None,
    days: Days = DEFAULT_DAYS,
) -> Any:
    """Where clicks land: mean, median, extremes and the count at each rank."""
    return tracker.get_rank_metrics(user_id=user_id, variant=variant, days=days)


@router.get("/response-time", response_model=ResponseTimeReport, responses=READ_RESPONSES)
def response_time(
    tracker: TrackerDep,
    user_id: UserFilter = None,
    variant: VariantFilter = None,
    days: Days = DEFAULT_DAYS,
) -> Any:
    """Search response time over impressions (each search counted once)."""
    return tracker.get_response_time_metrics(user_id=user_id, variant=variant, days=days)


@router.get("/user/{user_id}", response_model=UserSummary, responses=READ_RESPONSES)
def user_summary(
    tracker: TrackerDep,
    user_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)],
    days: Days = DEFAULT_DAYS,
) -> Any:
    """One user's searches, clicks, clicks per search (`ctr`), click position, response times
    and variants."""
    return tracker.get_user_summary(user_id, days=days)


@router.get("/variants-comparison", response_model=VariantComparison, responses=READ_RESPONSES)
def variants_comparison(request: Request, tracker: TrackerDep, days: Days = DEFAULT_DAYS) -> Any:
    """Per variant: impressions, clicks, clicks per search (`ctr`), click position, response
    time; in `stats` the search_ranking experiment's decision with confidence intervals
    (docs/STATISTICS.md). `winner` is that decision's winner (null until it is significant and
    healthy); `leader` is the variant with the most clicks per search, decided or not."""
    manager: ExperimentManager = request.app.state.experiments
    experiment = next((e for e in manager.list() if e.name == DEFAULT_EXPERIMENT), None)
    return tracker.get_variant_comparison(days=days, experiment=experiment)


@router.get("/overview", response_model=Overview, responses=READ_RESPONSES)
def overview(
    tracker: TrackerDep,
    user_id: UserFilter = None,
    variant: VariantFilter = None,
    days: Days = DEFAULT_DAYS,
    tz: TimeZone = "UTC",
    currency: Annotated[
        Currency | None,
        Query(
            description="ISO 4217 code of the revenue figures (e.g. EUR); omitted: the currency "
            "of most purchases in the period"
        ),
    ] = None,
) -> Any:
    """The dashboard's overview of the last `days` whole days in time zone `tz`: searches,
    users, search CTR, click position, zero results, latency, conversion rate and revenue per
    search (in `currency`); per variant and per day; and the conversions and revenue of the
    period per currency, per variant and per day (amounts never added across currencies)."""
    return tracker.get_overview(
        days=days, tz=tz, variant=variant, user_id=user_id, currency=currency
    )


@router.get("/queries", response_model=QueriesReport, responses=READ_RESPONSES)
def top_queries(
    tracker: TrackerDep,
    user_id: UserFilter = None,
    variant: VariantFilter = None,
    days: Days = DEFAULT_DAYS,
    limit: Limit = 20,
    tz: TimeZone = "UTC",
    currency: Annotated[
        Currency | None,
        Query(
            description="ISO 4217 code of the revenue figures (e.g. EUR); omitted: the currency "
            "of most purchases in the period, as in the overview"
        ),
    ] = None,
) -> Any:
    """Top, zero-result and no-click queries with their CTR and click position, the queries
    with the most revenue (in `currency`) and those with the most clicks that led to no
    conversion, and the most clicked products, over the same whole days as the overview."""
    return tracker.get_queries(
        days=days, variant=variant, user_id=user_id, limit=limit, tz=tz, currency=currency
    )


_JUDGMENT_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "format=json: the report; format=csv: one row per (query, product); "
        "format=srw: the OpenSearch Search Relevance Workbench's judgment import",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/judgments",
    # the report (format=json) or the Workbench's import (format=srw)
    response_model=JudgmentsReport | SrwImport,
    responses={**READ_RESPONSES, **_JUDGMENT_FORMATS},
)
def relevance_judgments(
    tracker: TrackerDep,
    user_id: UserFilter = None,
    variant: VariantFilter = None,
    days: Days = DEFAULT_DAYS,
    min_impressions: Annotated[
        int,
        Query(
            ge=1,
            le=1_000_000,
            description="only products shown in at least this many searches for the query",
        ),
    ] = DEFAULT_MIN_IMPRESSIONS,
    max_rank: Annotated[
        int, Query(ge=1, le=MAX_RANK_LIMIT, description="read the results at ranks 1 to this")
    ] = DEFAULT_MAX_RANK,
    model: Annotated[
        Model,
        Query(
            description="coec: clicks over expected clicks; pbm: the position-based model's "
            "attractiveness"
        ),
    ] = "coec",
    fmt: Annotated[
        Format,
        Query(
            alias="format",
            description="json, csv, or srw (the Search Relevance Workbench's IMPORT_JUDGMENT body)",
        ),
    ] = "json",
) -> Any:
    """Implicit relevance judgments: for each (query, product) shown in at least
    `min_impressions` searches with stored results, a score from clicks corrected for position
    bias (COEC or PBM), its interval, and a 0-3 grade."""
    query = JudgmentsQuery(days, model, min_impressions, max_rank, variant, user_id)
    report = tracker.get_judgments(query)
    if fmt == "json":
        return report
    media_type = "text/csv" if fmt == "csv" else "application/json"
    return Response(render(report, fmt), media_type=media_type)


@router.get("/metrics", response_model=MetricsReport)
def metric_registry(tracker: TrackerDep) -> Any:
    """The metric registry (docs/STATISTICS.md): each metric's name, label, definition (x / y),
    unit, direction, whether it is a rate and whether the dashboard shows it. The dashboard
    reads its labels and hover definitions here; /analytics/overview's figures carry every
    metric marked `dashboard`."""
    return tracker.get_metrics()


@router.delete(
    "/reset",
    response_model=ResetReport,
    responses=responses(
        403,
        507,
        _403="Reset is disabled: the server runs without --allow-reset (or the key's "
        "scope, or a cross-site request)",
    ),
)
async def reset(tracker: TrackerDep, settings: SettingsDep) -> Any:
    """Delete every event. Only when the server runs with --allow-reset."""
    if not settings.allow_reset:
        raise HTTPException(
            403,
            detail="reset is disabled on this server: start it with --allow-reset "
            "(or CLICKSTATS_ALLOW_RESET=1) to allow deleting every event",
        )
    return await run_in_threadpool(tracker.reset)
