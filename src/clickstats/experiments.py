"""A/B experiments: deterministic, sticky, weighted, independent variant assignment.

A user's variant is a pure function of (experiment salt, user id): SHA-256 of the two maps
the user to a point in [0, 1), and the experiment's cumulative weights cut that interval
into variants. The same user therefore gets the same variant in every process and after
every restart, and two experiments (salted by their names) split users independently.

Experiments live beside the event store, in its state document "experiments"
(`clickstats.state`: ``<stem>.experiments.json`` beside a DuckDB file, a document of the
``clickstats_state`` collection on MongoDB), or in the JSON file CLICKSTATS_EXPERIMENTS names.
An absent document is created with the default experiment `search_ranking` (`search_v1` /
`search_v2`, 50/50). A change builds the new set, writes it, and only then replaces the set in
memory, so a write that fails (a full disk) changes nothing; a change made by another process
(another server on the same MongoDB, a hand edit) is picked up within a second.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from clickstats import metrics
from clickstats.events import Currency, Id, IsoTime, Unicode, integral, utcnow
from clickstats.metrics import METRICS
from clickstats.state import FileState, StateStore, open_state
from clickstats.stats.capping import PERCENTILE_PATTERN, Cap, parse_cap
from clickstats.stats.outliers import DEFAULT_OUTLIER_Z

if TYPE_CHECKING:
    from clickstats.settings import Settings

log = logging.getLogger("clickstats.experiments")

DEFAULT_EXPERIMENT = "search_ranking"
#: The state document the experiments are kept in.
DOCUMENT = "experiments"
#: Where experiments were kept before they moved beside the store (relative to the working
#: directory); imported once into the store's document (see `open_experiments`).
LEGACY_FILE = Path("data/experiments.json")
MAX_VARIANTS = 20
MAX_DESCRIPTION = 1000
#: Weights are relative; a cap keeps their sum finite (1e308 + 1e308 overflows to inf).
MAX_WEIGHT = 1e6
#: How often readers look whether another process changed the document, in seconds.
RELOAD_SECONDS = 1.0
_SCALE = float(2**64)


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class ExperimentType(StrEnum):
    AB = "ab"  # each user sees one variant
    INTERLEAVING = "interleaving"  # every search shows both rankers' results, team-drafted


# Strict: true is no weight (lax mode would read it as 1).
Weight = Annotated[float, Field(gt=0, le=MAX_WEIGHT, allow_inf_nan=False, strict=True)]
DEFAULT_CUPED_DAYS = 14
MAX_CUPED_DAYS = 90


def _cap_setting(value: object) -> object:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float | str)):
        raise ValueError("must be a number, a percentile such as 'p99', or null")
    if value is not None:
        parse_cap(value)  # raises ValueError saying what is accepted
    return value


#: A cap as an experiment writes it: a positive number, "pNN" (a percentile of this analysis's
#: users), or null (not capped). One error per bad value, at its key.
CapSetting = Annotated[
    float | str | None,
    BeforeValidator(_cap_setting),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": PERCENTILE_PATTERN},
                {"type": "null"},
            ]
        }
    ),
]


def default_caps() -> dict[str, Cap]:
    """The registry's caps (`metrics.Column.cap`, a percentile): revenue at p99."""
    return {
        name: Cap(percentile=column.cap)
        for name, column in metrics.COLUMNS.items()
        if column.cap is not None
    }


def _column_of(name: str) -> str | None:
    """The column a cap named `name` applies to: itself, or a metric's numerator."""
    if name in metrics.COLUMNS:
        return name
    metric = METRICS.get(name)
    return None if metric is None else metric.numerator


class Experiment(BaseModel):
    """One experiment. The first variant is the control."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    variants: dict[Id, Weight] = Field(
        description=f"variant -> weight (2 to {MAX_VARIANTS} variants; positive numbers up to "
        f"{MAX_WEIGHT:g}; shares are weight / total)",
        # the validator below says it in words; the schema says it too
        json_schema_extra={"minProperties": 2, "maxProperties": MAX_VARIANTS},
    )
    type: ExperimentType = ExperimentType.AB
    status: ExperimentStatus = ExperimentStatus.RUNNING
    description: str = Field("", max_length=MAX_DESCRIPTION)
    primary_metric: str = Field(
        "search_ctr",
        description="the metric a decision is made on (see docs/STATISTICS.md)",
        json_schema_extra={"enum": list(METRICS)},
    )
    outlier_z: float = Field(
        DEFAULT_OUTLIER_Z,
        ge=0,
        le=100,
        allow_inf_nan=False,
        strict=True,
        description=(
            "leave out of the analysis users whose searches in the window are more than this "
            "many robust standard deviations above the median (log scale; docs/STATISTICS.md); "
            "0 keeps every user"
        ),
    )
    caps: dict[str, CapSetting] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"enum": [*metrics.COLUMNS, *METRICS]}},
        description=(
            "per-user caps (winsorizing) by column or metric name (a metric's name caps its "
            'numerator column): a positive number, "pNN" for a percentile of the non-zero values '
            'of every user of the analysis (e.g. "p99"), or null for no cap; columns not named keep the '
            "registry's default (revenue: p99; docs/STATISTICS.md)"
        ),
    )
    cuped: bool = Field(
        True,
        strict=True,
        description="adjust per-user means (revenue per user) by each user's value before "
        "exposure (CUPED; docs/STATISTICS.md)",
    )
    cuped_days: Annotated[
        int, Strict(), Field(ge=1, le=MAX_CUPED_DAYS), BeforeValidator(integral)
    ] = Field(
        DEFAULT_CUPED_DAYS, description="days before a user's first exposure that CUPED reads"
    )
    currency: Currency | None = Field(
        None,
        description="ISO 4217 code of the revenue metrics; null: the currency of most "
        "purchases in the analysis window",
    )
    salt: Unicode | None = Field(
        None, description="hash salt; defaults to the name. Change it to reshuffle users."
    )
    created_at: IsoTime = Field(default_factory=utcnow)
    updated_at: IsoTime = Field(default_factory=utcnow)

    @field_validator("variants")
    @classmethod
    def _two_to_twenty(cls, value: dict[str, float]) -> dict[str, float]:
        if len(value) < 2:
            raise ValueError("needs at least two variants")
        if len(value) > MAX_VARIANTS:
            raise ValueError(f"has {len(value)} variants; at most {MAX_VARIANTS} are allowed")
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

    @field_validator("caps")
    @classmethod
    def _known_columns(cls, value: dict[str, float | str | None]) -> dict[str, float | str | None]:
        named: dict[str, str] = {}
        for name, setting in value.items():
            column = _column_of(name)
            if column is None:
                known = ", ".join([*metrics.COLUMNS, *METRICS])
                raise ValueError(f"{name!r} is neither a column nor a metric; one of {known}")
            other = named.setdefault(column, name)
            if other != name and value[other] != setting:
                raise ValueError(
                    f"{other!r} and {name!r} both cap the column {column!r}, differently; "
                    "name it once"
                )
        return value

    def column_caps(self) -> dict[str, Cap]:
        """The cap of each capped column: the registry's defaults, then `caps` (null: none)."""
        out = default_caps()
        for name, setting in self.caps.items():
            column = _column_of(name)
            if column is None:
                continue  # a column since removed from the registry
            if setting is None:
                out.pop(column, None)
            else:
                out[column] = parse_cap(setting)
        return out

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


class InvalidExperiments(ValueError):
    """The stored document is not a valid set of experiments (e.g. edited by hand)."""


class _MemoryState(StateStore):
    """Documents kept in this process only: the demo's throwaway experiments."""

    def __init__(self) -> None:
        self._docs: dict[str, dict[str, Any]] = {}
        self._revisions: dict[str, int] = {}

    def describe(self, name: str) -> str:
        return "memory (not saved)"

    def read(self, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self._docs.get(name))

    def write(self, name: str, doc: dict[str, Any]) -> None:
        self._docs[name] = copy.deepcopy(doc)
        self._revisions[name] = self._revisions.get(name, 0) + 1

    def version(self, name: str) -> object:
        return self._revisions.get(name)


class _OneFile(FileState):
    """One JSON file of the operator's choosing (CLICKSTATS_EXPERIMENTS), written the way the
    state beside the store is: atomically, or not at all."""

    def __init__(self, file: str | Path) -> None:
        self.file = Path(file)
        super().__init__(self.file.parent, self.file.stem)

    def path(self, name: str) -> Path:
        return self.file

    def describe(self, name: str) -> str:
        return f"the experiments file {self.file.name}"


def _dump(experiments: dict[str, Experiment]) -> dict[str, Any]:
    return {"experiments": [e.model_dump(mode="json") for e in experiments.values()]}


def _parse(doc: Any, where: str) -> dict[str, Experiment]:
    try:
        loaded = [Experiment.model_validate(item) for item in doc["experiments"]]
    except (KeyError, TypeError) as exc:
        raise InvalidExperiments(f'{where} has no list "experiments" ({exc!r})') from None
    except ValidationError as exc:
        raise InvalidExperiments(f"{where} holds an invalid experiment: {exc}") from None
    return {e.name: e for e in loaded}


class ExperimentManager:
    """The experiments of one state document; thread-safe.

    `state` is a StateStore (its document "experiments"), a file path (that one JSON file),
    or None (kept in memory only). An absent document is written with the default experiment
    unless `create` is false; `legacy`, a file of the old format, is imported instead of the
    defaults when the document does not exist yet.
    """

    def __init__(
        self,
        state: StateStore | str | Path | None = None,
        *,
        create: bool = True,
        legacy: Path | None = None,
        reload_seconds: float = RELOAD_SECONDS,
    ) -> None:
        if state is None:
            state = _MemoryState()
        elif not isinstance(state, StateStore):
            state = _OneFile(state)
        self.state = state
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()  # one change or reload at a time
        self._version: object = None  # the stored document's version that memory matches
        self._checked = time.monotonic()
        self._experiments = self._load(create, legacy)

    @property
    def where(self) -> str:
        """Where the experiments are kept, without server paths."""
        return self.state.describe(DOCUMENT)

    def _load(self, create: bool, legacy: Path | None) -> dict[str, Experiment]:
        version = self.state.version(DOCUMENT)  # before reading: a later change is seen
        doc = self._read()
        if doc is not None:
            self._version = version
            return _parse(doc, self.where)
        source = "the default experiment"
        if legacy is not None and legacy.is_file():
            try:
                raw = json.loads(legacy.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise InvalidExperiments(f"{legacy} is not JSON: {exc}") from None
            experiments = _parse(raw, str(legacy))
            source = str(legacy)
        else:
            experiments = {e.name: e for e in default_experiments()}
        if not create:
            if legacy is not None:
                log.info("experiments read from %s (%s does not exist yet)", legacy, self.where)
            return experiments
        try:
            self.state.write(DOCUMENT, _dump(experiments))
        except Exception as exc:  # a full disk must not stop a server from starting
            log.warning("experiments kept in memory until a change can be written: %s", exc)
            return experiments
        self._version = self.state.version(DOCUMENT)
        if legacy is not None and source == str(legacy):
            log.warning(
                "experiments imported from %s into %s; that file is no longer read",
                legacy,
                self.where,
            )
        else:
            log.info("%s created with %s", self.where, source)
        return experiments

    def _read(self) -> dict[str, Any] | None:
        try:
            return self.state.read(DOCUMENT)
        except json.JSONDecodeError as exc:  # said with the document's name, not its path
            raise InvalidExperiments(f"{self.where} is not valid JSON: {exc}") from None

    def _reload_if_changed(self) -> None:
        """Take another process's version of the document (lock held). A document that
        cannot be read or is invalid leaves the experiments in memory as they are."""
        try:
            version = self.state.version(DOCUMENT)
            if version == self._version:
                return
            self._version = version  # an invalid version is reported once, not every second
            doc = self._read()
            if doc is not None:
                self._experiments = _parse(doc, self.where)
                log.info("experiments reloaded: %s changed", self.where)
        except Exception as exc:  # a hand edit gone wrong, or an unreachable database
            log.warning("experiments in memory kept: %s", exc)

    def _current(self) -> dict[str, Experiment]:
        now = time.monotonic()
        if now - self._checked >= self.reload_seconds and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                self._reload_if_changed()
            finally:
                self._lock.release()
        return self._experiments

    def _change(
        self,
        build: Callable[[dict[str, Experiment]], Experiment],
        check: Callable[[Experiment], None] | None,
    ) -> Experiment:
        """Build the changed experiment, write the new set, and only then take it: a failed
        write (StateWriteError) leaves memory and the stored document as they were."""
        with self._lock:
            self._reload_if_changed()  # build on another server's latest change, not over it
            changed = build(self._experiments)
            if check is not None:
                check(changed)
            new = {**self._experiments, changed.name: changed}
            self.state.write(DOCUMENT, _dump(new))
            self._experiments = new
            self._version = self.state.version(DOCUMENT)
            self._checked = time.monotonic()
            return changed

    def list(self) -> list[Experiment]:
        return list(self._current().values())

    def get(self, name: str) -> Experiment:
        try:
            return self._current()[name]
        except KeyError:
            raise UnknownExperiment(name) from None

    def put(
        self, experiment: Experiment, check: Callable[[Experiment], None] | None = None
    ) -> Experiment:
        """Create or replace an experiment (replacing keeps its creation time). `check` may
        refuse the experiment as it would be stored (by raising)."""

        def build(current: dict[str, Experiment]) -> Experiment:
            old = current.get(experiment.name)
            if old is None:
                return experiment
            return experiment.model_copy(
                update={"created_at": old.created_at, "updated_at": utcnow()}
            )

        return self._change(build, check)

    def set_status(
        self,
        name: str,
        status: ExperimentStatus,
        check: Callable[[Experiment], None] | None = None,
    ) -> Experiment:
        def build(current: dict[str, Experiment]) -> Experiment:
            if name not in current:
                raise UnknownExperiment(name)
            return current[name].model_copy(update={"status": status, "updated_at": utcnow()})

        return self._change(build, check)

    def start(self, name: str, check: Callable[[Experiment], None] | None = None) -> Experiment:
        return self.set_status(name, ExperimentStatus.RUNNING, check)

    def stop(self, name: str) -> Experiment:
        return self.set_status(name, ExperimentStatus.STOPPED)

    def active_interleaving(self) -> Experiment | None:
        """The running interleaving experiment, if any: /search/text then serves its merged
        lists to everyone (the first one defined, when several run)."""
        return next(
            (
                e
                for e in self._current().values()
                if e.type is ExperimentType.INTERLEAVING and e.status is ExperimentStatus.RUNNING
            ),
            None,
        )

    def assign_variant(self, user_id: str, experiment: str = DEFAULT_EXPERIMENT) -> str:
        """The variant of `experiment` this user sees (the original design's call)."""
        return self.get(experiment).assign(user_id)

    def to_dict(self) -> dict[str, Any]:
        return _dump(self._current())


def _store_path(store_url: str) -> Path | None:
    """A DuckDB store's file, None for other stores."""
    scheme, sep, rest = store_url.partition("://")
    if not sep:
        return Path(store_url)
    return Path(rest) if scheme == "duckdb" else None


def legacy_file(store_url: str) -> Path | None:
    """The old default experiments file, when it exists and was this store's: the old
    defaults put it beside the DuckDB file (both in data/); a MongoDB deployment's servers
    read it wherever they ran. Other stores (another folder's DuckDB file, mongomock) never
    used it: importing it there would hand them a stranger's experiments."""
    if not LEGACY_FILE.is_file():
        return None
    if store_url.startswith(("mongodb://", "mongodb+srv://")):
        return LEGACY_FILE
    path = _store_path(store_url)
    if path is not None and path.resolve().parent == LEGACY_FILE.resolve().parent:
        return LEGACY_FILE
    return None


def open_experiments(settings: Settings, *, create: bool = True) -> ExperimentManager:
    """The experiments of `settings`: the file `settings.experiments` names, else the state
    document beside `settings.store` (the old data/experiments.json imported into it once,
    when it was this store's; see `legacy_file`). Read-only callers (reports) pass
    create=False: nothing is written."""
    if settings.experiments:
        return ExperimentManager(settings.experiments, create=create)
    state = open_state(settings.store)
    legacy = legacy_file(settings.store)
    if legacy is None and LEGACY_FILE.is_file() and state.version(DOCUMENT) is None:
        log.warning(
            "%s is not read: experiments now live in %s; set CLICKSTATS_EXPERIMENTS=%s to "
            "keep using that file",
            LEGACY_FILE,
            state.describe(DOCUMENT),
            LEGACY_FILE,
        )
    return ExperimentManager(state, create=create, legacy=legacy)


_manager: ExperimentManager | None = None
_manager_lock = threading.Lock()


def get_experiment_manager() -> ExperimentManager:
    """The process-wide manager, on the experiments of CLICKSTATS_STORE (or of the file
    CLICKSTATS_EXPERIMENTS names)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            from clickstats.settings import Settings

            _manager = open_experiments(Settings())
        return _manager
