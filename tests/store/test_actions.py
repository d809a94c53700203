"""The backend contract for actions (views and any other named action): stored once, exported
as sent, counted by name, deleted with their user."""

from __future__ import annotations

from datetime import timedelta

from clickstats.events import ActionEvent, SearchImpression, event_time_now
from clickstats.store import EventStore
from clickstats.store.base import ActionTotal, AppendStatus, Deleted, Filters

NOW = event_time_now()
DAY = timedelta(days=1)
WEEK = Filters(since=NOW - 7 * DAY)


def action(event_id: str, user: str, name: str, age: timedelta, **fields: object) -> ActionEvent:
    return ActionEvent.model_validate(
        {"event_id": event_id, "user_id": user, "name": name, "timestamp": NOW - age, **fields}
    )


EVENTS = [
    SearchImpression(event_id="s1", search_id="q1", user_id="u1", query="tv", variant="v1",
                     timestamp=NOW - DAY),
    SearchImpression(event_id="s2", search_id="q2", user_id="u2", query="tv", variant="v2",
                     timestamp=NOW - DAY),
    action("a1", "u1", "view", DAY, product_ids=["p1", "p2"], search_id="q1"),
    action("a2", "u1", "view", DAY, product_ids=["p2"]),
    action("a3", "u2", "view", DAY, product_ids=["p3"], search_id="q2"),
    action("a4", "u2", "hover", DAY, product_ids=["p1"], position=3, search_id="q2",
           search_query="tv", message="hovered 2 s"),
    action("a5", "u3", "share", 2 * DAY),
    action("a6", "u3", "view", 10 * DAY, product_ids=["p9"]),  # outside the week
]  # fmt: skip


def test_actions_are_stored_once_and_counted_by_name(store: EventStore) -> None:
    assert store.append_sync(EVENTS) == [AppendStatus.ACCEPTED] * len(EVENTS)
    assert store.append_sync(EVENTS[2:4]) == [AppendStatus.DUPLICATE] * 2
    assert store.action_totals(WEEK) == [
        ActionTotal("view", events=3, users=2, products=3),
        ActionTotal("hover", events=1, users=1, products=1),
        ActionTotal("share", events=1, users=1, products=0),
    ]
    month = Filters(since=NOW - 30 * DAY)
    assert store.action_totals(month)[0] == ActionTotal("view", 4, 3, 4)
    assert store.action_totals(Filters(since=WEEK.since, user_id="u2")) == [
        ActionTotal("hover", 1, 1, 1),
        ActionTotal("view", 1, 1, 1),
    ]
    # A variant: the actions whose search is of that variant.
    assert store.action_totals(Filters(since=WEEK.since, variant="v1")) == [
        ActionTotal("view", 1, 1, 2)
    ]
    assert store.action_totals(Filters(since=NOW + DAY)) == []


def test_actions_export_as_sent_and_go_with_their_user(store: EventStore) -> None:
    store.append_sync(EVENTS)
    rows = [r for batch in store.export() for r in batch if r["type"] == "action"]
    by_id = {r["event_id"]: r for r in rows}
    assert set(by_id) == {"a1", "a2", "a3", "a4", "a5", "a6"}
    a4 = by_id["a4"]
    assert (a4["name"], a4["product_ids"], a4["position"], a4["search_id"]) == (
        "hover", ["p1"], 3, "q2",
    )  # fmt: skip
    assert (a4["search_query"], a4["message"], a4["timestamp"]) == ("tv", "hovered 2 s", NOW - DAY)
    assert by_id["a5"]["product_ids"] is None and by_id["a5"]["position"] is None
    assert store.delete_user("u3") == Deleted(actions=2)
    assert store.delete_user("u1") == Deleted(impressions=1, actions=2)
    assert [t.name for t in store.action_totals(WEEK)] == ["hover", "view"]
    assert store.reset() == Deleted(impressions=1, actions=2)
