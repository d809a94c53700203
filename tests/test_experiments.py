"""Variant assignment: deterministic across processes, sticky, weighted, uniform, independent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from scipy import stats

from clickstats.app import create_app
from clickstats.experiments import Experiment, ExperimentManager, ExperimentStatus
from clickstats.settings import Settings

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
