"""`clickstats serve` hands its flags to the app's settings (uvicorn itself is not started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clickstats.cli import main


def test_serve_passes_the_ingestion_window_and_bots_to_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:
        started["settings"], started["options"] = app.state.settings, options

    monkeypatch.setattr("uvicorn.run", run)
    store = f"duckdb://{tmp_path}/serve.duckdb"
    args = ["serve", "--store", store, "--port", "8999", "--max-event-age-days", "30"]
    args += ["--workers", "1"]  # one process: uvicorn.run serves the app
    done = CliRunner().invoke(main, [*args, "--bots", "keep"])
    assert done.exit_code == 0, done.output
    assert started["settings"].max_event_age_days == 30
    assert started["settings"].bots == "keep"
    assert started["options"]["port"] == 8999 and started["options"]["host"] == "127.0.0.1"
    assert (
        "no API keys: anyone who can reach 127.0.0.1:8999" in done.output
    )  # loopback without keys: starts, and says so

    refused = CliRunner().invoke(main, ["serve", "--store", store, "--max-event-age-days", "-1"])
    assert refused.exit_code == 2 and "--max-event-age-days" in refused.output


def test_serve_with_workers_hands_the_settings_and_options_to_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}

    def serve_workers(settings: Any, workers: int, **options: Any) -> None:
        started.update(settings=settings, workers=workers, options=options)

    monkeypatch.setattr("clickstats.serving.serve_workers", serve_workers)
    monkeypatch.setattr("uvicorn.run", lambda app, **options: started.update(one=options))
    monkeypatch.setattr("sys.setswitchinterval", lambda interval: None)
    store = f"duckdb://{tmp_path}/serve.duckdb"
    args = ["serve", "--store", store, "--port", "8999", "--workers", "3", "--rate-limit", "5"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert started["workers"] == 3 and started["settings"].rate_limit == 5
    assert started["options"]["port"] == 8999 and started["options"]["limit_concurrency"] == 2048
    assert "3 workers" in done.output

    mock = CliRunner().invoke(main, ["serve", "--store", "mongomock://x/db", "--workers", "2"])
    assert mock.exit_code == 0, mock.output
    assert "serving with 1 worker" in mock.output and "one" in started
