"""Group commit: one writer thread, one write per batch, every caller awaits its batch.

Callers queue their events; the writer thread takes everything queued (up to a row cap),
drops repeated event ids within the batch, hands the rest to the backend's `write` (one
transaction or bulk insert per table), and then answers every caller. Under load many requests share one commit,
which is what makes durable ingestion fast. Async callers on the same event loop are
answered with a single wake-up of that loop per batch, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from clickstats.store.base import (
    EVENT_TYPES,
    AnyEvent,
    AppendStatus,
    Batch,
    Deleted,
    Selection,
    StoreError,
    StoreFull,
)

E = TypeVar("E", bound=AnyEvent)
log = logging.getLogger("clickstats.store")

#: Seconds without a write after which the writer runs its idle upkeep.
IDLE_AFTER_S = 0.2

#: Stores the new events of a batch (one transaction or bulk insert per table); returns, per
#: event type, the event ids that were new. Ids already stored are left alone: they are
#: duplicates. On an error part of the batch may be stored: callers hear of the error, and
#: their retry (same event ids) finds the stored part as duplicates.
WriteBatch = Callable[[Batch], dict[str, set[str]]]
#: Deletes the events a Selection names (all of them for an empty one), in one transaction
#: where the backend has them; returns how many of each kind went.
DeleteEvents = Callable[[Selection], Deleted]
#: Told by the writer thread of each group write that succeeded: how many events the write
#: took (repeats included) and how long it took in seconds (clickstats.telemetry).
WriteObserver = Callable[[int, float], None]


def first_of_each_id(events: Iterable[E]) -> list[E]:
    seen: set[str] = set()
    out: list[E] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            out.append(event)
    return out


@dataclass(slots=True)
class _Job:
    kind: Literal["append", "delete", "stop"]
    events: Sequence[AnyEvent] = ()
    selection: Selection | None = None  # of a delete
    future: Future[Any] | None = None  # a thread waiting
    waiter: asyncio.Future[Any] | None = None  # or a coroutine waiting


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for waiter, result, error in outcomes:
        if waiter.done():  # the request was cancelled (client went away)
            continue
        if error is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(error)


class GroupWritten:
    """The write half of a store whose writes all go through one GroupWriter."""

    _writer: GroupWriter | None
    #: how the store is named in errors, e.g. "the DuckDB store at data/x.duckdb"
    label: str
    #: kept here, not only on the writer: a writer made again (DuckDB's reopen) gets it too
    _observer: WriteObserver | None = None

    def _group_writer(self) -> GroupWriter:
        if self._writer is None:
            raise StoreError(f"{self.label} is not open")
        self._writer.observer = self._observer
        return self._writer

    def observe_writes(self, observer: WriteObserver | None) -> None:
        """Have `observer` told of every group write from now on (None: of none)."""
        self._observer = observer
        if self._writer is not None:
            self._writer.observer = observer

    def writes_queued(self) -> int:
        """Writes (requests' appends, deletions) waiting for the writer thread: about."""
        writer = self._writer
        return writer.queued() if writer is not None else 0

    async def append(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        return await self._group_writer().append(events)

    def append_sync(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        return self._group_writer().append_sync(events)

    def reset(self) -> Deleted:
        return self._group_writer().delete(Selection())

    def delete_user(self, user_id: str) -> Deleted:
        return self._group_writer().delete(Selection(user_id=user_id))

    def delete_before(self, cutoff: datetime) -> Deleted:
        return self._group_writer().delete(Selection(before=cutoff))


class GroupWriter:
    def __init__(
        self,
        name: str,
        write: WriteBatch,
        delete: DeleteEvents,
        *,
        max_batch_rows: int = 50_000,
        on_exit: Callable[[], None] | None = None,
        idle: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._write = write
        self._delete = delete
        self._on_exit = on_exit
        #: run by the writer thread once nothing has been queued for IDLE_AFTER_S after a write
        #: (upkeep that must not delay answers: the DuckDB store merges its click rollup)
        self._idle = idle
        self.max_batch_rows = max_batch_rows
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: Successful writes (commits and deletions) so far: a cache of aggregates made at one
        #: count is exact for as long as the count has not moved.
        self.commits = 0
        self.observer: WriteObserver | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued write, then end the thread."""
        if self._thread is None:
            return
        self._call(_Job("stop"))
        self._thread.join()
        self._thread = None

    # -- callers -------------------------------------------------------------------------

    def _put(self, job: _Job) -> None:
        if self._thread is None or not self._thread.is_alive():
            raise StoreError(f"the store {self.name} is not open")
        self._queue.put(job)

    def _call(self, job: _Job) -> Any:
        job.future = Future()
        self._put(job)
        return job.future.result()

    async def append(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        if not events:
            return []
        job = _Job("append", events, waiter=asyncio.get_running_loop().create_future())
        self._put(job)
        assert job.waiter is not None
        result: list[AppendStatus] = await job.waiter
        return result

    def append_sync(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        if not events:
            return []
        result: list[AppendStatus] = self._call(_Job("append", events))
        return result

    def delete(self, selection: Selection) -> Deleted:
        """Delete events between two batches: appends queued before it are stored first, and
        so deleted too when it names them; those queued after it stay."""
        deleted: Deleted = self._call(_Job("delete", selection=selection))
        return deleted

    def queued(self) -> int:
        return self._queue.qsize()

    # -- the writer thread ------------------------------------------------------------------

    def _loop(self) -> None:
        due = False  # the idle upkeep, once nothing has been queued for IDLE_AFTER_S
        try:
            while True:
                try:
                    jobs = [self._queue.get(timeout=IDLE_AFTER_S if due else None)]
                except queue.Empty:
                    due = False
                    self._upkeep()
                    continue
                due = self._idle is not None
                rows = len(jobs[0].events)
                while jobs[-1].kind != "stop" and rows < self.max_batch_rows:
                    try:
                        jobs.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                    rows += len(jobs[-1].events)
                if self._run(jobs):
                    return
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _upkeep(self) -> None:
        if self._idle is None:
            return
        try:
            self._idle()
        except Exception:  # upkeep never stops the writer
            log.exception("%s: upkeep between writes failed", self.name)

    def _run(self, jobs: list[_Job]) -> bool:
        """Run jobs in order, each run of consecutive appends as one write. True on stop."""
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        appends: list[_Job] = []
        stop = False
        for job in jobs:
            if job.kind == "append":
                appends.append(job)
                continue
            if appends:
                outcomes += self._commit(appends)
                appends = []
            if job.kind == "stop":
                outcomes.append((job, None, None))
                stop = True
                break
            assert job.selection is not None
            try:
                outcomes.append((job, self._delete(job.selection), None))
            except StoreFull as exc:  # kept as it is: a full disk is answered 507
                outcomes.append((job, None, exc))
            except Exception as exc:
                error = StoreError(f"deleting events from {self.name} failed: {exc}")
                outcomes.append((job, None, error))
            finally:  # even a failed deletion may have removed something: caches must go
                self.commits += 1
        if appends:
            outcomes += self._commit(appends)
        self._answer(outcomes)
        return stop

    def _commit(self, jobs: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        events = [event for job in jobs for event in job.events]
        batch: Batch = {
            kind: first_of_each_id(e for e in events if e.type == kind) for kind in EVENT_TYPES
        }
        started = time.perf_counter()
        try:
            fresh = self._write(batch)
        except StoreFull as exc:  # kept as it is: a full disk is answered 507
            return [(job, None, exc) for job in jobs]
        except Exception as exc:  # every caller hears of it, and may retry safely
            error = StoreError(f"write to {self.name} failed: {exc}")
            return [(job, None, error) for job in jobs]
        self.commits += 1
        observer = self.observer
        if observer is not None:
            observer(len(events), time.perf_counter() - started)
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        for job in jobs:
            statuses = []
            for event in job.events:
                ids = fresh[event.type]
                if event.event_id in ids:
                    ids.discard(event.event_id)  # a second copy in the same batch is a duplicate
                    statuses.append(AppendStatus.ACCEPTED)
                else:
                    statuses.append(AppendStatus.DUPLICATE)
            outcomes.append((job, statuses, None))
        return outcomes

    @staticmethod
    def _answer(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for job, result, error in outcomes:
            if job.waiter is not None:
                by_loop.setdefault(job.waiter.get_loop(), []).append((job.waiter, result, error))
            elif job.future is not None:
                if error is None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(error)
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, settled)
