"""API keys: three scopes, stored only as SHA-256 hashes in the "keys" state document.

A key reads ``cs_<scope>_<32 hex>``: 128 random bits, shown once when it is created. The
first 8 hex digits are its public id (what `clickstats keys list` shows and `revoke` takes);
the store keeps the id, the SHA-256 of the whole key and its settings, never the key. A
hash of 128 random bits needs no slow password hash: nothing can be guessed from it.

`KeyRing` is what the server consults on each request: the keys in memory, reloaded when the
document's version changes (looked at no more than once a second), so `clickstats keys
create` and `revoke` take effect on a running server within about a second.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clickstats.events import utcnow
from clickstats.state import StateStore

DOCUMENT = "keys"
ID_LENGTH = 8
KEY_PATTERN = re.compile(r"cs_(ingest|read|admin)_([0-9a-f]{32})")
#: How often a running server looks whether the keys document changed, in seconds.
CHECK_EVERY_S = 1.0


class Scope(StrEnum):
    INGEST = "ingest"  # send events, ask for a variant, search: public, embedded in pages
    READ = "read"  # every report: secret
    ADMIN = "admin"  # everything, including changes: secret

    def allows(self, needed: Scope) -> bool:
        """admin may do everything; read and ingest only their own class of endpoint."""
        return self is Scope.ADMIN or self is needed


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or a trailing slash."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin like https://shop.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} is not an origin: give only scheme://host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def normalize_origins(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(normalize_origin(v) for v in values))


def _hash(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


class ApiKey(BaseModel):
    """A key as stored: everything but the key itself."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}$")]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    scope: Scope
    origins: list[str] = Field(
        default_factory=list, description="ingest keys: the only origins allowed to use it"
    )
    rate: Annotated[float | None, Field(gt=0, description="requests/s for this key")] = None
    created_at: datetime
    revoked_at: datetime | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return normalize_origins(values)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def prefix(self) -> str:
        """What a user recognizes the key by; not enough to use it."""
        return f"cs_{self.scope}_{self.id}…"

    def matches(self, plain: str) -> bool:
        return hmac.compare_digest(self.sha256, _hash(plain))


class UnknownKey(LookupError):
    pass


def _load(state: StateStore) -> list[ApiKey]:
    doc = state.read(DOCUMENT) or {}
    return [ApiKey.model_validate(item) for item in doc.get("keys", [])]


def _save(state: StateStore, keys: list[ApiKey]) -> None:
    state.write(DOCUMENT, {"keys": [key.model_dump(mode="json") for key in keys]})


def list_keys(state: StateStore) -> list[ApiKey]:
    """Every key ever created, revoked ones included, oldest first."""
    return _load(state)


def create_key(
    state: StateStore,
    *,
    scope: Scope | str,
    name: str,
    origins: Iterable[str] = (),
    rate: float | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; returns it with the plain key, which is never available again.

    Two commands creating keys at the same instant may lose one (the document is read and
    written whole); the loser is not shown a key that does not work, as its write wins.
    """
    scope = Scope(scope)
    origins = list(origins)
    if origins and scope is not Scope.INGEST:
        raise ValueError("origins apply to ingest keys only (read and admin keys are secret)")
    keys = _load(state)
    taken = {key.id for key in keys}
    while True:
        secret = secrets.token_hex(16)
        if secret[:ID_LENGTH] not in taken:
            break
    plain = f"cs_{scope}_{secret}"
    key = ApiKey(
        id=secret[:ID_LENGTH],
        name=name,
        scope=scope,
        origins=origins,
        rate=rate,
        created_at=utcnow(),
        sha256=_hash(plain),
    )
    _save(state, [*keys, key])
    return key, plain


def revoke_key(state: StateStore, key_id: str) -> ApiKey:
    """Revoke a key by id (or by its shown prefix); revoking it again changes nothing."""
    match = re.fullmatch(r"(?:cs_[a-z]+_)?([0-9a-f]{8})…?", key_id.strip().lower())
    wanted = match.group(1) if match else key_id
    keys = _load(state)
    for index, key in enumerate(keys):
        if key.id == wanted:
            if key.revoked:
                return key
            keys[index] = key.model_copy(update={"revoked_at": utcnow()})
            _save(state, keys)
            return keys[index]
    raise UnknownKey(f"no key with id {key_id!r}; `clickstats keys list` shows the ids")


def find_key(keys: Iterable[ApiKey], plain: str) -> ApiKey | None:
    """The stored key that `plain` is (revoked ones included), else None."""
    match = KEY_PATTERN.fullmatch(plain.strip())
    if match is None:
        return None
    scope, secret = match.groups()
    for (
        key
    ) in keys:  # the id is public: looking it up leaks nothing, the hash compare is constant-time
        if key.id == secret[:ID_LENGTH] and key.scope == scope and key.matches(plain.strip()):
            return key
    return None


class KeyRing:
    """The keys a server checks requests against, kept fresh from the state document."""

    def __init__(
        self,
        state: StateStore,
        *,
        require: bool = False,
        clock: Callable[[], float] = time.monotonic,
        check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        self.state = state
        self.require = require
        self._clock = clock
        self._check_every = check_every_s
        self._by_id: dict[str, ApiKey] = {}
        self._version: Any = object()  # never equal to a real version: the first check loads
        self._checked_at = float("-inf")
        self._loaded = False
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read the document now; errors propagate (a server must not start open by mistake)."""
        version = self.state.version(DOCUMENT)
        keys = _load(self.state)
        self._by_id = {key.id: key for key in keys}
        self._version = version
        self._checked_at = self._clock()
        self._loaded = True

    def claim_check(self) -> bool:
        """True when it is time to look whether the document changed, and then not again
        for a second: of many requests arriving together, one pays for the look."""
        now = self._clock()
        if self._loaded and now - self._checked_at < self._check_every:
            return False
        self._checked_at = now
        return True

    def refresh(self) -> bool:
        """Reload if the document changed; True if it did. A document that cannot be read
        keeps the keys last read (failing open would let everyone in) and is retried at the
        next check; until one read succeeded, the error propagates."""
        with self._lock:
            if not self._loaded:
                self.load()
                return True
            try:
                if self.state.version(DOCUMENT) == self._version:
                    return False
                self.load()
            except Exception:  # a torn read, a Mongo hiccup: keep the last good set
                return False
            return True

    @property
    def keys(self) -> list[ApiKey]:
        return list(self._by_id.values())

    @property
    def enabled(self) -> bool:
        """Auth is on once any key was created (revoking the last one must not open the API
        to everyone: it is what one does with a leaked key), or when the settings demand keys."""
        return self.require or bool(self._by_id)

    def verify(self, plain: str) -> ApiKey | None:
        """The key `plain` is, revoked or not; None when it is no key of ours."""
        match = KEY_PATTERN.fullmatch(plain.strip())
        if match is None:
            return None
        key = self._by_id.get(match.group(2)[:ID_LENGTH])  # the id is public: no timing leak
        return key if key is not None and find_key([key], plain) else None
