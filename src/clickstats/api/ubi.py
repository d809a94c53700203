"""POST /ubi_queries and /ubi_events: OpenSearch UBI records as `ubi.js` sends them (a JSON
array, one record per query or event), stored as clickstats events (integrations/ubi.py).

All or nothing, as Algolia's /1/events: 200 when every record is stored (or already was: a
retried record, or a query_id already stored), else 422 naming each bad record's index and
UBI field, and nothing is stored. UBI clients do not read answers (ubi.js ignores them; a
middleware sees the status), so a 200 that had dropped some records would lose them unseen;
a batch sent again after a fix is stored once (the ids are hashed from the records). The
paths are ingestion paths (api/auth.py): ingest key, CORS preflight.
"""

from __future__ import annotations

from typing import Any, Literal, NoReturn

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel

from clickstats.api.auth import AUTH_RESPONSES, Authorized
from clickstats.api.batches import store_batch
from clickstats.api.deps import SettingsDep, TrackerDep, UserHeader
from clickstats.api.errors import STORE_RESPONSES, WRITE_RESPONSES
from clickstats.bots import FromBot
from clickstats.events import MAX_BATCH_EVENTS, BatchResult, Rejection, loads
from clickstats.integrations.ubi import UbiEvent, UbiQuery, one_search_per_query_id, parse_records
from clickstats.settings import Settings
from clickstats.store.base import AnyEvent, AppendStatus
from clickstats.telemetry import UNKNOWN, count_events, count_rejected
from clickstats.tracking import ClickTrackingService

router = APIRouter(
    tags=["ubi"], dependencies=[Authorized], responses={**AUTH_RESPONSES, **STORE_RESPONSES}
)

ANONYMOUS = "anonymous"
SPEC = "https://o19s.github.io/ubi/schema/1.3.0"
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BatchResult, "description": "Every record stored (or already stored)"},
    **WRITE_RESPONSES,
}


def _bad_body(problem: str) -> NoReturn:
    raise HTTPException(422, detail=[{"loc": ["body"], "msg": problem, "type": "value_error"}])


def _bad_records(rejected: list[Rejection], single: bool) -> NoReturn:
    """422: each problem at body, the record's index (none for a single record), its field."""
    detail = []
    for rejection in rejected:
        where: list[str | int] = ["body"] if single else ["body", rejection.index]
        for error in rejection.errors:
            field = error["field"]
            loc = [*where, *field.split(".")] if field else where
            detail.append({"loc": loc, "msg": error["problem"], "type": "value_error"})
    raise HTTPException(422, detail=detail)


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """A pydantic JSON schema with its $defs written in place (OpenAPI has no $defs)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _body_schema(model: type[BaseModel], spec: str) -> dict[str, Any]:
    """The body: an array of records (what ubi.js sends) or one record, as clickstats reads
    them (wider than the spec: nulls, "" ids, epoch timestamps)."""
    generated = model.model_json_schema()
    record = _inline(generated, generated.get("$defs", {}))
    record["description"] = f"{record['description']} Spec: {SPEC}/{spec}"
    array = {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_EVENTS, "items": record}
    schema = {"oneOf": [array, record]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _ingest(
    kind: Literal["query", "event"],
    request: Request,
    tracker: ClickTrackingService,
    settings: Settings,
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
    if rejected:  # the valid records are not stored either, and not counted
        count_rejected(request, ["impression" if kind == "query" else UNKNOWN] * len(rejected))
        _bad_records(rejected, single=isinstance(payload, dict))
    repeats: list[tuple[int, AnyEvent]] = []
    if kind == "query":
        good, repeats = one_search_per_query_id(good)
    stored = await store_batch(request, tracker, good, len(records), from_bot)
    repeated = [kept for _, kept in repeats]
    count_events(request, repeated, [AppendStatus.DUPLICATE] * len(repeated))
    results = stored.results
    for index, kept in repeats:  # another record of the same query_id is the search
        results[index] = {
            "index": index,
            "status": "duplicate",
            "event_id": kept.event_id,
            "search_id": kept.search_id,
        }
    answer = {
        "accepted": stored.accepted,
        "duplicates": stored.duplicates + len(repeats),
        "rejected": 0,
        "results": results,
    }
    return Response(orjson.dumps(answer), media_type="application/json")


@router.post(
    "/ubi_queries",
    response_class=Response,
    responses=_RESPONSES,
    openapi_extra=_body_schema(UbiQuery, "query.request.schema.json"),
)
async def ubi_queries(
    request: Request,
    tracker: TrackerDep,
    settings: SettingsDep,
    from_bot: FromBot,
    x_user_id: UserHeader = None,
) -> Response:
    """Store UBI query records as searches: query_id is the search_id, user_query the query,
    query_response_hit_ids the results shown, user_id (else client_id) the user. One search
    per query_id: a query_id already stored is a duplicate, and of several records of one
    query_id in a request the one with the most hits is kept. All or nothing; 200 means
    committed to disk."""
    return await _ingest("query", request, tracker, settings, from_bot, x_user_id)


@router.post(
    "/ubi_events",
    response_class=Response,
    responses=_RESPONSES,
    openapi_extra=_body_schema(UbiEvent, "event.schema.json"),
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
    an action of that name; one without an object is stored as an action of its name. A
    retried record is a duplicate. All or nothing; 200 means committed to disk."""
    return await _ingest("event", request, tracker, settings, from_bot, x_user_id)
