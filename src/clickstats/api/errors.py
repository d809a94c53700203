"""Error answers: a bad request is a 4xx naming the field, never a 500; and the OpenAPI schema
lists every status an operation can answer (tests/api/test_schema.py checks both).

FastAPI's own 422 echoes each error's input, and renders it with `allow_nan=False` and UTF-8:
a NaN, an Infinity, a 1e400 (all read by json.loads) or a lone surrogate ("\\ud800") in the
input made the 422 itself fail, a 500. Here the input is kept only when it can be rendered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from clickstats.api.auth import Problem
from clickstats.limits import BODILESS, EXEMPT_PATHS, EXEMPT_PREFIXES
from clickstats.store.base import ReadTimeout, without_paths


class ReadTimeoutProblem(BaseModel):
    """A 504: the read took longer than the server's limit."""

    detail: str
    read_timeout_s: float = Field(description="the server's read time limit, in seconds")


#: Why an operation answers each status; `responses()` puts them in the OpenAPI schema.
DESCRIPTIONS = {
    400: "The body cannot be read as JSON (not UTF-8, or nested too deep)",
    403: "Refused by the server's configuration",
    404: "No such experiment",
    408: "The request body did not arrive within body_timeout seconds",
    409: "The experiment is not of the kind this endpoint reads",
    413: "The body is larger than max_body_bytes",
    429: "Too many requests from this address or key: retry after Retry-After seconds",
    503: "The store (or the state kept beside it) cannot be reached or written",
    504: "The query took longer than the read time limit (read_timeout_s) and was stopped: "
    "ask for fewer days, or raise the limit",
    507: "The disk is full: nothing was written (reads go on)",
}


def responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: these statuses, as {"detail": "..."} with the usual reason,
    or the one given as `_409="..."`."""
    return {
        code: {"model": Problem, "description": descriptions.get(f"_{code}", DESCRIPTIONS[code])}
        for code in codes
    }


#: Every endpoint that reads or writes the store (or the state beside it).
STORE_RESPONSES = responses(503)
#: ... and writes to it.
WRITE_RESPONSES = responses(503, 507)
#: ... reads an aggregate from it, within the read time limit (504 past it).
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    504: {"model": ReadTimeoutProblem, "description": DESCRIPTIONS[504]}
}


async def read_timeout(request: Request, exc: Exception) -> JSONResponse:
    """504 naming the limit: the read was stopped (a subclass of StoreError, answered before
    the 503 of an unreachable store)."""
    assert isinstance(exc, ReadTimeout)
    body = ReadTimeoutProblem(detail=without_paths(str(exc)), read_timeout_s=exc.limit_s)
    return JSONResponse(body.model_dump(), status_code=504)


# -- 422: safe to render ------------------------------------------------------------------------


def _text(value: str) -> str:
    """`value` as UTF-8 can carry it: a lone surrogate becomes the text `\\ud800`."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _renderable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # NaN/inf, surrogates, objects, depth
        return False
    return True


def _error(error: dict[str, Any]) -> dict[str, Any]:
    """One error as FastAPI shows it (loc, msg, type, input, ctx), but always renderable: the
    input is left out when it cannot be rendered, other values are rendered as text."""
    shown: dict[str, Any] = {
        "type": error["type"],
        "loc": [_text(part) if isinstance(part, str) else part for part in error["loc"]],
        "msg": _text(str(error["msg"])),
    }
    if "input" in error and _renderable(error["input"]):
        shown["input"] = error["input"]
    if error.get("ctx"):
        shown["ctx"] = {
            key: value if _renderable(value) else _text(str(value))
            for key, value in error["ctx"].items()
        }
    return shown


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with each error's location (the field) and problem; never fails to render."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [_error(e) for e in exc.errors()]}, status_code=422)


# -- a query parameter given twice ---------------------------------------------------------------


async def single_query_values(request: Request) -> None:
    """A dependency of every route: 422 for a query parameter of the operation given more than
    once. Each takes one value, and FastAPI would silently use the last (`?days=1&days=365`):
    the client meant something else. Parameters the operation does not have are ignored.
    """
    params = request.query_params
    if len(params) == len(params.multi_items()):  # len() counts names, not values
        return
    path = getattr(request.scope.get("route"), "path_format", None)
    operation = request.app.openapi().get("paths", {}).get(path, {})
    declared = operation.get(request.method.lower(), {}).get("parameters", [])
    names = [p["name"] for p in declared if p.get("in") == "query"]
    errors = [
        {
            "type": "value_error",
            "loc": ("query", name),
            "msg": "is given more than once; give it once",
            "input": params.getlist(name),
        }
        for name in names
        if len(params.getlist(name)) > 1
    ]
    if errors:
        raise RequestValidationError(errors)


#: For `FastAPI(dependencies=[...])`.
SingleQueryValues = Depends(single_query_values)


# -- 405: Allow lists every method of the path ----------------------------------------------------


#: The methods a 405's Allow header may name.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 whose Allow header lists the methods of every route on the path.

    Starlette names only the methods of the first route whose path matches, and GET and POST
    /experiments are two routes: each method is tried against every route instead.
    """
    assert isinstance(exc, StarletteHTTPException)
    allowed = {m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()}
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.add(method)
    allow = ", ".join(sorted(allowed))
    return JSONResponse(
        {"detail": f"{request.method} is not allowed here; allowed: {allow}"},
        status_code=405,
        headers={"Allow": allow},
    )


# -- the statuses that middleware and body parsing add to every operation -----------------------


def _common(path: str, method: str, operation: dict[str, Any]) -> Iterator[int]:
    """The statuses an operation can answer that no route declares, because no route
    causes them: middleware's and body parsing's."""
    if path not in EXEMPT_PATHS and not path.startswith(EXEMPT_PREFIXES):
        yield 429  # clickstats.limits.RateLimit
    if method.upper() not in BODILESS:
        yield 408  # clickstats.limits.BodyTimeout
    content = operation.get("requestBody", {}).get("content", {})
    if content:
        yield 413  # max_body_bytes
    if list(content) == ["application/json"]:
        # FastAPI parses these; a body it cannot read (not UTF-8, nested too deep) is a 400.
        # POST /analytics/events (which takes text/plain too) reads its own: a 422.
        yield 400


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema with the common statuses added to each operation (built once)."""
    schema = app.openapi_schema
    if schema is None:
        schema = FastAPI.openapi(app)  # kept in app.openapi_schema, so this runs once
        problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                answers = operation.setdefault("responses", {})
                for code in _common(path, method, operation):
                    answers.setdefault(
                        str(code), {"description": DESCRIPTIONS[code], "content": problem}
                    )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema())
    return schema


def install(app: FastAPI) -> None:
    """The 422, 405 and 504 answers above, and the complete list of statuses in /openapi.json."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ReadTimeout, read_timeout)  # before StoreError's 503 (its base)
    app.add_exception_handler(405, method_not_allowed)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
