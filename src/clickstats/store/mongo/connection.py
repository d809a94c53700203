"""Connecting to MongoDB: URIs (parsing, redaction), the write concern, the client, the
collections and their indexes, PyMongo's errors in one line, and the in-process mongomock
client of tests and demos."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import pymongo
from pymongo.errors import BulkWriteError
from pymongo.write_concern import WriteConcern

from clickstats.store.base import StoreError

CLICKS = "click_events"
IMPRESSIONS = "impressions"
CONVERSIONS = "conversions"
ACTIONS = "actions"
#: Each event type's collection, in the order of store.base.EVENT_TYPES.
COLLECTIONS: dict[str, str] = {
    "impression": IMPRESSIONS,
    "click": CLICKS,
    "conversion": CONVERSIONS,
    "action": ACTIONS,
}
DEFAULT_DATABASE = "clickstats"
#: How long start-up and each request wait for a reachable server; the URI's
#: serverSelectionTimeoutMS overrides it.
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5_000
#: How long a write waits for its write concern (a majority of the replica set) before it
#: fails with a 503, unless the URI sets wtimeoutMS or timeoutMS: without a limit, a write
#: would wait as long as a majority is down.
DEFAULT_WTIMEOUT_MS = 10_000
DUPLICATE_KEY = 11000

#: Secondary indexes of both collections, created (idempotently) by open(). The unique index
#: on the event id is the built-in ``_id_`` index: ``_id`` holds the event id.
INDEXES: dict[str, list[tuple[str, int]]] = {
    "timestamp": [("timestamp", pymongo.ASCENDING)],
    "user_id_timestamp": [("user_id", pymongo.ASCENDING), ("timestamp", pymongo.ASCENDING)],
    "variant_timestamp": [("variant", pymongo.ASCENDING), ("timestamp", pymongo.ASCENDING)],
    "search_id": [("search_id", pymongo.ASCENDING)],
}

#: Builds a client from a URI and keyword options: pymongo.MongoClient, or a stand-in.
ClientFactory = Callable[..., Any]

# -- URIs --------------------------------------------------------------------------------------

_SECRET_OPTIONS = ("password", "token", "secret", "authmechanismproperties")


def split_uri(uri: str) -> tuple[str, str, str, str]:
    """scheme, authority (user:password@hosts), database ('' if none), query string."""
    scheme, _, rest = uri.partition("://")
    authority, _, tail = rest.partition("/")
    if "?" in authority:  # mongodb://host?opts (no slash) is not valid, but don't misread it
        authority, _, query = authority.partition("?")
        return scheme, authority, "", query
    database, _, query = tail.partition("?")
    return scheme, authority, unquote(database), query


def uri_options(uri: str) -> dict[str, str]:
    """The URI's options, keys lower-cased (MongoDB URI options are case-insensitive)."""
    query = split_uri(uri)[3]
    return {key.lower(): value for key, value in parse_qsl(query, keep_blank_values=True)}


def redact(uri: str) -> str:
    """The URI without its password (and without option values that are secrets)."""
    scheme, authority, database, query = split_uri(uri)
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{hosts}"
    if query:
        parts = []
        for key, value in parse_qsl(query, keep_blank_values=True):
            secret = any(word in key.lower() for word in _SECRET_OPTIONS)
            parts.append(f"{key}={'***' if secret else value}")
        query = "&".join(parts)
    out = f"{scheme}://{authority}/{database}"
    return f"{out}?{query}" if query else out


def write_concern_from(options: dict[str, str]) -> WriteConcern:
    """The URI's w / wtimeoutMS / journal; w defaults to "majority", wtimeoutMS to 10 s
    (unless the URI sets timeoutMS, which bounds the whole operation). w=0 is refused."""
    w_text = options.get("w", "majority")
    w: int | str = int(w_text) if w_text.isdigit() else w_text
    if w == 0:
        raise ValueError(
            "w=0 (unacknowledged writes) cannot tell stored events from lost ones or "
            "duplicates: use w=majority (the default) or w=1"
        )
    wtimeout: int | None = DEFAULT_WTIMEOUT_MS
    if "wtimeoutms" in options:
        wtimeout = int(options["wtimeoutms"])
    elif "timeoutms" in options:
        wtimeout = None
    journal = options["journal"].lower() == "true" if "journal" in options else None
    return WriteConcern(w=w, wtimeout=wtimeout, j=journal)


def client_options(options: dict[str, str]) -> dict[str, Any]:
    """The client's keyword options the URI does not set itself: a 5 s server selection
    timeout, the application name "clickstats"."""
    out: dict[str, Any] = {}
    if "serverselectiontimeoutms" not in options:
        out["serverSelectionTimeoutMS"] = DEFAULT_SERVER_SELECTION_TIMEOUT_MS
    if "appname" not in options:
        out["appname"] = "clickstats"
    return out


def reason(exc: BaseException) -> str:
    """PyMongo's message on one line, without the topology dump of selection timeouts and
    without the documents a bulk write error carries."""
    if isinstance(exc, BulkWriteError):
        details = exc.details
        errors = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        errors += details.get("writeConcernErrors", [])
        described = [f"{e.get('errmsg', 'error')} (code {e.get('code')})" for e in errors[:3]]
        return "; ".join(described) or "bulk write failed"
    return str(exc).split(", Topology Description:")[0].replace("\n", " ")


# -- mongomock: in-process stand-in for tests and demos ------------------------------------------

_mongomock_clients: dict[str, Any] = {}
_mongomock_lock = threading.Lock()


def mongomock_client(uri: str, **_options: Any) -> Any:
    """The process's mongomock client for this URI's host: every store on it sees one server.

    For tests and demos only: the data lives in this process's memory and dies with it.
    """
    try:
        import mongomock
    except ImportError as exc:  # a dev dependency
        raise StoreError(
            "mongomock:// stores need the mongomock package (pip install mongomock); "
            "they are for tests and demos only: use mongodb:// for real data"
        ) from exc
    from clickstats.store.mongo import mock

    mock.install()  # an indexed $lookup: mongomock's scans the foreign collection per document
    host = split_uri(uri)[1].rpartition("@")[2] or "localhost"
    with _mongomock_lock:
        client = _mongomock_clients.get(host)
        if client is None:
            client = _mongomock_clients[host] = mongomock.MongoClient(f"mongodb://{host}/")
        return client
