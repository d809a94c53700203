"""A/B experiments: deterministic, sticky, weighted, independent variant assignment.

A user's variant is a pure function of (experiment salt, user id): SHA-256 of the two maps
the user to a point in [0, 1), and the experiment's cumulative weights cut that interval
into variants. The same user therefore gets the same variant in every process and after
every restart, and two experiments (salted by their names) split users independently.

Experiments live in a JSON file (created with the default experiment `search_ranking`,
`search_v1`/`search_v2` 50/50); changes made through the API are written back to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clickstats.events import Id, utcnow
from clickstats.stats.outliers import DEFAULT_OUTLIER_Z
from clickstats.stats.summary import METRICS

DEFAULT_EXPERIMENT = "search_ranking"
_SCALE = float(2**64)


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class ExperimentType(StrEnum):
    AB = "ab"  # each user sees one variant
    INTERLEAVING = "interleaving"  # every search shows both rankers' results, team-drafted


Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Experiment(BaseModel):
    """One experiment. The first variant is the control."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    variants: dict[Id, Weight] = Field(
        description="variant -> weight (any positive numbers; shares are weight / total)"
    )
    type: ExperimentType = ExperimentType.AB
    status: ExperimentStatus = ExperimentStatus.RUNNING
    description: str = ""
    primary_metric: str = Field(
        "search_ctr", description="the metric a decision is made on (see docs/STATISTICS.md)"
    )
    outlier_z: float = Field(
        DEFAULT_OUTLIER_Z,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description=(
            "leave out of the analysis users whose searches in the window are more than this "
            "many robust standard deviations above the median (log scale; docs/STATISTICS.md); "
            "0 keeps every user"
        ),
    )
    salt: str | None = Field(
        None, description="hash salt; defaults to the name. Change it to reshuffle users."
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("variants")
    @classmethod
    def _at_least_two(cls, value: dict[str, float]) -> dict[str, float]:
        if len(value) < 2:
            raise ValueError("needs at least two variants")
        return value

    @model_validator(mode="after")
    def _two_rankers_to_interleave(self) -> Experiment:
        if self.type is ExperimentType.INTERLEAVING and len(self.variants) != 2:
            raise ValueError("an interleaving experiment has exactly two variants: rankers A, B")
        return self

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"must be one of {', '.join(METRICS)}")
        return value

    @property
    def control(self) -> str:
        return next(iter(self.variants))

    def shares(self) -> dict[str, float]:
        total = sum(self.variants.values())
        return {name: weight / total for name, weight in self.variants.items()}

    def bucket(self, user_id: str) -> float:
        """The user's point in [0, 1) for this experiment: uniform, stable, salted."""
        digest = hashlib.sha256(f"{self.salt or self.name}\x00{user_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / _SCALE

    def assign(self, user_id: str) -> str:
        """The user's variant; every user gets the control while the experiment is stopped."""
        if self.status is ExperimentStatus.STOPPED:
            return self.control
        point = self.bucket(user_id)
        total = sum(self.variants.values())
        edge = 0.0
        for name, weight in self.variants.items():
            edge += weight / total
            if point < edge:
                return name
        return next(reversed(self.variants))  # point within float rounding of 1.0


def default_experiments() -> list[Experiment]:
    return [
        Experiment(
            name=DEFAULT_EXPERIMENT,
            variants={"search_v1": 1.0, "search_v2": 1.0},
            description="Current ranking (search_v1, control) against the new one (search_v2).",
        )
    ]


class UnknownExperiment(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no experiment named {self.name!r}"


class ExperimentManager:
    """Experiments from a JSON file; thread-safe; every change is written back atomically."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._experiments: dict[str, Experiment] = {}
        self.load()

    def load(self) -> None:
        with self._lock:
            if self.path is not None and self.path.exists():
                raw = json.loads(self.path.read_text())
                loaded = [Experiment.model_validate(item) for item in raw["experiments"]]
            else:
                loaded = default_experiments()
            self._experiments = {e.name: e for e in loaded}
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"experiments": [e.model_dump(mode="json") for e in self._experiments.values()]}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)  # readers never see half a file

    def list(self) -> list[Experiment]:
        return list(self._experiments.values())

    def get(self, name: str) -> Experiment:
        try:
            return self._experiments[name]
        except KeyError:
            raise UnknownExperiment(name) from None

    def put(self, experiment: Experiment) -> Experiment:
        """Create or replace an experiment (replacing keeps its creation time)."""
        with self._lock:
            old = self._experiments.get(experiment.name)
            if old is not None:
                experiment = experiment.model_copy(
                    update={"created_at": old.created_at, "updated_at": utcnow()}
                )
            self._experiments[experiment.name] = experiment
            self._save()
            return experiment

    def set_status(self, name: str, status: ExperimentStatus) -> Experiment:
        with self._lock:
            updated = self.get(name).model_copy(update={"status": status, "updated_at": utcnow()})
            self._experiments[name] = updated
            self._save()
            return updated

    def start(self, name: str) -> Experiment:
        return self.set_status(name, ExperimentStatus.RUNNING)

    def stop(self, name: str) -> Experiment:
        return self.set_status(name, ExperimentStatus.STOPPED)

    def active_interleaving(self) -> Experiment | None:
        """The running interleaving experiment, if any: /search/text then serves its merged
        lists to everyone (the first one defined, when several run)."""
        return next(
            (
                e
                for e in self._experiments.values()
                if e.type is ExperimentType.INTERLEAVING and e.status is ExperimentStatus.RUNNING
            ),
            None,
        )

    def assign_variant(self, user_id: str, experiment: str = DEFAULT_EXPERIMENT) -> str:
        """The variant of `experiment` this user sees (the original design's call)."""
        return self.get(experiment).assign(user_id)

    def to_dict(self) -> dict[str, Any]:
        return {"experiments": [e.model_dump(mode="json") for e in self.list()]}


_manager: ExperimentManager | None = None
_manager_lock = threading.Lock()


def get_experiment_manager() -> ExperimentManager:
    """The process-wide manager, on the file CLICKSTATS_EXPERIMENTS names."""
    global _manager
    with _manager_lock:
        if _manager is None:
            from clickstats.settings import Settings

            _manager = ExperimentManager(Settings().experiments)
        return _manager
