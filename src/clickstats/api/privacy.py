"""DELETE /analytics/users/{user_id}: erase one user's events (an admin operation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from clickstats.api.auth import AUTH_RESPONSES, Admin
from clickstats.api.deps import TrackerDep
from clickstats.api.errors import WRITE_RESPONSES
from clickstats.events import MAX_ID_LENGTH
from clickstats.privacy import UserDeletion

router = APIRouter(
    prefix="/analytics",
    tags=["privacy"],
    dependencies=[Admin],
    responses={
        **AUTH_RESPONSES,
        **WRITE_RESPONSES,
        422: {"description": "The user id is empty or longer than 128 characters"},
    },
)


class _AnyText(Convertor[str]):
    """`:path`, and a line break too (Starlette's `.*` stops at one; an id may hold one)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", _AnyText())

# `:anytext` so that every stored user id can be named: ids may hold a slash (sent as %2F) or a
# line break, and an empty id reaches the handler, to be refused with a 422 naming the field.
UserId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, description="the user whose events go"),
]


@router.delete("/users/{user_id:anytext}", response_model=UserDeletion)
async def delete_user(user_id: UserId, tracker: TrackerDep) -> Any:
    """Delete every click and impression of one user, wherever they were counted (200 with
    zeros when the user has none). Needs an admin key when keys are on. Clicks that other
    users made on this user's searches stay, no longer linked to a search."""
    return await run_in_threadpool(tracker.delete_user, user_id)
