"""Reading through a running server (`--server URL`, `--key KEY`): the report, the export and
the judgments over its HTTP API, for when `clickstats serve` holds the DuckDB store.

`clickstats serve` records its address beside a DuckDB store (``<stem>.server.json``, as the
keys and experiments are kept); a command that finds the store held by another process reads
through that server when it answers /health (docs/CLI.md, "Beside a running server").
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click
import httpx
from pydantic import BaseModel, ValidationError

from clickstats.experiments import Experiment
from clickstats.reports.experiment import ExperimentResults, Method
from clickstats.reports.interleaving import InterleavingResults
from clickstats.reports.judgments import JudgmentsQuery, JudgmentsReport
from clickstats.reports.overview import Overview
from clickstats.reports.queries import QueriesReport
from clickstats.state import FileState, StateWriteError, open_state
from clickstats.store.base import Activity

M = TypeVar("M", bound=BaseModel)

#: The state document in which `clickstats serve` leaves its address.
RECORD = "server"
#: Seconds to wait for a server to answer; an export streams for as long as it takes.
TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 2.0
_PID = re.compile(r"\(PID (\d+)\)")


def held(exc: BaseException) -> bool:
    """Whether a store failed to open because another process holds its lock (DuckDB)."""
    return any("Could not set lock" in str(e) for e in (exc, exc.__cause__) if e is not None)


def holder(exc: BaseException) -> int | None:
    """The process holding the lock, as DuckDB's message names it ("... (PID 123)")."""
    for e in (exc, exc.__cause__):
        found = _PID.search(str(e)) if e is not None else None
        if found:
            return int(found[1])
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _record_file(store: str) -> Path | None:
    """Where `serve` records its address for this store: beside a DuckDB file only (a
    MongoDB store is never held, and its state is shared by every server on it)."""
    scheme, sep, _ = store.partition("://")
    if sep and scheme != "duckdb":
        return None
    state = open_state(store)
    return state.path(RECORD) if isinstance(state, FileState) else None


@contextlib.contextmanager
def announced(store: str, host: str, port: int) -> Iterator[None]:
    """While serving, leave this server's address beside its DuckDB store."""
    path = _record_file(store)
    if path is None:
        yield
        return
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    state = open_state(store)
    with contextlib.suppress(StateWriteError):  # a read-only folder only loses the discovery
        state.write(RECORD, {"url": f"http://{shown}:{port}", "pid": os.getpid()})
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def recorded_server(store: str, held_by: int | None = None) -> str | None:
    """The address `clickstats serve` left beside this store, if that server answers and is
    the process holding the store (`held_by`, when the lock error names it).

    The record can outlive its server (uvicorn re-raises SIGTERM after shutting down, which
    skips `announced`'s cleanup): a record of another process, or of one that is gone, is
    ignored, so that another server since started on that port is never taken for it."""
    path = _record_file(store)
    if path is None:
        return None
    try:
        doc = open_state(store).read(RECORD)
    except (OSError, ValueError):
        return None
    url, pid = (doc.get("url"), doc.get("pid")) if doc else (None, None)
    if not isinstance(url, str) or not isinstance(pid, int):
        return None
    if (held_by is not None and pid != held_by) or not _alive(pid):
        return None
    try:
        answered = httpx.get(f"{url}/health", timeout=PROBE_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return None
    return url if answered else None


class Server:
    """A clickstats server's read endpoints; every failure is one line for the user."""

    def __init__(self, url: str, key: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def _check(self, answer: httpx.Response) -> None:
        if answer.status_code < 400:
            return
        answer.read()
        try:
            detail: Any = answer.json().get("detail")
        except ValueError:
            detail = None
        detail = detail if isinstance(detail, str) else answer.text[:300] or answer.reason_phrase
        hint = ""
        if answer.status_code in (401, 403):
            hint = "\nGive a read key: --key KEY or CLICKSTATS_KEY (clickstats keys create read)."
        raise click.ClickException(
            f"{self.url} answered {answer.status_code} to {answer.request.url.path}: {detail}{hint}"
        )

    def _unreachable(self, exc: httpx.HTTPError | httpx.InvalidURL) -> click.ClickException:
        return click.ClickException(f"cannot read from {self.url}: {exc or type(exc).__name__}")

    def get(self, path: str, model: type[M], params: Mapping[str, Any] | None = None) -> M:
        """GET `path` and its JSON as `model` (the endpoint's response model)."""
        try:
            answer = self.http.get(path, params=_params(params))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from exc
        self._check(answer)
        try:
            return model.model_validate_json(answer.content)
        except ValidationError as exc:
            raise click.ClickException(
                f"{self.url}{path} did not answer a {model.__name__}: is it a clickstats "
                f"server of this version? ({exc.error_count()} problems)"
            ) from exc

    @contextlib.contextmanager
    def stream(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[Iterator[bytes]]:
        """The body of GET `path`, piece by piece as it arrives."""
        try:
            with self.http.stream("GET", path, params=_params(params)) as answer:
                self._check(answer)
                yield answer.iter_bytes()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from exc


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None}


class _Experiments(BaseModel):  # GET /experiments
    experiments: list[Experiment]


class RemoteExperiments:
    """The server's experiments, as `pick_experiments` reads an `ExperimentManager`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.where = server.url

    def list(self) -> list[Experiment]:
        return self.server.get("/experiments", _Experiments).experiments


class RemoteService:
    """What `render_report` reads from a `ClickTrackingService`, from a server's API."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def get_overview(self, *, days: int) -> Overview:
        return self.server.get("/analytics/overview", Overview, {"days": days})

    def get_activity(self) -> Activity | None:
        return None  # the API has no such read: the report says so without a date

    def get_queries(self, *, days: int, limit: int) -> QueriesReport:
        return self.server.get("/analytics/queries", QueriesReport, {"days": days, "limit": limit})

    def get_interleaving_results(self, experiment: Experiment, *, days: int) -> InterleavingResults:
        path = f"/experiments/{quote(experiment.name, safe='')}/interleaving"
        return self.server.get(path, InterleavingResults, {"days": days})

    def get_experiment_results(
        self, experiment: Experiment, *, days: int, method: Method
    ) -> ExperimentResults:
        path = f"/experiments/{quote(experiment.name, safe='')}/results"
        return self.server.get(path, ExperimentResults, {"days": days, "method": method})

    def get_judgments(self, query: JudgmentsQuery) -> JudgmentsReport:
        params = {
            "days": query.days,
            "model": query.model,
            "min_impressions": query.min_impressions,
            "max_rank": query.max_rank,
            "variant": query.variant,
            "user_id": query.user_id,
        }
        return self.server.get("/analytics/judgments", JudgmentsReport, params)


def download(server: Server, path: Path, fmt: str, since: datetime | None = None) -> int:
    """GET /analytics/export into `path`, written beside it and renamed when complete (as
    `export_file` does); the bytes written."""
    partial = path.with_name(f".{path.name}.partial")
    params = {"format": fmt, "since": since.isoformat() if since else None}
    written = 0
    try:
        with server.stream("/analytics/export", params) as pieces, partial.open("wb") as file:
            for piece in pieces:
                file.write(piece)
                written += len(piece)
        os.replace(partial, path)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return written
