"""Export and import: every format on every backend gives back the same events and the same
metrics; re-imports are idempotent; bad rows are rejected with the field and the problem."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from clickstats.cli import main
from clickstats.events import (
    ActionEvent,
    ClickEvent,
    ClickSource,
    ConversionEvent,
    SearchImpression,
    to_millis,
    utcnow,
)
from clickstats.experiments import (
    Experiment,
    ExperimentManager,
    ExperimentType,
    default_experiments,
)
from clickstats.search import default_catalog, default_engine
from clickstats.simulate import InProcess, simulate
from clickstats.store import EventStore, open_store
from clickstats.store.base import AnyEvent
from clickstats.tracking import ClickTrackingService
from clickstats.transfer import (
    COLUMNS,
    FORMATS,
    Format,
    TransferError,
    export_file,
    import_file,
    parse_since,
)
from tests.conftest import BACKENDS, store_url

#: Small on purpose: mongomock's $lookup is quadratic, and every metric is computed ~5 times.
USERS, SEARCHES, SPREAD_DAYS = 200, 200, 20
WINDOWS = (30, 365)
INTERLEAVED = Experiment(
    name="ranker_ab",
    type=ExperimentType.INTERLEAVING,
    variants={"ranker_a": 1.0, "ranker_b": 1.0},
)


def edge_cases(now: datetime) -> list[AnyEvent]:
    """What simulated traffic lacks: nulls, lists, teams, unicode, floats that need every digit."""
    at = [to_millis(now - timedelta(hours=h, milliseconds=7 * h)) for h in range(1, 12)]
    return [
        SearchImpression(
            event_id="edge-unicode",
            search_id="s-unicode",
            user_id="edge-user",
            session_id=None,
            query='café ☕ 東京, "quoted"; new\nline',
            results_count=3,
            response_time_ms=0.1 + 0.2,  # 0.30000000000000004
            results=["p-1", "p-ü", "p,3"],
            timestamp=at[0],
        ),
        SearchImpression(
            event_id="edge-zero",
            user_id="edge-user",
            session_id="sess-1",
            query="nothing matches this",
            results_count=0,
            response_time_ms=None,
            results=[],
            timestamp=at[1],
        ),
        SearchImpression(
            event_id="edge-empty-query",
            user_id="edge-user-2",
            query="",
            response_time_ms=1e-7,
            timestamp=at[2],
        ),
        SearchImpression(
            event_id="edge-interleaved",
            search_id="s-teams",
            user_id="edge-user-2",
            variant=INTERLEAVED.name,
            query="shoes",
            results_count=4,
            response_time_ms=123.456789012345,
            results=["a1", "b1", "a2", "b2"],
            teams=["A", "B", "B", "A"],
            timestamp=at[3],
        ),
        ClickEvent(
            event_id="edge-click-teams",
            search_id="s-teams",
            user_id="edge-user-2",
            variant=INTERLEAVED.name,
            product_id="b1",
            rank=2,
            search_query="shoes",
            timestamp=at[4],
        ),
        ClickEvent(
            event_id="edge-click-unicode",
            search_id="s-unicode",
            user_id="edge-user",
            product_id="p-ü",
            rank=2,
            search_query='café ☕ 東京, "quoted"; new\nline',
            response_time_ms=2.5e-5,
            timestamp=at[5],
        ),
        ClickEvent(
            event_id="edge-click-orphan",
            user_id="edge-user",
            session_id="sess-1",
            product_id="rec-9",
            rank=7,
            source=ClickSource.RECOMMENDATIONS,
            timestamp=at[6],
        ),
    ]


def exported(store: EventStore) -> list[dict[str, Any]]:
    """Every stored event, rebuilt by its model, in a backend-independent order."""
    models = {
        "impression": SearchImpression,
        "click": ClickEvent,
        "conversion": ConversionEvent,
        "action": ActionEvent,
    }
    rows = [row for batch in store.export(batch_rows=97) for row in batch]
    events = [models[row["type"]].model_validate(row).model_dump() for row in rows]
    return sorted(events, key=lambda e: (e["type"], e["event_id"]))


def metrics(store: EventStore, users: list[str]) -> dict[str, Any]:
    """Every report the service answers, as plain dicts, over each window."""
    service = ClickTrackingService(store)
    ab = default_experiments()[0]
    out: dict[str, Any] = {}
    for days in WINDOWS:
        overview = service.get_overview(days=days).model_dump()
        del overview["until"]  # the time of the call, not a figure of the data
        out[f"{days}d"] = {
            "ctr": service.get_ctr(days=days).model_dump(),
            "ctr_v2": service.get_ctr(days=days, variant="search_v2").model_dump(),
            "ranks": service.get_rank_metrics(days=days).model_dump(),
            "response_time": service.get_response_time_metrics(days=days).model_dump(),
            "users": {u: service.get_user_summary(u, days=days).model_dump() for u in users},
            "variants": service.get_variant_comparison(days=days).model_dump(),
            "experiment": service.get_experiment_results(ab, days=days),
            "interleaving": service.get_interleaving_results(INTERLEAVED, days=days),
            "overview": overview,
            "queries": service.get_queries(days=days).model_dump(),
        }
    return out


#: Float sums depend on the order rows are added in, and an import cannot add them in the order
#: they were first stored: sums of floats (mean response time, MRR's 1/rank) may differ in the
#: last bits. Nothing else may differ at all.
FLOAT_SUM_REL_TOL = 1e-12


def differences(actual: Any, expected: Any, path: str = "") -> list[str]:
    """Where two reports differ: anything but a float beyond the last bits of a sum."""
    if isinstance(actual, BaseModel) and isinstance(expected, BaseModel):
        return differences(actual.model_dump(), expected.model_dump(), path)
    if dataclasses.is_dataclass(actual) and dataclasses.is_dataclass(expected):
        return differences(dataclasses.asdict(actual), dataclasses.asdict(expected), path)  # type: ignore[arg-type]
    if isinstance(actual, dict) and isinstance(expected, dict):
        if list(actual) != list(expected):
            return [f"{path}: keys {list(actual)} != {list(expected)}"]
        return [d for k in actual for d in differences(actual[k], expected[k], f"{path}.{k}")]
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        if len(actual) != len(expected):
            return [f"{path}: {len(actual)} items != {len(expected)}"]
        pairs = zip(actual, expected, strict=True)
        return [d for n, (a, e) in enumerate(pairs) for d in differences(a, e, f"{path}[{n}]")]
    if isinstance(actual, float) and isinstance(expected, float):
        if math.isclose(actual, expected, rel_tol=FLOAT_SUM_REL_TOL, abs_tol=1e-300):
            return []
    elif type(actual) is type(expected) and actual == expected:
        return []
    return [f"{path}: {actual!r} != {expected!r}"]


@dataclass(frozen=True)
class Filled:
    backend: str
    store: EventStore
    events: list[dict[str, Any]]
    metrics: dict[str, Any]
    users: list[str]


@pytest.fixture(scope="module", params=BACKENDS)
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    """A store with simulated traffic and the edge cases, and what it answers (once per backend)."""
    with store_url(request.param, tmp_path_factory.mktemp("source")) as url:
        store = open_store(url)
        store.open()
        try:
            backend = InProcess(store, ExperimentManager(None), default_engine())
            simulate(backend, default_catalog(), users=USERS, searches=SEARCHES, days=SPREAD_DAYS)
            store.append_sync(edge_cases(utcnow()))
            events = exported(store)
            simulated = sorted({e["user_id"] for e in events if e["user_id"].startswith("sim")})
            users = [*simulated[:3], "edge-user", "edge-user-2"]
            yield Filled(request.param, store, events, metrics(store, users), users)
        finally:
            store.close()


@contextmanager
def empty_store(backend: str, tmp_path: Path) -> Iterator[EventStore]:
    with store_url(backend, tmp_path) as url:
        store = open_store(url)
        store.open()
        try:
            yield store
        finally:
            store.close()


def round_trip(source: Filled, target: EventStore, path: Path, fmt: Format) -> None:
    summary = export_file(source.store, path, fmt)
    assert summary.events == len(source.events)
    result = import_file(target, path)
    assert (result.read, result.imported, result.duplicates, result.rejected) == (
        len(source.events), len(source.events), 0, 0,
    )  # fmt: skip
    assert exported(target) == source.events  # every event, every field, exactly
    assert differences(metrics(target, source.users), source.metrics) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_into_an_empty_store_reproduces_every_metric(
    filled: Filled, fmt: Format, tmp_path: Path
) -> None:
    assert filled.metrics["365d"]["ctr"]["total_impressions"] >= SEARCHES
    with empty_store(filled.backend, tmp_path) as target:
        round_trip(filled, target, tmp_path / f"events.{fmt}", fmt)
        # The same file again: nothing new, everything already present.
        again = import_file(target, tmp_path / f"events.{fmt}")
        assert (again.imported, again.duplicates, again.rejected) == (0, len(filled.events), 0)
        assert exported(target) == filled.events


def test_export_from_one_backend_imports_into_the_other(filled: Filled, tmp_path: Path) -> None:
    other = next(b for b in ("duckdb", "mongomock") if b != filled.backend)
    with empty_store(other, tmp_path) as target:
        round_trip(filled, target, tmp_path / "events.parquet", "parquet")


def test_the_files_hold_one_table_with_the_documented_columns(
    filled: Filled, tmp_path: Path
) -> None:
    for fmt in FORMATS:
        export_file(filled.store, tmp_path / f"e.{fmt}", fmt)
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.column_names == list(COLUMNS)
    types = {f.name: str(f.type) for f in table.schema}
    assert types["timestamp"] == "timestamp[ms, tz=UTC]"
    assert types["results"] == types["teams"] == "list<element: string>"
    assert (types["rank"], types["response_time_ms"]) == ("int64", "double")
    header = (tmp_path / "e.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(COLUMNS)
    lines = (tmp_path / "e.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])  # impressions first, only their own fields
    assert first["type"] == "impression" and "product_id" not in first
    assert first["timestamp"].endswith("Z") and len(first["timestamp"]) == 24
    clicks = [json.loads(line) for line in lines if '"type":"click"' in line]
    assert clicks and all("query" not in c and "rank" in c for c in clicks)


def test_export_since_keeps_only_later_events(filled: Filled, tmp_path: Path) -> None:
    since = utcnow() - timedelta(days=2)
    summary = export_file(filled.store, tmp_path / "recent.jsonl", "jsonl", since=since)
    later = [e for e in filled.events if e["timestamp"] >= since]
    assert 0 < summary.events == len(later) < len(filled.events)


# -- rejections --------------------------------------------------------------------------------

NOW = to_millis(datetime.now(UTC) - timedelta(hours=1))
GOOD_IMPRESSION = {
    "type": "impression", "event_id": "i-1", "query": "q", "timestamp": NOW.isoformat(),
}  # fmt: skip
GOOD_CLICK = {
    "type": "click", "event_id": "c-1", "product_id": "p", "rank": 1, "search_id": "s",
    "timestamp": NOW.isoformat(),
}  # fmt: skip


def jsonl(*lines: str | dict[str, Any]) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def test_bad_rows_are_rejected_with_field_and_problem_and_the_rest_imported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        jsonl(
            GOOD_IMPRESSION,  # line 1
            '{"type": "click", "event_id": ',  # 2: cut short
            {**GOOD_CLICK, "event_id": "c-2", "rank": 0},  # 3
            "",  # 4: blank lines are skipped
            {**GOOD_CLICK, "event_id": "c-3", "rank": -4},  # 5
            {**GOOD_CLICK, "event_id": "c-4", "product_id": None},  # 6: null is "not given"
            {**GOOD_CLICK, "event_id": "c-5", "type": "view"},  # 7
            {k: v for k, v in GOOD_CLICK.items() if k != "event_id"},  # 8
            "[1, 2]",  # 9
            GOOD_CLICK,  # 10
            {**GOOD_IMPRESSION, "event_id": "i-2", "results": ["a"], "teams": ["A", "C"]},  # 11
        ),
        encoding="utf-8",
    )
    with empty_store("duckdb", tmp_path) as store:
        summary = import_file(store, path)
        assert (summary.read, summary.imported, summary.duplicates) == (10, 2, 0)
        assert summary.rejected == 8
        reasons = {(r.field, r.problem): (r.rows, r.examples) for r in summary.reasons}
        assert reasons[None, "is not valid JSON"] == (1, ["line 2"])
        assert reasons[None, "is not a JSON object"] == (1, ["line 9"])
        assert reasons["rank", "Input should be greater than or equal to 1"] == (
            2, ["line 3", "line 5"],
        )  # fmt: skip
        assert reasons["product_id", "Field required"] == (1, ["line 6"])
        problem = "must be 'click', 'impression', 'conversion' or 'action'"
        assert reasons["type", problem] == (1, ["line 7"])
        assert reasons["event_id", "is missing: an import needs it on every row"][1] == ["line 8"]
        assert any(f and f.startswith("teams") for f, _ in reasons), reasons
        assert str(summary.reasons[0]).startswith(
            "rank: Input should be greater than or equal to 1 (2 rows: line 3, line 5)"
        )
        assert ClickTrackingService(store).get_ctr(days=1).total_clicks == 1


def test_csv_cells_that_are_not_events(tmp_path: Path) -> None:
    header = ",".join(COLUMNS)

    def row(**cells: str) -> str:
        return ",".join(cells.get(name, "") for name in COLUMNS)

    ts = NOW.isoformat().replace("+00:00", "Z")
    lines = [
        header,
        row(type="impression", event_id="i-1", timestamp=ts, query="", results='"[""a"",""b""]"'),
        row(type="impression", event_id="i-2", timestamp=ts, query="q", results="a;b"),
        row(type="click", event_id="c-1", timestamp=ts, product_id="p", rank="x"),
        row(type="click", event_id="c-2", timestamp=ts, product_id="p", rank="2", query="q"),
        "click,c-3,too,few,cells",
    ]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with empty_store("duckdb", tmp_path) as store:
        summary = import_file(store, path)
        assert (summary.read, summary.imported, summary.rejected) == (5, 1, 4), summary.reasons
        fields = {r.field: r.examples for r in summary.reasons}
        assert fields["results"] == ["line 3"]
        assert fields["rank"] == ["line 4"]
        assert fields["query"] == ["line 5"]  # a click has no query
        assert fields[None] == ["line 6"]
        (event,) = exported(store)
        assert (event["query"], event["results"]) == ("", ["a", "b"])  # "" in a text cell is ""


def test_unreadable_files_are_one_clean_error(tmp_path: Path) -> None:
    (tmp_path / "events.txt").write_text("{}")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "odd.csv").write_text("type,colour\nclick,red\n")
    with empty_store("duckdb", tmp_path) as store:
        for name, message in [
            ("events.txt", "cannot tell the format"),
            ("missing.jsonl", "cannot read"),
            ("broken.parquet", "is not a Parquet file"),
            ("odd.csv", "unknown column(s) colour"),
        ]:
            with pytest.raises(
                TransferError, match=message.replace("(", r"\(").replace(")", r"\)")
            ):
                import_file(store, tmp_path / name)


def test_parse_since() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30") == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30+02:00") == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="7d"):
        parse_since("last week")


# -- the commands ------------------------------------------------------------------------------


def test_cli_export_and_import_print_their_counts(tmp_path: Path) -> None:
    source, target = f"duckdb://{tmp_path}/a.duckdb", f"duckdb://{tmp_path}/b.duckdb"
    store = open_store(source)
    store.open()
    store.append_sync(edge_cases(utcnow()))
    store.close()
    runner = CliRunner()
    out = tmp_path / "events.csv"
    done = runner.invoke(
        main, ["export", "--store", source, "--output", str(out), "--since", "30d"]
    )
    assert done.exit_code == 0, done.output
    assert "exported 7 events (4 impressions, 3 clicks, 0 conversions, 0 actions)" in done.output
    with out.open("a", encoding="utf-8") as f:
        # a click with rank 0; the conversion's and the action's columns (after source) empty
        f.write("click,bad-1,,u,,default,2026-01-01T00:00:00Z,,,,,,p,0,,SEARCH_RESULTS,,,,,,,")
        f.write(",,,\n")
    imported = runner.invoke(main, ["import", str(out)], env={"CLICKSTATS_STORE": target})
    assert imported.exit_code == 0, imported.output
    assert "8 rows" in imported.output and "7 imported, 0 already present, 1 rejected" in (
        imported.output
    )
    assert "rejected: rank: Input should be greater than or equal to 1 (1 rows: line" in (
        imported.output
    )
    again = runner.invoke(main, ["import", "--store", target, "--format", "csv", str(out)])
    assert "0 imported, 7 already present, 1 rejected" in again.output
    bad = runner.invoke(main, ["import", "--store", target, str(tmp_path / "nope.xml")])
    assert bad.exit_code == 1 and "Error: cannot tell the format" in bad.output
    assert "Traceback" not in bad.output
    since = runner.invoke(main, ["export", "--store", source, "-o", "x.csv", "--since", "soon"])
    assert since.exit_code == 2 and "Invalid value for '--since'" in since.output
