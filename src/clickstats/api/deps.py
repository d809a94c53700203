"""Named dependencies, so that endpoint signatures stay short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from pydantic import AfterValidator

from clickstats.events import MAX_ID_LENGTH
from clickstats.reports.queries import MAX_LIMIT
from clickstats.settings import Settings
from clickstats.timezones import check_tz
from clickstats.tracking import DEFAULT_DAYS, MAX_DAYS, MIN_DAYS, ClickTrackingService


# Dependencies are `async def` so that FastAPI calls them inline: a plain `def` would cost
# every request a round trip through the thread pool.
async def get_tracker(request: Request) -> ClickTrackingService:
    tracker: ClickTrackingService = request.app.state.tracker
    return tracker


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


TrackerDep = Annotated[ClickTrackingService, Depends(get_tracker)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _utf8_header(value: str | None) -> str | None:
    # Header bytes arrive decoded as latin-1 (HTTP's historical charset), but clients that
    # send non-ASCII (curl, requests, httpx) send UTF-8: "é" would be stored as "Ã©". Undo
    # that; bytes that are no UTF-8 are refused rather than guessed at. (Browsers' fetch
    # refuses such header values outright: a page sends these ids in the body.)
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("is not valid UTF-8; send the user id as UTF-8") from None


UserHeader = Annotated[
    str | None,
    Header(
        alias="X-User-ID",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="user id used when the body has no user_id; UTF-8, at most "
        f"{MAX_ID_LENGTH} bytes",
    ),
    AfterValidator(_utf8_header),
]
Days = Annotated[
    int, Query(ge=MIN_DAYS, le=MAX_DAYS, description="look back this many days from now")
]
UserFilter = Annotated[
    str | None, Query(min_length=1, max_length=MAX_ID_LENGTH, description="only this user")
]
VariantFilter = Annotated[
    str | None, Query(min_length=1, max_length=MAX_ID_LENGTH, description="only this variant")
]
TimeZone = Annotated[
    str,
    Query(max_length=64, description="IANA time zone of the viewer, for day buckets"),
    AfterValidator(check_tz),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per table")]

__all__ = [
    "DEFAULT_DAYS",
    "Days",
    "Limit",
    "SettingsDep",
    "TimeZone",
    "TrackerDep",
    "UserFilter",
    "UserHeader",
    "VariantFilter",
]
