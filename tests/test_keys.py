"""The key store and the server's key ring, on every backend's state."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from clickstats.keys import (
    KeyRing,
    Scope,
    UnknownKey,
    create_key,
    list_keys,
    normalize_origin,
    revoke_key,
)
from clickstats.state import FileState, StateStore, open_state
from tests.conftest import BACKENDS, store_url


@pytest.fixture(params=BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    with store_url(request.param, tmp_path) as url:
        yield open_state(url)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_shown_once_and_stored_only_as_its_hash(state: StateStore) -> None:
    key, plain = create_key(state, scope="ingest", name="shop", origins=["https://Shop.example/"])
    assert re.fullmatch(r"cs_ingest_[0-9a-f]{32}", plain)
    assert key.id == plain.removeprefix("cs_ingest_")[:8]
    stored = state.read("keys")
    assert stored is not None
    assert plain not in json.dumps(stored)
    (record,) = stored["keys"]
    assert record["sha256"] == hashlib.sha256(plain.encode()).hexdigest()
    assert record["origins"] == ["https://shop.example"]
    assert [k.id for k in list_keys(state)] == [key.id]
    assert key.prefix == f"cs_ingest_{key.id}…"


def test_origins_are_for_ingest_keys_and_must_be_origins(state: StateStore) -> None:
    with pytest.raises(ValueError, match="ingest keys only"):
        create_key(state, scope="read", name="r", origins=["https://a.example"])
    with pytest.raises(ValueError, match="not an origin"):
        create_key(state, scope="ingest", name="i", origins=["https://a.example/page"])
    with pytest.raises(ValueError, match="greater than 0"):
        create_key(state, scope="ingest", name="i", rate=0)
    assert list_keys(state) == []


def test_normalized_origins() -> None:
    assert normalize_origin("HTTPS://Shop.Example:443/") == "https://shop.example"
    assert normalize_origin("http://localhost:8000") == "http://localhost:8000"
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
    for bad in ["shop.example", "ftp://x.example", "null", "https://u@x.example"]:
        with pytest.raises(ValueError):
            normalize_origin(bad)


def test_revoke_by_id_or_prefix_and_again(state: StateStore) -> None:
    key, _ = create_key(state, scope="read", name="analyst")
    revoked = revoke_key(state, key.prefix)
    assert revoked.revoked_at is not None
    assert revoke_key(state, key.id).revoked_at == revoked.revoked_at
    with pytest.raises(UnknownKey, match="no key with id 'deadbeef'"):
        revoke_key(state, "deadbeef")


def test_the_ring_verifies_keys_and_scopes(state: StateStore) -> None:
    ring = KeyRing(state)
    ring.load()
    assert not ring.enabled
    key, plain = create_key(state, scope="read", name="analyst")
    ring.load()
    assert ring.enabled
    assert ring.verify(plain) == key
    assert ring.verify(plain[:-1] + ("0" if plain[-1] != "0" else "1")) is None
    assert ring.verify(plain.replace("cs_read_", "cs_admin_")) is None
    assert ring.verify("Bearer " + plain) is None
    assert Scope.ADMIN.allows(Scope.READ) and Scope.ADMIN.allows(Scope.INGEST)
    assert not Scope.READ.allows(Scope.INGEST) and not Scope.INGEST.allows(Scope.READ)


def test_the_ring_rereads_changes_at_most_once_a_second(state: StateStore) -> None:
    clock = Clock()
    ring = KeyRing(state, clock=clock)
    ring.load()
    _, plain = create_key(state, scope="admin", name="ops")
    assert not ring.claim_check()  # checked at load: not again within the second
    assert ring.verify(plain) is None
    clock.now += 1.0
    assert ring.claim_check() and not ring.claim_check()  # one caller per second looks
    assert ring.refresh() is True
    assert ring.verify(plain) is not None and ring.enabled
    clock.now += 1.0
    assert ring.claim_check() and ring.refresh() is False  # unchanged: nothing reread


def test_an_unreadable_document_keeps_the_last_keys(tmp_path: Path) -> None:
    state = FileState(tmp_path, "events")
    create_key(state, scope="admin", name="ops")
    ring = KeyRing(state)
    ring.load()
    state.path("keys").write_text("{not json")
    assert ring.refresh() is False
    assert ring.enabled  # failing open would let everyone in

    fresh = KeyRing(state)
    with pytest.raises(ValueError):
        fresh.refresh()  # never read: the error propagates (the request fails, not opens)


def test_require_keys_turns_auth_on_without_keys(state: StateStore) -> None:
    ring = KeyRing(state, require=True)
    ring.load()
    assert ring.enabled and ring.keys == []
