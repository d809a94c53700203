"""POST /ubi_queries and /ubi_events: OpenSearch UBI records as `ubi.js` sends them (a JSON
array, one record per query or event), stored as clickstats events (integrations/ubi.py).

Answered record by record, as /analytics/events is: each record is stored, a duplicate (a
retried POST: the same record, or a query_id already stored), or rejected with the UBI field
at fault; 200 when anything was stored (or already was), 422 when every record was rejected.
ubi.js ignores the answer; a middleware that retries on 4xx gets one only when nothing was
stored. The paths are ingestion paths (api/auth.py): ingest key, CORS preflight.
"""

from __future__ import annotations

from typing import Any, Literal, NoReturn

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from clickstats.api.auth import AUTH_RESPONSES, Authorized
from clickstats.api.deps import SettingsDep, TrackerDep, UserHeader
from clickstats.api.errors import STORE_RESPONSES, WRITE_RESPONSES
from clickstats.bots import FromBot, count_dropped
from clickstats.events import MAX_BATCH_EVENTS, BatchResult, SearchImpression, loads
from clickstats.integrations.ubi import one_search_per_query_id, parse_records
from clickstats.store.base import AnyEvent, AppendStatus

router = APIRouter(
    tags=["ubi"], dependencies=[Authorized], responses={**AUTH_RESPONSES, **STORE_RESPONSES}
)

ANONYMOUS = "anonymous"


def _bad_body(problem: str) -> NoReturn:
    raise HTTPException(422, detail=[{"loc": ["body"], "msg": problem, "type": "value_error"}])


def _responses(kind: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"model": BatchResult},
        422: {
            "description": f"Every {kind} record was rejected (a BatchResult), or the body "
            "is no JSON array"
        },
        **WRITE_RESPONSES,
    }


def _body_schema(schema_url: str) -> dict[str, Any]:
    records = {"type": "object", "description": f"a UBI 1.3.0 record ({schema_url})"}
    schema = {
        "oneOf": [
            {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_EVENTS, "items": records},
            records,
        ]
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _ingest(
    kind: Literal["query", "event"],
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: bool,
    x_user_id: str | None,
) -> Response:
    try:
        payload = loads(await request.body())
    except ValueError as exc:
        _bad_body(f"body is not valid JSON: {exc}")
    if not isinstance(payload, list | dict):
        _bad_body(f"body must be a JSON array of UBI {kind} records (or one record)")
    records: list[Any] = payload if isinstance(payload, list) else [payload]
    if not records:
        _bad_body(f"is empty: send at least one {kind} record")
    if len(records) > MAX_BATCH_EVENTS:
        _bad_body(f"has {len(records)} records; at most {MAX_BATCH_EVENTS} per request")

    good, rejected = parse_records(
        kind, records, x_user_id or ANONYMOUS, max_age_days=settings.max_event_age_days
    )
    repeats: list[tuple[int, AnyEvent]] = []
    if kind == "query":
        good, repeats = one_search_per_query_id(good)
    events: list[AnyEvent] = [event for _, event in good]
    statuses: list[AppendStatus | None] = [None] * len(events)  # None: a crawler's, dropped
    if from_bot:
        count_dropped(request.app, len(events))
    else:
        statuses[:] = await tracker.append(events)

    results: list[dict[str, Any]] = [{} for _ in records]
    for (index, event), status in zip(good, statuses, strict=True):
        result: dict[str, Any] = {
            "index": index,
            "status": status.value if status is not None else "dropped_bot",
            "event_id": event.event_id,
        }
        if isinstance(event, SearchImpression):
            result["search_id"] = event.search_id
        results[index] = result
    for index, kept in repeats:  # another record of the same query_id is the search
        results[index] = {
            "index": index,
            "status": "duplicate",
            "event_id": kept.event_id,
            "search_id": kept.search_id,
        }
    for rejection in rejected:
        results[rejection.index] = {
            "index": rejection.index,
            "status": "rejected",
            "errors": rejection.errors,
        }
    answer = {
        "accepted": sum(1 for s in statuses if s is AppendStatus.ACCEPTED),
        "duplicates": sum(1 for s in statuses if s is AppendStatus.DUPLICATE) + len(repeats),
        "rejected": len(rejected),
        "results": results,
    }
    return Response(
        orjson.dumps(answer), status_code=422 if not good else 200, media_type="application/json"
    )


@router.post(
    "/ubi_queries",
    response_class=Response,
    responses=_responses("query"),
    openapi_extra=_body_schema("https://o19s.github.io/ubi/schema/1.3.0/query.request.schema.json"),
)
async def ubi_queries(
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store UBI query records as searches: query_id is the search_id, user_query the query,
    query_response_hit_ids the results shown, user_id (else client_id) the user. A query_id
    already stored is a duplicate. 200 means committed to disk."""
    return await _ingest("query", request, tracker, settings, from_bot, x_user_id)


@router.post(
    "/ubi_events",
    response_class=Response,
    responses=_responses("event"),
    openapi_extra=_body_schema("https://o19s.github.io/ubi/schema/1.3.0/event.schema.json"),
)
async def ubi_events(
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store UBI event records: click -> a click (rank = ordinal + 1: UBI ordinals are
    0-based), add_to_cart / purchase -> a conversion, impression and any other action_name ->
    an action of that name. One without an object is stored as an action of its name. A
    retried record is a duplicate. 200 means committed to disk."""
    return await _ingest("event", request, tracker, settings, from_bot, x_user_id)
