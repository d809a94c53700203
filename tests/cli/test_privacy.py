"""clickstats delete-user and clickstats prune as a user runs them, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from clickstats import ClickEvent, SearchImpression
from clickstats.cli import main
from clickstats.events import MAX_ID_LENGTH, event_time_now
from clickstats.store import open_store
from clickstats.store.base import AppendStatus
from tests.conftest import BACKENDS, store_url

NOW = event_time_now()


def imp(event_id: str, user: str, age: timedelta) -> SearchImpression:
    return SearchImpression(
        event_id=event_id, search_id=event_id, user_id=user, query="q", results_count=3,
        timestamp=NOW - age,
    )  # fmt: skip


def clk(event_id: str, user: str, search_id: str, age: timedelta) -> ClickEvent:
    return ClickEvent(
        event_id=event_id, search_id=search_id, user_id=user, product_id="p", rank=1,
        timestamp=NOW - age,
    )  # fmt: skip


DAY = timedelta(days=1)
EVENTS = [
    imp("a1", "alice", 1 * DAY), imp("a2", "alice", 40 * DAY), clk("ac", "alice", "a1", 1 * DAY),
    imp("b1", "bob", 2 * DAY), clk("bc", "bob", "b1", 50 * DAY),
]  # fmt: skip


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as url:
        store = open_store(url)
        store.open()
        assert store.append_sync(EVENTS) == [AppendStatus.ACCEPTED] * len(EVENTS)
        store.close()
        yield url


def stored_ids(url: str) -> set[str]:
    store = open_store(url)
    store.open()
    try:
        return {row["event_id"] for batch in store.export() for row in batch}
    finally:
        store.close()


def test_delete_user_prints_the_counts_and_leaves_others(url: str) -> None:
    result = CliRunner().invoke(main, ["delete-user", "alice", "--store", url])
    assert result.exit_code == 0, result.output
    assert result.output == "deleted user 'alice': 3 events (2 impressions, 1 click)\n"
    assert stored_ids(url) == {"b1", "bc"}
    again = CliRunner().invoke(main, ["delete-user", "alice", "--store", url])
    assert again.output == "deleted user 'alice': 0 events (0 impressions, 0 clicks)\n"


def test_delete_user_refuses_a_too_long_id(url: str) -> None:
    result = CliRunner().invoke(main, ["delete-user", "x" * (MAX_ID_LENGTH + 1), "--store", url])
    assert result.exit_code == 2
    assert f"must be 1 to {MAX_ID_LENGTH} characters" in result.output
    assert len(stored_ids(url)) == len(EVENTS)


def test_prune_deletes_the_events_older_than_the_retention(url: str) -> None:
    result = CliRunner().invoke(main, ["prune", "--retention-days", "30", "--store", url])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deleted 2 events (1 impression, 1 click) older than 30 days")
    assert stored_ids(url) == {"a1", "ac", "b1"}


@pytest.mark.parametrize("command", ["prune", "serve"])
def test_a_retention_under_one_day_is_refused(command: str, tmp_path: Path) -> None:
    store = f"duckdb:///{tmp_path}/x.duckdb"
    result = CliRunner().invoke(main, [command, "--retention-days", "0", "--store", store])
    assert result.exit_code == 2
    assert "--retention-days" in result.output and ">=1" in result.output


@pytest.mark.parametrize("command", ["delete-user", "prune"])
def test_every_option_is_documented(command: str) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "CLI.md").read_text()
    assert f"clickstats {command}" in doc
    for param in main.commands[command].params:
        for flag in param.opts:
            if flag.startswith("--"):
                assert flag in doc, f"docs/CLI.md does not mention {command} {flag}"
