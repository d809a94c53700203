"""The browser side: the click tracker script and the demo search page that uses it."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, HTTPException, Response

router = APIRouter(tags=["web"])

JAVASCRIPT = "application/javascript; charset=utf-8"
#: The tracker's URL carries no version, so caches must come back for a new one soon.
TRACKER_CACHE = "public, max-age=300"
DEMO_ASSETS = {"demo.js": JAVASCRIPT, "demo.css": "text/css; charset=utf-8"}


@cache
def asset(name: str) -> bytes:
    """A file of src/clickstats/web/, as shipped in the package (package-data)."""
    return files("clickstats").joinpath("web", name).read_bytes()


@router.get("/analytics/tracker.js", response_class=Response)
def tracker_js() -> Response:
    """The dependency-free click tracker for search pages (docs/TRACKER.md)."""
    return Response(
        asset("tracker.js"), media_type=JAVASCRIPT, headers={"Cache-Control": TRACKER_CACHE}
    )


@router.get("/demo", response_class=Response)
def demo() -> Response:
    """A demo search page: search, click a result, watch /analytics/ctr move."""
    return Response(
        asset("demo.html"),
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/demo/{name}", response_class=Response, include_in_schema=False)
def demo_asset(name: str) -> Response:
    if name not in DEMO_ASSETS:
        raise HTTPException(404, detail=f"no demo file {name!r}; there are {sorted(DEMO_ASSETS)}")
    return Response(
        asset(name), media_type=DEMO_ASSETS[name], headers={"Cache-Control": "no-cache"}
    )
