"""/search/text: the reference search, answered by the user's variant and logged as it is shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator

from clickstats.api.auth import AUTH_RESPONSES, Ingest
from clickstats.api.deps import SettingsDep, TrackerDep, UserHeader
from clickstats.api.errors import WRITE_RESPONSES
from clickstats.bots import count_dropped, drops
from clickstats.events import MAX_ID_LENGTH, EventTime, Id, integral, too_old
from clickstats.experiments import ExperimentManager
from clickstats.search.engine import SearchEngine, default_engine
from clickstats.search.serve import EXPERIMENT, Served, serve_search
from clickstats.tracking import ClickTrackingService

# A search logs its impression: ingest, like the event endpoints.
router = APIRouter(
    prefix="/search",
    tags=["search"],
    dependencies=[Ingest],
    responses={**AUTH_RESPONSES, **WRITE_RESPONSES},
)

ANONYMOUS = "anonymous"
MAX_QUERY_LENGTH = 200
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
BLANK = "must contain a word, not only spaces"

QueryText = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_LENGTH)]
Limit = Annotated[
    int,
    Strict(),  # no true, no "5"; 5.0 is 5 (clickstats.events.integral)
    Field(ge=1, le=MAX_LIMIT, description="how many results, 1-50"),
    BeforeValidator(integral),
]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: QueryText
    limit: Limit = DEFAULT_LIMIT
    user_id: Id | None = Field(None, description="else X-User-ID, else anonymous")
    timestamp: EventTime | None = Field(
        None,
        description="when the search happened (replays, simulations), as an event's "
        "timestamp: ISO 8601 or epoch milliseconds, within max_event_age_days; default now",
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(BLANK)
        return value.strip()


class SearchResult(BaseModel):
    rank: int
    product_id: str
    title: str
    brand: str
    category: str
    price: float


class SearchResponse(BaseModel):
    search_id: str
    variant: str
    experiment: str = EXPERIMENT
    query: str
    total: int = Field(description="how many products match the query in all")
    took_ms: float = Field(description="the search's own time, in milliseconds")
    results: list[SearchResult]


async def _engine(request: Request) -> SearchEngine:
    engine: SearchEngine | None = getattr(request.app.state, "search_engine", None)
    if engine is None:  # built on the first search, not at startup (~0.2 s)
        engine = await run_in_threadpool(default_engine)
        request.app.state.search_engine = engine
    return engine


async def _search(
    request: Request,
    tracker: ClickTrackingService,
    user_id: str,
    query: str,
    limit: int,
    timestamp: datetime | None = None,
) -> SearchResponse:
    engine = await _engine(request)
    experiments: ExperimentManager = request.app.state.experiments
    # Never fails because of an experiment: a variant that is no ranker falls back to one.
    served: Served = serve_search(engine, experiments, user_id, query, limit, timestamp)
    if drops(request):  # a crawler still gets its results; its search is not counted
        count_dropped(request.app, 1)
    else:
        await tracker.append([served.impression])
    interleaved = served.impression.teams is not None
    return SearchResponse(
        search_id=served.impression.search_id,
        variant=served.impression.variant,
        # an interleaved search belongs to the interleaving experiment, named by its variant
        experiment=served.impression.variant if interleaved else EXPERIMENT,
        query=query,
        total=served.ranking.total,
        took_ms=served.took_ms,
        results=[
            SearchResult(
                rank=hit.rank,
                product_id=hit.product.id,
                title=hit.product.title,
                brand=hit.product.display_brand,
                category=hit.product.category,
                price=hit.product.price,
            )
            for hit in served.ranking.hits
        ],
    )


@router.post("/text", response_model=SearchResponse)
async def search_text(
    body: SearchRequest,
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    x_user_id: UserHeader = None,
) -> Any:
    """Search the sample catalog with the user's variant; the impression is stored first.

    The user is `user_id`, else `X-User-ID`, else anonymous. The answer's `search_id` and
    `variant` are what the clicks on these results should carry.
    """
    old = body.timestamp and too_old(body.timestamp, settings.max_event_age_days)
    if old:
        raise HTTPException(
            422, detail=[{"loc": ["body", "timestamp"], "msg": old, "type": "value_error"}]
        )
    user = body.user_id or x_user_id or ANONYMOUS
    return await _search(request, tracker, user, body.query, body.limit, body.timestamp)


@router.get("/text", response_model=SearchResponse)
async def search_text_get(
    request: Request,
    tracker: TrackerDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_LENGTH, description="the query")],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    user_id: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_ID_LENGTH, description="else X-User-ID, else anonymous"),
    ] = None,
    x_user_id: UserHeader = None,
) -> Any:
    """`POST /search/text` for links and quick tries: `/search/text?q=red+shoes`."""
    if not q.strip():
        raise HTTPException(
            422, detail=[{"loc": ["query", "q"], "msg": BLANK, "type": "value_error"}]
        )
    user = user_id or x_user_id or ANONYMOUS
    return await _search(request, tracker, user, q.strip(), limit)
