"""Variant assignment: deterministic across processes, sticky, weighted, uniform, independent."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from scipy import stats

import clickstats.experiments as experiments_module
from clickstats.app import create_app
from clickstats.experiments import (
    DOCUMENT,
    Experiment,
    ExperimentManager,
    ExperimentStatus,
    InvalidExperiments,
    get_experiment_manager,
    open_experiments,
)
from clickstats.settings import Settings
from clickstats.state import STATE_COLLECTION, FileState, StateStore, StateWriteError, open_state
from clickstats.stats.capping import Cap
from tests.conftest import store_url

MONGO_WHERE = f"the 'experiments' document of the {STATE_COLLECTION} collection"

USERS = [f"user-{i}" for i in range(100_000)]


def shares(experiment: Experiment, users: list[str]) -> dict[str, float]:
    names, counts = np.unique([experiment.assign(u) for u in users], return_counts=True)
    return dict(zip(names.tolist(), (counts / len(users)).tolist(), strict=True))


def test_default_experiment_splits_v1_v2_evenly(tmp_path: Path) -> None:
    manager = ExperimentManager(tmp_path / "experiments.json")
    observed = shares(manager.get("search_ranking"), USERS)
    assert set(observed) == {"search_v1", "search_v2"}
    for share in observed.values():
        assert abs(share - 0.5) < 0.01
    assert manager.assign_variant("user123") in {"search_v1", "search_v2"}


def test_weighted_shares_within_one_point() -> None:
    experiment = Experiment(name="three", variants={"a": 70, "b": 20, "c": 10})
    observed = shares(experiment, USERS)
    for name, expected in experiment.shares().items():
        assert abs(observed[name] - expected) < 0.01, (name, observed[name])
    # and not merely close: a chi-square goodness of fit does not reject the weights
    counts = [observed[n] * len(USERS) for n in "abc"]
    assert (
        stats.chisquare(counts, [0.7 * len(USERS), 0.2 * len(USERS), 0.1 * len(USERS)]).pvalue
        > 0.001
    )


def test_assignment_is_the_same_in_another_process(tmp_path: Path) -> None:
    manager = ExperimentManager(tmp_path / "experiments.json")
    sample = USERS[:2000]
    here = [manager.assign_variant(u) for u in sample]
    code = (
        "import json, sys\n"
        "from clickstats.experiments import ExperimentManager\n"
        "m = ExperimentManager(sys.argv[1])\n"
        "print(json.dumps([m.assign_variant(f'user-{i}') for i in range(2000)]))\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "experiments.json")],
        capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"},
    )  # fmt: skip
    assert json.loads(other.stdout) == here


def test_two_experiments_split_users_independently() -> None:
    first = Experiment(name="ranking", variants={"v1": 1, "v2": 1})
    second = Experiment(name="snippets", variants={"short": 1, "long": 1})
    a = np.array([first.assign(u) == "v2" for u in USERS])
    b = np.array([second.assign(u) == "long" for u in USERS])
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    assert stats.chi2_contingency(table).pvalue > 0.001
    # within each arm of the first experiment, the second still splits 50/50
    assert abs(b[a].mean() - 0.5) < 0.01 and abs(b[~a].mean() - 0.5) < 0.01


def test_salt_reshuffles_and_stop_sends_everyone_to_control() -> None:
    base = Experiment(name="e", variants={"ctl": 1, "new": 1})
    salted = base.model_copy(update={"salt": "round-2"})
    moved = sum(base.assign(u) != salted.assign(u) for u in USERS[:10_000])
    assert 4_500 < moved < 5_500
    stopped = base.model_copy(update={"status": ExperimentStatus.STOPPED})
    assert {stopped.assign(u) for u in USERS[:1000]} == {"ctl"}


@pytest.mark.parametrize(
    "variants", [{"only": 1.0}, {"a": 1.0, "b": 0.0}, {"a": 1.0, "b": -1.0}, {}]
)
def test_bad_definitions_are_rejected(variants: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Experiment(name="bad", variants=variants)


def test_changes_persist_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "experiments.json"
    manager = ExperimentManager(path)
    manager.put(Experiment(name="new_one", variants={"x": 1, "y": 3}))
    manager.stop("search_ranking")
    again = ExperimentManager(path)
    assert again.get("new_one").shares() == {"x": 0.25, "y": 0.75}
    assert again.get("search_ranking").status is ExperimentStatus.STOPPED


def test_http_api(tmp_path: Path) -> None:
    settings = Settings(
        store=f"duckdb://{tmp_path}/e.duckdb", experiments=str(tmp_path / "experiments.json")
    )
    with TestClient(create_app(settings)) as client:
        listed = client.get("/experiments").json()["experiments"]
        assert [e["name"] for e in listed] == ["search_ranking"]
        body = {"name": "layout", "variants": {"grid": 1, "list": 1}}
        assert client.post("/experiments", json=body).status_code == 201
        assert client.post("/experiments", json=body).status_code == 200
        bad = client.post("/experiments", json={"name": "x y", "variants": {"a": 1}})
        assert bad.status_code == 422
        assert {e["loc"][-1] for e in bad.json()["detail"]} == {"name", "variants"}
        assigned = client.get("/experiments/layout/assign", params={"user_id": "u1"}).json()
        assert assigned["variant"] == Experiment(**body).assign("u1")
        by_header = client.get("/experiments/layout/assign", headers={"X-User-ID": "u1"}).json()
        assert by_header["variant"] == assigned["variant"]
        assert client.post("/experiments/layout/stop").json()["status"] == "stopped"
        assert client.get("/experiments/layout/assign?user_id=u2").json()["variant"] == "grid"
        assert client.post("/experiments/layout/start").json()["status"] == "running"
        missing = client.get("/experiments/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        assert client.post("/experiments/nope/stop").status_code == 404


# -- where experiments live ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["duckdb", "mongomock"])
def test_experiments_live_beside_the_store(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a data/experiments.json here would be the old default file
    with store_url(backend, tmp_path) as url:
        first = open_experiments(Settings(store=url))
        assert first.where in ("events.experiments.json beside the store", MONGO_WHERE)
        first.put(Experiment(name="layout", variants={"grid": 1, "list": 1}))
        again = open_experiments(Settings(store=url))  # another process on the same store
        assert [e.name for e in again.list()] == ["search_ranking", "layout"]
        assert open_state(url).read(DOCUMENT) == again.to_dict()
    if backend == "duckdb":
        assert json.loads((tmp_path / "events.experiments.json").read_text()) == again.to_dict()
    assert not (tmp_path / "data").exists()


def test_an_explicit_file_overrides_the_store(tmp_path: Path) -> None:
    settings = Settings(store=f"duckdb://{tmp_path}/s.duckdb", experiments=str(tmp_path / "x.json"))
    manager = open_experiments(settings)
    manager.stop("search_ranking")
    assert manager.where == "the experiments file x.json"
    saved = json.loads((tmp_path / "x.json").read_text())
    assert saved["experiments"][0]["status"] == "stopped"
    assert not (tmp_path / "s.experiments.json").exists()


def test_the_old_default_file_is_imported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    old = {
        "experiments": [{"name": "search_ranking", "variants": {"search_v1": 3, "search_v2": 1}}]
    }
    (tmp_path / "data" / "experiments.json").write_text(json.dumps(old))
    settings = Settings()  # the default store: data/clickstats.duckdb, beside the old file
    with caplog.at_level(logging.WARNING, logger="clickstats.experiments"):
        manager = open_experiments(settings)
    assert manager.get("search_ranking").variants == {"search_v1": 3, "search_v2": 1}
    assert "experiments imported from data/experiments.json" in caplog.text
    doc = json.loads((tmp_path / "data" / "clickstats.experiments.json").read_text())
    assert doc["experiments"][0]["variants"] == {"search_v1": 3, "search_v2": 1}
    # once: later edits of the old file are not read, the store's document is
    manager.stop("search_ranking")
    (tmp_path / "data" / "experiments.json").write_text(json.dumps({"experiments": []}))
    caplog.clear()
    again = open_experiments(settings)
    assert again.get("search_ranking").status is ExperimentStatus.STOPPED
    assert "imported" not in caplog.text
    # a store in another folder never had the old file: not imported, the log says why
    with caplog.at_level(logging.WARNING, logger="clickstats.experiments"):
        elsewhere = open_experiments(Settings(store=f"duckdb://{tmp_path}/other/s.duckdb"))
    assert elsewhere.get("search_ranking").variants == {"search_v1": 1.0, "search_v2": 1.0}
    assert "data/experiments.json is not read" in caplog.text
    assert "CLICKSTATS_EXPERIMENTS=data/experiments.json" in caplog.text


def test_a_report_creates_nothing(tmp_path: Path) -> None:
    settings = Settings(store=f"duckdb://{tmp_path}/r.duckdb")
    manager = open_experiments(settings, create=False)
    assert [e.name for e in manager.list()] == ["search_ranking"]
    assert list(tmp_path.iterdir()) == []


def test_get_experiment_manager_uses_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKSTATS_STORE", f"duckdb://{tmp_path}/g.duckdb")
    monkeypatch.delenv("CLICKSTATS_EXPERIMENTS", raising=False)
    monkeypatch.setattr(experiments_module, "_manager", None)
    manager = get_experiment_manager()
    assert manager is get_experiment_manager()
    assert manager.assign_variant("user123") in {"search_v1", "search_v2"}
    assert manager.assign_variant("user123", "search_ranking") == manager.get(
        "search_ranking"
    ).assign("user123")
    assert (tmp_path / "g.experiments.json").is_file()


# -- changes: all or nothing, and seen by other processes --------------------------------------


class FailingState(FileState):
    """A state whose writes fail as on a full disk (the real full disk: test_full_disk.py)."""

    fail = False

    def write(self, name: str, doc: dict[str, Any]) -> None:
        if self.fail:
            message = f"cannot write {self.describe(name)}: the disk is full"
            raise StateWriteError(message, disk_full=True)
        super().write(name, doc)


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    state = FailingState(tmp_path, "s")
    manager = ExperimentManager(state)
    before_doc = state.path(DOCUMENT).read_bytes()
    before = manager.list()
    state.fail = True
    with pytest.raises(StateWriteError, match="the disk is full"):
        manager.put(Experiment(name="layout", variants={"grid": 1, "list": 1}))
    with pytest.raises(StateWriteError):
        manager.stop("search_ranking")
    assert manager.list() == before and manager.active_interleaving() is None
    assert manager.get("search_ranking").status is ExperimentStatus.RUNNING
    assert state.path(DOCUMENT).read_bytes() == before_doc
    state.fail = False
    assert manager.stop("search_ranking").status is ExperimentStatus.STOPPED


def test_a_server_starts_when_the_document_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = FailingState(tmp_path, "s")
    state.fail = True
    with caplog.at_level(logging.WARNING, logger="clickstats.experiments"):
        manager = ExperimentManager(state)
    assert [e.name for e in manager.list()] == ["search_ranking"]
    assert "kept in memory until a change can be written" in caplog.text
    assert not state.path(DOCUMENT).exists()


class CountingState(StateStore):
    """Another server's view of one shared state, counting the version checks."""

    def __init__(self, shared: StateStore) -> None:
        self.shared = shared
        self.checks = 0

    def read(self, name: str) -> dict[str, Any] | None:
        return self.shared.read(name)

    def write(self, name: str, doc: dict[str, Any]) -> None:
        self.shared.write(name, doc)

    def version(self, name: str) -> object:
        self.checks += 1
        return self.shared.version(name)


def test_another_servers_change_is_seen_and_checked_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    with store_url("mongomock", tmp_path) as url:
        one = ExperimentManager(open_state(url))
        counting = CountingState(open_state(url))
        two = ExperimentManager(counting)
        one.put(Experiment(name="layout", variants={"grid": 1, "list": 1}))
        checks = counting.checks
        for _ in range(1000):
            two.list()
        assert counting.checks - checks <= 1  # not once per read
        two.reload_seconds = 0.0
        assert two.get("layout").variants == {"grid": 1, "list": 1}
        # a change builds on the other server's latest set, never over it
        two.stop("search_ranking")
        one.reload_seconds = 0.0
        assert {e.name for e in one.list()} == {"search_ranking", "layout"}
        assert one.get("search_ranking").status is ExperimentStatus.STOPPED


def test_a_bad_hand_edit_keeps_the_experiments_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "e.json"
    manager = ExperimentManager(path, reload_seconds=0.0)
    path.write_text('{"experiments": [{"name": "x", "variants": {"only": 1}}]}')
    with caplog.at_level(logging.WARNING, logger="clickstats.experiments"):
        assert [e.name for e in manager.list()] == ["search_ranking"]
    assert "holds an invalid experiment" in caplog.text and "needs at least two" in caplog.text
    path.write_text("{not json")
    assert [e.name for e in manager.list()] == ["search_ranking"]
    with pytest.raises(InvalidExperiments, match=r"e\.json"):
        ExperimentManager(path)  # at start an unreadable document is an error, said clearly


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ({f"v{i}": 1.0 for i in range(21)}, "has 21 variants; at most 20 are allowed"),
        ({"a": 1.0, "b": 1e308}, "less than or equal to 1000000"),
        ({"a": 1.0, "b": 1e6 + 1}, "less than or equal to 1000000"),
        ({"a": 1.0, "b": math.inf}, "finite number"),
        ({"a": 1.0, "b": math.nan}, "finite number"),
        ({"a": 1.0, "b": 0.0}, "greater than 0"),
    ],
)
def test_limits_of_a_definition(variants: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Experiment(name="bad", variants=variants)


def test_largest_definition_is_accepted() -> None:
    experiment = Experiment(
        name="wide", variants={f"v{i}": 1e6 for i in range(20)}, description="x" * 1000
    )
    assert sum(experiment.shares().values()) == pytest.approx(1.0)
    assert experiment.assign("u") in experiment.variants
    with pytest.raises(ValidationError, match="at most 1000 characters"):
        Experiment(name="long", variants={"a": 1, "b": 1}, description="x" * 1001)


def test_revenue_settings_default_to_the_registry() -> None:
    experiment = Experiment(name="shop", variants={"a": 1, "b": 1})
    assert (experiment.caps, experiment.cuped, experiment.cuped_days) == ({}, True, 14)
    assert experiment.currency is None  # the currency of most purchases in the window
    assert experiment.column_caps() == {"revenue": Cap(percentile=0.99)}  # metrics.COLUMNS


def test_caps_by_column_or_metric_and_switched_off() -> None:
    def caps(**settings: float | str | None) -> dict[str, Cap]:
        return Experiment(name="shop", variants={"a": 1, "b": 1}, caps=settings).column_caps()

    assert caps(revenue="p95") == {"revenue": Cap(percentile=0.95)}
    # a metric's name caps its numerator: revenue per user caps revenue (for every metric)
    assert caps(revenue_per_user=250) == {"revenue": Cap(absolute=250.0)}
    assert caps(revenue=None) == {}
    assert caps(units="p99.5") == {"revenue": Cap(percentile=0.99), "units": Cap(percentile=0.995)}
    assert caps(revenue="p90", average_order_value="p90") == {"revenue": Cap(percentile=0.9)}


@pytest.mark.parametrize(
    ("settings", "where", "message"),
    [
        ({"caps": {"revenue": "p100"}}, ["caps", "revenue"], "below p100"),
        ({"caps": {"revenue": "99"}}, ["caps", "revenue"], "such as 'p99'"),
        ({"caps": {"revenue": -3}}, ["caps", "revenue"], "positive finite number"),
        ({"caps": {"revenue": True}}, ["caps", "revenue"], "must be a number"),
        ({"caps": {"revenue": [99]}}, ["caps", "revenue"], "must be a number"),
        ({"caps": {"sales": 10}}, ["caps"], "'sales' is neither a column nor a metric"),
        ({"caps": {"revenue": 10, "revenue_per_user": 20}}, ["caps"], "name it once"),
        ({"cuped": "yes"}, ["cuped"], "valid boolean"),
        ({"cuped_days": 0}, ["cuped_days"], "greater than or equal to 1"),
        ({"cuped_days": 91}, ["cuped_days"], "less than or equal to 90"),
        ({"cuped_days": 14.5}, ["cuped_days"], "valid integer"),
        ({"currency": "eur"}, ["currency"], "pattern"),
        ({"currency": "EUX"}, ["currency"], "ISO 4217"),
    ],
)
def test_bad_revenue_settings_are_refused_naming_the_field(
    settings: dict[str, Any], where: list[str], message: str, http: TestClient
) -> None:
    answer = http.post(
        "/experiments", json={"name": "shop", "variants": {"a": 1, "b": 1}, **settings}
    )
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", *where]]
    assert message in answer.text


def test_revenue_settings_are_kept(http: TestClient) -> None:
    body = {
        "name": "shop", "variants": {"a": 1, "b": 1}, "caps": {"revenue": 500, "units": "p99"},
        "cuped": False, "cuped_days": 30, "currency": "EUR",
    }  # fmt: skip
    assert http.post("/experiments", json=body).status_code in (200, 201)
    stored = http.get("/experiments/shop").json()
    assert {k: stored[k] for k in ("caps", "cuped", "cuped_days", "currency")} == {
        "caps": {"revenue": 500.0, "units": "p99"}, "cuped": False, "cuped_days": 30,
        "currency": "EUR",
    }  # fmt: skip


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("revenue-settings")
    settings = Settings(store=f"duckdb://{tmp}/r.duckdb", experiments=str(tmp / "e.json"))
    with TestClient(create_app(settings)) as client:
        yield client


def test_http_limits_and_a_full_disk(tmp_path: Path) -> None:
    settings = Settings(store=f"duckdb://{tmp_path}/h.duckdb")
    app = create_app(settings)
    with TestClient(app) as client:
        huge = {"name": "huge", "variants": {"a": 1, "b": 1e308}}
        answer = client.post("/experiments", json=huge)
        assert answer.status_code == 422
        assert [e["loc"] for e in answer.json()["detail"]] == [["body", "variants", "b"]]
        many = {"name": "many", "variants": {f"v{i}": 1 for i in range(21)}}
        answer = client.post("/experiments", json=many)
        assert answer.status_code == 422 and "at most 20" in answer.text
        long = {"name": "long", "variants": {"a": 1, "b": 1}, "description": "x" * 1001}
        assert client.post("/experiments", json=long).status_code == 422

        state = FailingState(tmp_path, "h")  # the same document, written by a failing state
        app.state.experiments.state = state
        state.fail = True
        before = (tmp_path / "h.experiments.json").read_bytes()
        answer = client.post("/experiments/search_ranking/stop")
        assert answer.status_code == 507
        assert answer.json()["detail"] == (
            "cannot write h.experiments.json beside the store: the disk is full; "
            "'search_ranking' is unchanged"
        )
        assert str(tmp_path) not in answer.text
        assert client.get("/experiments/search_ranking").json()["status"] == "running"
        assert (tmp_path / "h.experiments.json").read_bytes() == before


def test_503_when_a_write_fails_otherwise(tmp_path: Path) -> None:
    class Unreachable(FileState):
        def write(self, name: str, doc: dict[str, Any]) -> None:
            raise StateWriteError("cannot write the 'experiments' document: timed out")

    app = create_app(Settings(store=f"duckdb://{tmp_path}/u.duckdb"))
    with TestClient(app) as client:
        app.state.experiments.state = Unreachable(tmp_path, "u")
        answer = client.post("/experiments", json={"name": "new", "variants": {"a": 1, "b": 1}})
        assert answer.status_code == 503 and "timed out; 'new' is unchanged" in answer.text
        assert client.get("/experiments/new").status_code == 404
