"""GET /analytics/export: the file `clickstats export` writes, streamed batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from clickstats.api.auth import AUTH_RESPONSES, Authorized
from clickstats.api.deps import TrackerDep
from clickstats.api.errors import STORE_RESPONSES
from clickstats.transfer import ExportFormat, export_stream, parse_since

# A GET: a read key (api/auth.py), as every report.
router = APIRouter(
    prefix="/analytics",
    tags=["analytics"],
    dependencies=[Authorized],
    responses={**AUTH_RESPONSES, **STORE_RESPONSES},
)

#: What each format is sent as, and the name it is saved under.
MEDIA_TYPES: dict[ExportFormat, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "ubi": "application/x-ndjson",
}
FILENAMES: dict[ExportFormat, str] = {
    "jsonl": "clickstats-events.jsonl",
    "csv": "clickstats-events.csv",
    "parquet": "clickstats-events.parquet",
    "ubi": "clickstats-ubi.ndjson",
}
#: Rows read from the store per piece sent (and per Parquet row group).
BATCH_ROWS = 10_000

_TEXT = {"schema": {"type": "string"}}
_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export file, streamed: format=jsonl (one event per line) or ubi "
        "(OpenSearch _bulk NDJSON) as application/x-ndjson, csv as text/csv, parquet as "
        "application/vnd.apache.parquet; the columns of docs/CLI.md",
        "content": {
            "application/x-ndjson": _TEXT,
            "text/csv": _TEXT,
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError as exc:
        error = {"type": "value_error", "loc": ("query", "since"), "msg": str(exc), "input": text}
        raise RequestValidationError([error]) from None


@router.get("/export", response_class=StreamingResponse, responses=_FILE)
async def export(
    tracker: TrackerDep,
    fmt: Annotated[
        ExportFormat,
        Query(
            alias="format",
            description="jsonl, csv, parquet, or ubi (OpenSearch UBI _bulk NDJSON)",
        ),
    ] = "jsonl",
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="only events at or after this: 2026-11-01, 2026-11-01T08:00 (UTC "
            "unless it has an offset), or 7d / 12h / 2w ago; omitted: every event",
        ),
    ] = None,
) -> Any:
    """Every stored event (at or after `since`) as the file `clickstats export` writes, sent
    as it is read: a batch of rows at a time, never the whole store in memory."""
    pieces = export_stream(tracker.export_events(_since(since), BATCH_ROWS), fmt)
    # The first piece is read before answering, so that an unreachable store is a 503, not a
    # 200 cut short; the rest is read in the thread pool as the client takes it.
    first = await run_in_threadpool(next, pieces, b"")

    def rest() -> Iterator[bytes]:
        yield first
        yield from pieces

    return StreamingResponse(
        rest(),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{FILENAMES[fmt]}"'},
    )
