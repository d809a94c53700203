"""Small documents that live beside the event store: experiment definitions and API keys.

Beside a DuckDB file they are JSON files named after it (``data/clickstats.duckdb`` ->
``data/clickstats.experiments.json``), so two stores in one folder never share them, and a
command can change them while a server holds the database open. On MongoDB they are documents
of the ``clickstats_state`` collection, so every server on that database sees one set.

A write replaces the whole document atomically or fails with `StateWriteError`, leaving the
old document in place; the messages never name a server path.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

STATE_COLLECTION = "clickstats_state"


class StateWriteError(RuntimeError):
    """The document could not be written; the stored one is unchanged."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class StateStore(abc.ABC):
    """Named JSON documents, each read and replaced whole."""

    @abc.abstractmethod
    def read(self, name: str) -> dict[str, Any] | None:
        """The document, or None when it was never written."""

    @abc.abstractmethod
    def write(self, name: str, doc: dict[str, Any]) -> None:
        """Replace the document atomically; StateWriteError when it cannot be written."""

    @abc.abstractmethod
    def version(self, name: str) -> object:
        """Changes whenever the document does (cheap: for caches that reload on change)."""

    def describe(self, name: str) -> str:
        """Where the document lives, without server paths."""
        return name


class FileState(StateStore):
    """``<stem>.<name>.json`` files in one folder."""

    def __init__(self, folder: str | Path, stem: str) -> None:
        self.folder = Path(folder)
        self.stem = stem
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        return self.folder / f"{self.stem}.{name}.json"

    def describe(self, name: str) -> str:
        return f"{self.path(name).name} beside the store"

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            text = self.path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError(f"{self.describe(name)} is not a JSON object")
        return doc

    def write(self, name: str, doc: dict[str, Any]) -> None:
        path = self.path(name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)  # readers see the old file or the new one, never half
            except OSError as exc:
                with contextlib.suppress(OSError):  # a read-only mount refuses even this
                    tmp.unlink(missing_ok=True)
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                reason = "the disk is full" if full else (exc.strerror or type(exc).__name__)
                raise StateWriteError(
                    f"cannot write {self.describe(name)}: {reason}", disk_full=full
                ) from None

    def version(self, name: str) -> object:
        try:
            st = self.path(name).stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


class MongoState(StateStore):
    """Documents ``{_id: name, doc: {...}, rev: n}`` in the ``clickstats_state`` collection."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def describe(self, name: str) -> str:
        return f"the {name!r} document of the {STATE_COLLECTION} collection"

    def read(self, name: str) -> dict[str, Any] | None:
        found = self.collection.find_one({"_id": name})
        return None if found is None else dict(found["doc"])

    def write(self, name: str, doc: dict[str, Any]) -> None:
        from pymongo.errors import PyMongoError

        try:  # one document replaced in one operation: atomic on every MongoDB
            self.collection.update_one(
                {"_id": name}, {"$set": {"doc": doc}, "$inc": {"rev": 1}}, upsert=True
            )
        except PyMongoError as exc:
            raise StateWriteError(f"cannot write {self.describe(name)}: {exc}") from None

    def version(self, name: str) -> object:
        found = self.collection.find_one({"_id": name}, {"rev": 1})
        return None if found is None else found.get("rev")


def open_state(store_url: str) -> StateStore:
    """The state beside the store a URL names (see `clickstats.store.open_store`)."""
    scheme, sep, rest = store_url.partition("://")
    if not sep:
        scheme, rest = "duckdb", store_url
    if scheme == "duckdb":
        path = Path(rest)
        return FileState(path.parent, path.stem if path.suffix else path.name)
    from clickstats.store.mongo import DEFAULT_DATABASE, mongomock_client, split_uri

    database = split_uri(store_url)[2] or DEFAULT_DATABASE
    if scheme == "mongomock":
        client = mongomock_client(store_url)
    elif scheme in ("mongodb", "mongodb+srv"):
        import pymongo

        client = pymongo.MongoClient(store_url, serverSelectionTimeoutMS=5000, appname="clickstats")
    else:
        raise ValueError(f"unknown store {store_url!r}")
    return MongoState(client.get_database(database).get_collection(STATE_COLLECTION))
