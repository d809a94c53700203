"""A store held by another process: `serve --workers N`'s HTTP workers use the DuckDB store of
the process that owns it (store/owner.py) through a Unix socket.

Every `EventStore` call goes over the socket and comes back with the owner's answer: the
summaries of store/base.py, the statuses of an append (sent only once the owner's group commit
is on disk, so a 200 still means stored), or the owner's error (StoreError, ReadTimeout, ...),
raised here as it was there. The concurrent appends of a worker's event loop share one
message; the owner's writer then commits them together with the other workers'.

Messages are length-prefixed pickles. The socket lives in a private folder (mode 0700) that
only the owner's user can enter; pickle is fine between two processes of one user.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from clickstats.store.base import (
    ActionTotal,
    Activity,
    AnyEvent,
    AppendStatus,
    ByVariant,
    ConversionKey,
    ConversionTotals,
    Counts,
    Deleted,
    EventRow,
    EventStore,
    Filters,
    Grouping,
    JudgmentCounts,
    Key,
    LatencyStats,
    Outcome,
    PreferenceSums,
    ProductClicks,
    RankHistogram,
    ReadTimeout,
    SearchesHistogram,
    SearchTotals,
    StoreError,
    SumOptions,
    UserSums,
)

log = logging.getLogger("clickstats.store")

_HEADER = struct.Struct("!I")
#: The reads and deletions a worker may ask of the owner: the store's methods, by name.
CALLS = frozenset(
    {
        "reset", "delete_user", "delete_before", "generation", "ping", "counts",
        "rank_histogram", "latency", "activity", "preference_sums", "user_sums",
        "searches_per_user", "search_totals", "search_totals_many", "conversion_totals",
        "action_totals", "judgment_counts", "top_products", "latency_histogram",
        "writes_queued", "describe",
    }
)  # fmt: skip


def frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def encode_error(exc: BaseException) -> tuple[str, Any]:
    """An exception as the other side can raise it again. ReadTimeout is rebuilt from its
    limit (its constructor takes no message); any other that does not survive a pickle round
    trip becomes a StoreError with its text."""
    if isinstance(exc, ReadTimeout):
        return ("timeout", exc.limit_s)
    try:
        body = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(body)
    except Exception:
        return ("store", f"{type(exc).__name__}: {exc}")
    return ("pickle", body)


def decode_error(error: tuple[str, Any]) -> BaseException:
    kind, value = error
    if kind == "timeout":
        return ReadTimeout(value)
    if kind == "pickle":
        exc: BaseException = pickle.loads(value)
        return exc
    return StoreError(str(value))


def _gone(address: str, exc: BaseException | None = None) -> StoreError:
    # The message may reach an HTTP answer: the socket's path stays in the log.
    log.warning("the store's owner at %s does not answer: %s", address, exc)
    reason = f" ({exc.strerror or type(exc).__name__})" if isinstance(exc, OSError) else ""
    return StoreError(f"the server's store process does not answer{reason}")


class _Line:
    """A blocking connection for the calls of one thread: one request, then its answer."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(address)
        except OSError as exc:
            self.sock.close()
            raise _gone(address, exc) from exc
        self._ids = itertools.count()

    def call(self, method: str, *args: Any) -> Any:
        try:
            self.sock.sendall(frame((next(self._ids), method, args)))
            (_, ok, value) = pickle.loads(self._read(_HEADER.unpack(self._read(4))[0]))
        except (OSError, EOFError) as exc:
            self.close()
            raise _gone(self.address, exc) from exc
        if not ok:
            raise decode_error(value)
        return value

    def _read(self, size: int) -> bytes:
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise EOFError("connection closed")
            got += n
        return bytes(buffer)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _AsyncLine:
    """The appends of one event loop: those made in one turn of the loop go as one message;
    answers come back by message id, in whatever order the owner's commits finish."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._pending: list[tuple[Sequence[AnyEvent], asyncio.Future[list[AppendStatus]]]] = []
        self._waiting: dict[int, list[asyncio.Future[list[AppendStatus]]]] = {}
        self._ids = itertools.count()
        self._reader_task: asyncio.Task[None] | None = None

    async def append(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        if self._writer is None:
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            await asyncio.shield(self._connecting)
        future: asyncio.Future[list[AppendStatus]] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((events, future))
        return await future

    async def _connect(self) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(self.address)
        except OSError as exc:
            self._connecting = None
            raise _gone(self.address, exc) from exc
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read_answers(reader))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self._writer is None or self._writer.is_closing():
            self._fail([f for _, f in pending], _gone(self.address))
            return
        message_id = next(self._ids)
        self._waiting[message_id] = [f for _, f in pending]
        self._writer.write(frame((message_id, "append", [list(e) for e, _ in pending])))

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        error: BaseException | None = None
        try:
            while True:
                size = _HEADER.unpack(await reader.readexactly(4))[0]
                (message_id, ok, value) = pickle.loads(await reader.readexactly(size))
                futures = self._waiting.pop(message_id, [])
                if not ok:
                    self._fail(futures, decode_error(value))
                    continue
                for future, (done, result) in zip(futures, value, strict=True):
                    if future.done():  # the request was cancelled (its client went away)
                        continue
                    if done:
                        future.set_result(result)
                    else:
                        future.set_exception(decode_error(result))
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            error = exc
        finally:
            # The owner is gone (or this line was closed): every waiting request hears it,
            # the next ones connect again.
            if self._writer is not None:
                self._writer.close()
            self._writer, self._connecting = None, None
            waiting, self._waiting = self._waiting, {}
            futures = [f for fs in waiting.values() for f in fs]
            if futures:
                self._fail(futures, _gone(self.address, error))

    @staticmethod
    def _fail(futures: list[asyncio.Future[list[AppendStatus]]], error: BaseException) -> None:
        for future in futures:
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()


class RemoteStore(EventStore):
    """The EventStore of the process that owns the store (`StoreOwner`), at a Unix socket."""

    kind = "duckdb"

    def __init__(self, address: str) -> None:
        self.address = address
        #: the owner's file (the size gauge of /metrics reads it), from `open`
        self.path: str | None = None
        self._local = threading.local()
        self._lines: list[_Line] = []
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, _AsyncLine] = {}

    def _line(self) -> _Line:
        line: _Line | None = getattr(self._local, "line", None)
        if line is None or line.sock.fileno() < 0:
            line = _Line(self.address)
            self._local.line = line
            with self._lock:
                self._lines.append(line)
        return line

    def _call(self, method: str, *args: Any) -> Any:
        return self._line().call(method, *args)

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Ask the owner what its store is (its kind, file, limits): they are the same here."""
        about: dict[str, Any] = self._call("describe")
        self.kind = about["kind"]
        self.path = about["path"]
        self.read_timeout_s = about["read_timeout_s"]
        self.attribution_window = about["attribution_window"]
        self.read_only = about["read_only"]

    def close(self) -> None:
        """Hang up; the owner's store stays open (the owner closes it)."""
        with self._lock:
            lines, self._lines = self._lines, []
            loops, self._loops = self._loops, {}
        for line in lines:
            line.close()
        for async_line in loops.values():
            async_line.close()
        self._local = threading.local()

    # -- writes ----------------------------------------------------------------------------

    async def append(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        if not events:
            return []
        loop = asyncio.get_running_loop()
        line = self._loops.get(loop)
        if line is None:
            with self._lock:
                line = self._loops.setdefault(loop, _AsyncLine(self.address))
        return await line.append(events)

    def append_sync(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        if not events:
            return []
        result: list[AppendStatus] = self._call("append_sync", list(events))
        return result

    def reset(self) -> Deleted:
        result: Deleted = self._call("reset")
        return result

    def delete_user(self, user_id: str) -> Deleted:
        result: Deleted = self._call("delete_user", user_id)
        return result

    def delete_before(self, cutoff: datetime) -> Deleted:
        result: Deleted = self._call("delete_before", cutoff)
        return result

    def writes_queued(self) -> int:
        """Writes waiting for the owner's writer thread (every worker's)."""
        result: int = self._call("writes_queued")
        return result

    def generation(self) -> int | None:
        # The owner is the file's only writer: its count covers every worker's writes.
        result: int | None = self._call("generation")
        return result

    def ping(self) -> None:
        self._call("ping")

    # -- reads -----------------------------------------------------------------------------

    def counts(self, f: Filters, by: ByVariant = ()) -> dict[Key, Counts]:
        result: dict[Key, Counts] = self._call("counts", f, by)
        return result

    def rank_histogram(self, f: Filters, by: ByVariant = ()) -> dict[Key, RankHistogram]:
        result: dict[Key, RankHistogram] = self._call("rank_histogram", f, by)
        return result

    def latency(self, f: Filters, by: ByVariant = ()) -> dict[Key, LatencyStats]:
        result: dict[Key, LatencyStats] = self._call("latency", f, by)
        return result

    def activity(self, f: Filters) -> Activity:
        result: Activity = self._call("activity", f)
        return result

    def preference_sums(
        self,
        since: datetime,
        label: str,
        top_queries: int | None = None,
        outcome: Outcome = "clicks",
    ) -> dict[Key, PreferenceSums]:
        result: dict[Key, PreferenceSums] = self._call(
            "preference_sums", since, label, top_queries, outcome
        )
        return result

    def user_sums(
        self,
        since: datetime,
        variants: Sequence[str],
        max_searches: int | None = None,
        options: SumOptions | None = None,
    ) -> dict[str, UserSums]:
        result: dict[str, UserSums] = self._call(
            "user_sums", since, list(variants), max_searches, options
        )
        return result

    def searches_per_user(
        self, since: datetime, variants: Sequence[str]
    ) -> dict[str, SearchesHistogram]:
        result: dict[str, SearchesHistogram] = self._call(
            "searches_per_user", since, list(variants)
        )
        return result

    def search_totals(self, f: Filters, grouping: Grouping) -> dict[Key, SearchTotals]:
        result: dict[Key, SearchTotals] = self._call("search_totals", f, grouping)
        return result

    def search_totals_many(
        self, f: Filters, groupings: Sequence[Grouping]
    ) -> list[dict[Key, SearchTotals]]:
        result: list[dict[Key, SearchTotals]] = self._call("search_totals_many", f, list(groupings))
        return result

    def conversion_totals(
        self, f: Filters, by: tuple[ConversionKey, ...] = (), tz: str = "UTC"
    ) -> dict[Key, ConversionTotals]:
        result: dict[Key, ConversionTotals] = self._call("conversion_totals", f, by, tz)
        return result

    def action_totals(self, f: Filters) -> list[ActionTotal]:
        result: list[ActionTotal] = self._call("action_totals", f)
        return result

    def judgment_counts(
        self, f: Filters, min_impressions: int = 1, max_rank: int = 20
    ) -> JudgmentCounts:
        result: JudgmentCounts = self._call("judgment_counts", f, min_impressions, max_rank)
        return result

    def top_products(self, f: Filters, top: int) -> list[ProductClicks]:
        result: list[ProductClicks] = self._call("top_products", f, top)
        return result

    def latency_histogram(self, f: Filters) -> dict[float, int]:
        result: dict[float, int] = self._call("latency_histogram", f)
        return result

    def export(
        self, since: datetime | None = None, batch_rows: int = 10_000
    ) -> Iterator[list[EventRow]]:
        # A line of its own: the export is read lazily, between other calls of this thread.
        line = _Line(self.address)
        try:
            export_id = line.call("export_open", since, batch_rows)
            while (rows := line.call("export_next", export_id)) is not None:
                yield rows
        finally:
            line.close()  # the owner ends the export with the connection
