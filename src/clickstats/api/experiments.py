"""/experiments: define, start and stop A/B experiments; ask for a user's variant."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from clickstats.api.auth import AUTH_RESPONSES, Authorized
from clickstats.api.deps import Days, TrackerDep, UserHeader
from clickstats.api.errors import READ_RESPONSES, STORE_RESPONSES, responses
from clickstats.events import MAX_ID_LENGTH
from clickstats.experiments import (
    Experiment,
    ExperimentManager,
    ExperimentType,
    UnknownExperiment,
)
from clickstats.reports.experiment import ExperimentResults, Method
from clickstats.reports.interleaving import InterleavingResults
from clickstats.search.serve import ranker_problem
from clickstats.state import StateWriteError
from clickstats.store.base import Outcome

# Ingest for /assign, read for the other GETs, admin for every change (api/auth.py).
router = APIRouter(
    prefix="/experiments",
    tags=["experiments"],
    dependencies=[Authorized],
    responses={**AUTH_RESPONSES, **STORE_RESPONSES},
)
#: A named experiment that may not exist; a change that may find the disk full.
_NAMED = responses(404)
_CHANGED = responses(404, 507)


async def get_experiments(request: Request) -> ExperimentManager:
    manager: ExperimentManager = request.app.state.experiments
    return manager


ExperimentsDep = Annotated[ExperimentManager, Depends(get_experiments)]


def _get(manager: ExperimentManager, name: str) -> Experiment:
    try:
        return manager.get(name)
    except UnknownExperiment as exc:
        raise HTTPException(404, detail=str(exc)) from None


class _NoRanker(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _serves(experiment: Experiment) -> None:
    """Refuse an experiment that /search/text would serve with variants that are no rankers
    (checked on the experiment as it would be stored, inside the manager's change)."""
    problem = ranker_problem(experiment)
    if problem is not None:
        raise _NoRanker(problem)


@contextmanager
def _changing(name: str, location: list[str]) -> Iterator[None]:
    """A change's refusals as HTTP answers: 404, 422 (no ranker), 507 (disk full) or 503
    (another write failure; memory and the stored document are both unchanged)."""
    try:
        yield
    except UnknownExperiment as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except _NoRanker as exc:
        detail = [{"loc": location, "msg": exc.problem, "type": "value_error"}]
        raise HTTPException(422, detail=detail) from None
    except StateWriteError as exc:
        status = 507 if exc.disk_full else 503
        raise HTTPException(status, detail=f"{exc}; {name!r} is unchanged") from None


class ExperimentList(BaseModel):
    model_config = ConfigDict(frozen=True)

    experiments: list[Experiment]


class Assignment(BaseModel):
    model_config = ConfigDict(frozen=True)

    experiment: str
    user_id: str
    variant: str


@router.get("", response_model=ExperimentList)
def list_experiments(manager: ExperimentsDep) -> ExperimentList:
    """Every experiment, running or stopped."""
    return ExperimentList(experiments=manager.list())


@router.post(
    "", response_model=Experiment, responses={201: {"model": Experiment}, **responses(507)}
)
def put_experiment(
    experiment: Experiment, manager: ExperimentsDep, response: Response
) -> Experiment:
    """Create an experiment (201), or replace the one with that name (200)."""
    existed = experiment.name in {e.name for e in manager.list()}
    response.status_code = 200 if existed else 201
    with _changing(experiment.name, ["body", "variants"]):
        return manager.put(experiment, check=_serves)


@router.get("/{name}", response_model=Experiment, responses=_NAMED)
def get_experiment(name: str, manager: ExperimentsDep) -> Experiment:
    return _get(manager, name)


@router.post("/{name}/start", response_model=Experiment, responses=_CHANGED)
def start_experiment(name: str, manager: ExperimentsDep) -> Experiment:
    """Resume splitting users between the variants (an interleaving experiment: serve its
    merged lists; its variants must then be rankers)."""
    with _changing(name, ["path", "name"]):
        return manager.start(name, check=_serves)


@router.post("/{name}/stop", response_model=Experiment, responses=_CHANGED)
def stop_experiment(name: str, manager: ExperimentsDep) -> Experiment:
    """Stop the experiment: from now on every user gets the control variant."""
    with _changing(name, ["path", "name"]):
        return manager.stop(name)


@router.get(
    "/{name}/results",
    response_model=ExperimentResults,
    responses={**_NAMED, **READ_RESPONSES},
)
def results(
    name: str,
    manager: ExperimentsDep,
    tracker: TrackerDep,
    days: Days = 30,
    method: Annotated[Method, Query(description="sequential: valid however often it is read")] = (
        "sequential"
    ),
) -> ExperimentResults:
    """Every metric of every variant against the control, with intervals, health checks
    (sample ratio, minimum sample, implausible lifts) and the decision in words."""
    return tracker.get_experiment_results(_get(manager, name), days, method)


@router.get(
    "/{name}/interleaving",
    response_model=InterleavingResults,
    responses={
        **responses(404, 409, _409="An A/B experiment: read /experiments/{name}/results"),
        **READ_RESPONSES,
    },
)
def interleaving(
    name: str,
    manager: ExperimentsDep,
    tracker: TrackerDep,
    days: Days = 30,
    outcome: Annotated[
        Outcome,
        Query(
            description="clicks: a search is won by the team whose results were clicked more; "
            "purchases: by the team whose products were bought more (attributed purchases)"
        ),
    ] = "clicks",
) -> InterleavingResults:
    """An interleaving experiment: searches with clicks (or purchases), wins of each ranker,
    ties, the share of B wins among non-ties with its 95% interval and p-value (users as the
    unit), a verdict; and the same for the most frequent queries."""
    experiment = _get(manager, name)
    if experiment.type is not ExperimentType.INTERLEAVING:
        raise HTTPException(
            409, detail=f"{name!r} is an A/B experiment: read /experiments/{name}/results"
        )
    return tracker.get_interleaving_results(experiment, days, outcome)


@router.get("/{name}/assign", response_model=Assignment, responses=_NAMED)
def assign(
    name: str,
    manager: ExperimentsDep,
    user_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH)] = None,
    x_user_id: UserHeader = None,
) -> Assignment:
    """The variant a user sees (user from `user_id`, else `X-User-ID`, else anonymous)."""
    user = user_id or x_user_id or "anonymous"
    return Assignment(experiment=name, user_id=user, variant=_get(manager, name).assign(user))
