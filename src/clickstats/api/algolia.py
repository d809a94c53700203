"""`POST /1/events`: Algolia Insights events, as `search-insights` sends them to the `host` its
`init` names (docs/INTEGRATIONS.md, "Algolia Insights").

Answers are Algolia's: exactly 200 `{"status": 200, "message": "OK"}` once every event is
stored (the client's XHR path counts nothing else as sent), else `{"status": <4xx>, "message":
...}`. The batch is all or nothing. The credentials are clickstats keys, read from
`X-Algolia-API-Key` too (api/auth.py). The route is left out of /openapi.json: its contract is
Algolia's spec, whose rules across fields (one position per object, ...) no JSON Schema states.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from clickstats.api.auth import Authorized
from clickstats.api.deps import SettingsDep, TrackerDep
from clickstats.bots import FromBot, count_dropped
from clickstats.events import event_time_now, loads
from clickstats.integrations.algolia import MAX_BODY_BYTES, InsightsError, parse_batch
from clickstats.telemetry import UNKNOWN, count_events, count_rejected

#: The route's own body limit, above any max_body_bytes: the handler enforces the smaller of
#: 2 MB and max_body_bytes itself, so that a 413 is Algolia's JSON, not Starlette's text.
_UNLIMITED = 2**62


def answer(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An answer as Algolia's Insights API gives it (EventsResponse: status and message)."""
    body = orjson.dumps({"status": status, "message": message})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in detail)


class AlgoliaRoute(APIRoute):
    """Errors of the route and of its dependencies (keys, origins) in Algolia's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except HTTPException as exc:
                message = _text(exc.detail)
                if exc.status_code == 401:
                    message = (
                        f"Invalid credentials: {message} (here the key may also come as "
                        "X-Algolia-API-Key, a header or a query parameter)"
                    )
                return answer(exc.status_code, message, exc.headers)
            except RequestValidationError as exc:
                return answer(422, _text(exc.errors()))

        return route


router = APIRouter(tags=["algolia"], dependencies=[Authorized], route_class=AlgoliaRoute)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InsightsError(413, "Request Entity Too Large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise InsightsError(413, "Request Entity Too Large")
    return bytes(body)


@router.post("/1/events", include_in_schema=False, max_body_size=_UNLIMITED)
async def push_events(
    request: Request, tracker: TrackerDep, settings: SettingsDep, from_bot: FromBot
) -> Response:
    """Store a batch of 1 to 1,000 Algolia events, all of them or none.

    The body is JSON whatever its Content-Type (`sendBeacon` sends text/plain). 200 means
    every event is stored (a batch sent again is stored once: its event ids derive from its
    events); 422 names the first invalid event (from 0) and its field, and nothing is stored.
    A known crawler's events are answered 200 and dropped, as on /analytics/events.
    """
    try:
        body = await _body(request, min(MAX_BODY_BYTES, settings.max_body_bytes))
        try:
            payload = loads(body)
        except ValueError as exc:
            raise InsightsError(400, f"Bad Request: the body is not valid JSON: {exc}") from None
        events = parse_batch(
            payload, received_at=event_time_now(), max_age_days=settings.max_event_age_days
        )
    except InsightsError as exc:
        if exc.status == 422:  # the answer names one invalid event; the rest are not stored
            count_rejected(request, [UNKNOWN])
        return answer(exc.status, exc.message)
    if from_bot:
        count_dropped(request.app, len(events))
        count_events(request, events, [None] * len(events))
    else:
        count_events(request, events, await tracker.append(events))
    return answer(200, "OK")
