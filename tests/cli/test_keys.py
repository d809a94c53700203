"""`clickstats keys` and the start-up rule of `clickstats serve`, through click's runner."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from clickstats.cli import main
from clickstats.keys import list_keys
from clickstats.state import open_state


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"duckdb://{tmp_path}/events.duckdb"


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), env={"CLICKSTATS_REQUIRE_KEYS": None})
    assert result.exit_code == code, result.output
    return result


def test_create_prints_the_key_once_and_list_never(store: str) -> None:
    created = run("keys", "create", "--scope", "ingest", "--name", "shop", "--store", store)
    plain = created.stdout.strip()
    assert re.fullmatch(r"cs_ingest_[0-9a-f]{32}", plain)  # alone on stdout, for scripts
    assert "not shown again" in created.stderr and "public" in created.stderr
    key_id = plain.removeprefix("cs_ingest_")[:8]

    listed = run("keys", "list", "--store", store).output
    assert key_id in listed and "shop" in listed and "ingest" in listed and "active" in listed
    assert plain not in listed and plain[10:] not in listed

    again = run("keys", "create", "--scope", "admin", "--name", "ops", "--store", store)
    assert again.stdout.strip() != plain
    assert {key.name for key in list_keys(open_state(store))} == {"shop", "ops"}


def test_create_with_origins_and_rate(store: str) -> None:
    run(
        "keys", "create", "--scope", "ingest", "--name", "shop", "--store", store,
        "--origin", "https://shop.example", "--origin", "https://m.shop.example/", "--rate", "50",
    )  # fmt: skip
    (key,) = list_keys(open_state(store))
    assert key.origins == ["https://shop.example", "https://m.shop.example"] and key.rate == 50
    listed = run("keys", "list", "--store", store).output
    assert "https://shop.example" in listed and "50" in listed


def test_create_refuses_bad_options(store: str) -> None:
    wrong = run(
        "keys", "create", "--scope", "read", "--name", "x", "--origin", "https://a.example",
        "--store", store, code=2,
    )  # fmt: skip
    assert "origins apply to ingest keys only" in wrong.output
    bad_origin = run(
        "keys", "create", "--scope", "ingest", "--name", "x", "--origin", "a.example",
        "--store", store, code=2,
    )  # fmt: skip
    assert "is not an origin" in bad_origin.output
    no_scope = run("keys", "create", "--name", "x", "--store", store, code=2)
    assert "--scope" in no_scope.output
    assert list_keys(open_state(store)) == []


def test_revoke_then_list_shows_it_revoked(store: str) -> None:
    plain = run("keys", "create", "--scope", "read", "--name", "bi", "--store", store).stdout
    key_id = plain.strip().removeprefix("cs_read_")[:8]
    revoked = run("keys", "revoke", key_id, "--store", store)
    assert f"revoked read key {key_id} (bi)" in revoked.stdout
    assert "No active key is left: every API request is refused" in revoked.stderr
    assert "revoked 20" in run("keys", "list", "--store", store).output
    missing = run("keys", "revoke", "deadbeef", "--store", store, code=1)
    assert "no key with id 'deadbeef'" in missing.output


def test_list_without_keys_says_the_api_is_open(store: str) -> None:
    assert "no API keys: the API is open" in run("keys", "list", "--store", store).output


@pytest.fixture
def uvicorn_run(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **options: Any) -> None:
        calls.append(options)

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(sys, "setswitchinterval", lambda interval: None)  # serve tunes it
    monkeypatch.setenv("CLICKSTATS_WORKERS", "1")  # one process: uvicorn.run serves it
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "stats.example"])
def test_serve_refuses_a_public_address_without_keys(
    store: str, host: str, uvicorn_run: list[dict[str, Any]]
) -> None:
    result = run("serve", "--host", host, "--port", "8123", "--store", store, code=1)
    assert "refusing to serve on" in result.output and ":8123 without API keys" in result.output
    assert "--insecure" in result.output and "clickstats keys create" in result.output
    assert uvicorn_run == []  # refused before anything listened


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serve_on_loopback_without_keys_starts_and_warns(
    store: str, host: str, uvicorn_run: list[dict[str, Any]]
) -> None:
    result = run("serve", "--host", host, "--port", "8124", "--store", store)
    assert "no API keys: anyone who can reach" in result.stderr
    assert "create keys with `clickstats keys create`" in result.stderr
    assert uvicorn_run[0]["host"] == host


def test_serve_on_a_public_address_with_keys_or_insecure(
    store: str, uvicorn_run: list[dict[str, Any]]
) -> None:
    insecure = run("serve", "--host", "0.0.0.0", "--insecure", "--store", store)
    assert "no API keys: anyone who can reach 0.0.0.0:8000" in insecure.stderr
    run("keys", "create", "--scope", "admin", "--name", "ops", "--store", store)
    keyed = run("serve", "--host", "0.0.0.0", "--store", store)
    assert "API keys required (1 active)" in keyed.stderr
    assert [call["host"] for call in uvicorn_run] == ["0.0.0.0", "0.0.0.0"]
