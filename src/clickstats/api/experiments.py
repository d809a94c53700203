"""/experiments: define, start and stop A/B experiments; ask for a user's variant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from clickstats.api.auth import AUTH_RESPONSES, Authorized
from clickstats.api.deps import Days, TrackerDep, UserHeader
from clickstats.events import MAX_ID_LENGTH
from clickstats.experiments import (
    Experiment,
    ExperimentManager,
    ExperimentType,
    UnknownExperiment,
)
from clickstats.results import Method

# Ingest for /assign, read for the other GETs, admin for every change (api/auth.py).
router = APIRouter(
    prefix="/experiments",
    tags=["experiments"],
    dependencies=[Authorized],
    responses=AUTH_RESPONSES,
)


async def get_experiments(request: Request) -> ExperimentManager:
    manager: ExperimentManager = request.app.state.experiments
    return manager


ExperimentsDep = Annotated[ExperimentManager, Depends(get_experiments)]


def _get(manager: ExperimentManager, name: str) -> Experiment:
    try:
        return manager.get(name)
    except UnknownExperiment as exc:
        raise HTTPException(404, detail=str(exc)) from None


@router.get("")
def list_experiments(manager: ExperimentsDep) -> dict[str, list[Experiment]]:
    """Every experiment, running or stopped."""
    return {"experiments": manager.list()}


@router.post("", response_model=Experiment, responses={201: {"model": Experiment}})
def put_experiment(experiment: Experiment, manager: ExperimentsDep, response: Response) -> Any:
    """Create an experiment (201), or replace the one with that name (200)."""
    existed = experiment.name in {e.name for e in manager.list()}
    response.status_code = 200 if existed else 201
    return manager.put(experiment)


@router.get("/{name}", response_model=Experiment)
def get_experiment(name: str, manager: ExperimentsDep) -> Any:
    return _get(manager, name)


@router.post("/{name}/start", response_model=Experiment)
def start_experiment(name: str, manager: ExperimentsDep) -> Any:
    """Resume splitting users between the variants."""
    _get(manager, name)
    return manager.start(name)


@router.post("/{name}/stop", response_model=Experiment)
def stop_experiment(name: str, manager: ExperimentsDep) -> Any:
    """Stop the experiment: from now on every user gets the control variant."""
    _get(manager, name)
    return manager.stop(name)


@router.get("/{name}/results")
def results(
    name: str,
    manager: ExperimentsDep,
    tracker: TrackerDep,
    days: Days = 30,
    method: Annotated[Method, Query(description="sequential: valid however often it is read")] = (
        "sequential"
    ),
) -> dict[str, Any]:
    """Every metric of every variant against the control, with intervals, health checks
    (sample ratio, minimum sample, implausible lifts) and the decision in words."""
    return tracker.get_experiment_results(_get(manager, name), days, method)


@router.get("/{name}/interleaving")
def interleaving(
    name: str, manager: ExperimentsDep, tracker: TrackerDep, days: Days = 30
) -> dict[str, Any]:
    """An interleaving experiment: searches with clicks, wins of each ranker, ties, the share
    of B wins among non-ties with its 95% interval and p-value (users as the unit), a verdict;
    and the same for the most frequent queries."""
    experiment = _get(manager, name)
    if experiment.type is not ExperimentType.INTERLEAVING:
        raise HTTPException(
            409, detail=f"{name!r} is an A/B experiment: read /experiments/{name}/results"
        )
    return tracker.get_interleaving_results(experiment, days)


@router.get("/{name}/assign")
def assign(
    name: str,
    manager: ExperimentsDep,
    user_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH)] = None,
    x_user_id: UserHeader = None,
) -> dict[str, str]:
    """The variant a user sees (user from `user_id`, else `X-User-ID`, else anonymous)."""
    user = user_id or x_user_id or "anonymous"
    return {"experiment": name, "user_id": user, "variant": _get(manager, name).assign(user)}
