"""The process that owns a store serves it to `serve --workers N`'s HTTP workers.

DuckDB lets one process open a file. `StoreOwner` runs in that process, on a thread of its
own with an event loop, and answers the workers' `RemoteStore` calls (store/remote.py) at a
Unix socket: appends go to the store's one writer thread, so the workers' events are group
committed together and each append is answered once its commit is on disk; reads and
deletions run on a pool of threads, each with its own DuckDB cursor; an export is read batch
by batch as the worker asks for the next one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import pickle
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from clickstats.store.base import AnyEvent, AppendStatus, EventRow, EventStore
from clickstats.store.remote import _HEADER, CALLS, encode_error, frame
from clickstats.store.writer import GroupWritten

log = logging.getLogger("clickstats.store")

#: Threads for the workers' reads: as many reads as this run at once (DuckDB uses every core
#: for each of them anyway).
READ_THREADS = 32


class StoreOwner:
    """Serves an open store at `address` (a Unix socket path in a private folder)."""

    def __init__(self, store: EventStore, address: str) -> None:
        self.store = store
        self.address = address
        self.loop = asyncio.new_event_loop()
        self._pool = concurrent.futures.ThreadPoolExecutor(READ_THREADS, "store-owner")
        self._thread = threading.Thread(target=self._run, name="store-owner", daemon=True)
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._error: BaseException | None = None

    # -- lifecycle (from the main thread) ----------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Stop answering and hang up on every worker (their calls then fail with 503)."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.create_task, self._close())
        self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.address)
        os.chmod(self.address, 0o600)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loop.stop()

    # -- one worker's connection -------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        exports: dict[int, _Export] = {}
        ids = itertools.count()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                size = _HEADER.unpack(await reader.readexactly(4))[0]
                message_id, method, args = pickle.loads(await reader.readexactly(size))
                if method == "append":  # many requests' events: answered together
                    task = asyncio.create_task(self._append(writer, message_id, args))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    continue
                answer: Callable[[], Awaitable[Any]]
                if method == "export_open":
                    export_id = next(ids)
                    exports[export_id] = _Export(self.store.export(*args))
                    answer = _now(export_id)
                elif method == "export_next":
                    answer = exports[args[0]].next
                elif method in CALLS or method == "append_sync":
                    answer = self._in_pool(method, args)
                else:
                    raise ValueError(f"unknown call {method!r}")
                task = asyncio.create_task(self._answer(writer, message_id, answer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (OSError, EOFError, asyncio.IncompleteReadError):
            pass  # the worker hung up (or is gone)
        except asyncio.CancelledError:
            pass  # the owner stops: a connection handler that ends is no error to report
        except Exception:
            log.exception("a worker sent what the store's owner cannot read; hanging up")
        finally:
            self._connections.discard(writer)
            writer.close()
            for export in exports.values():
                export.close()

    async def _append(
        self, writer: asyncio.StreamWriter, message_id: int, batches: list[Sequence[AnyEvent]]
    ) -> None:
        # Each request's events stay one write job (the writer commits them with whatever
        # else is queued): a request hears of its own error, and duplicates are judged as
        # they are in one process.
        outcomes = await asyncio.gather(
            *(self.store.append(events) for events in batches), return_exceptions=True
        )
        answers: list[tuple[bool, list[AppendStatus] | tuple[str, Any]]] = [
            (False, encode_error(o)) if isinstance(o, BaseException) else (True, o)
            for o in outcomes
        ]
        _send(writer, (message_id, True, answers))

    def _in_pool(self, method: str, args: tuple[Any, ...]) -> Callable[[], Awaitable[Any]]:
        if method == "describe":
            return _now(self._describe())
        if method == "writes_queued":
            queued = self.store.writes_queued() if isinstance(self.store, GroupWritten) else 0
            return _now(queued)
        if method == "generation":  # two counters: not worth a thread
            return _now(self.store.generation())
        call = getattr(self.store, method)
        return lambda: self.loop.run_in_executor(self._pool, lambda: call(*args))

    def _describe(self) -> dict[str, Any]:
        store = self.store
        return {
            "kind": store.kind,
            "path": getattr(store, "path", None),
            "read_timeout_s": store.read_timeout_s,
            "attribution_window": store.attribution_window,
            "read_only": store.read_only,
        }

    @staticmethod
    async def _answer(
        writer: asyncio.StreamWriter, message_id: int, answer: Callable[[], Awaitable[Any]]
    ) -> None:
        try:
            value = await answer()
        except Exception as exc:
            _send(writer, (message_id, False, encode_error(exc)))
        else:
            _send(writer, (message_id, True, value))


def _send(writer: asyncio.StreamWriter, message: Any) -> None:
    if not writer.is_closing():
        writer.write(frame(message))


def _now(value: Any) -> Callable[[], Awaitable[Any]]:
    async def answer() -> Any:
        return value

    return answer


class _Export:
    """One export's iterator, read on a thread of its own (its DuckDB cursor stays there)."""

    def __init__(self, rows: Iterator[list[EventRow]]) -> None:
        self.rows = rows
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "store-export")

    async def next(self) -> list[EventRow] | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, next, self.rows, None)

    def close(self) -> None:
        def end() -> None:
            with contextlib.suppress(Exception):
                close = getattr(self.rows, "close", None)
                if close is not None:
                    close()

        self._thread.submit(end)
        self._thread.shutdown(wait=False)
