"""Every setting, defined once; read from CLICKSTATS_* environment variables or CLI flags."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from clickstats.keys import normalize_origins

DEFAULT_STORE = "duckdb://data/clickstats.duckdb"


def _split(value: Any) -> Any:
    # CLICKSTATS_INGEST_ORIGINS=https://a.example,https://b.example (or a JSON list)
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            import json

            return json.loads(value)
        return [v for v in value.split(",") if v.strip()]
    return value


def _no_limit(value: float | None) -> float | None:
    """0 means no limit (None); a negative limit is refused."""
    if value is None or value == 0:
        return None
    if value < 0:
        raise ValueError("must be > 0 seconds (or 0 for no limit)")
    return value


ReadTimeoutSeconds = Annotated[float | None, AfterValidator(_no_limit)]

Origins = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(normalize_origins)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLICKSTATS_", frozen=True)

    store: str = Field(
        DEFAULT_STORE,
        description="Where events live: duckdb:///abs/path.duckdb, duckdb://relative/path.duckdb, "
        "mongodb://host/database or mongodb+srv://... (docs/SCALING.md)",
    )
    experiments: str | None = Field(
        None,
        description="JSON file of experiment definitions, created with search_ranking if absent; "
        "unset: they live beside the store (docs/EXPERIMENTS.md)",
    )
    allow_reset: bool = Field(
        False, description="Allow DELETE /analytics/reset to delete every stored event"
    )
    require_keys: bool = Field(
        False, description="Demand an API key on every API request even before a key exists"
    )
    ingest_origins: Origins = Field(
        default_factory=list,
        description="Web origins whose pages may send events (CORS); empty: any origin",
    )
    read_origins: Origins = Field(
        default_factory=list,
        description="Web origins whose pages may read reports cross-origin; empty: none",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes"
    )
    max_event_age_days: int = Field(
        7,
        ge=0,
        description="Refuse events sent over HTTP that are older than this many days (late "
        "beacons are minutes old; days-old events are replays that would change reports "
        "already read); 0 takes any age. `clickstats import` loads events of any age",
    )
    rate_limit: float = Field(
        200,
        ge=0,
        description="Requests per second per client address (a key with its own rate: per "
        "key instead); 0 turns the limit off (docs/SECURITY.md)",
    )
    rate_burst: int = Field(
        400, ge=1, description="Requests one address may send at once before rate_limit applies"
    )
    header_timeout: float = Field(
        10, gt=0, description="Seconds a connection has to send a request's headers"
    )
    body_timeout: float = Field(
        30, gt=0, description="Seconds a request has to send its whole body (else 408)"
    )
    read_timeout_s: ReadTimeoutSeconds = Field(
        30.0,
        description="Seconds one read of the store (a report's query) may take before it is "
        "stopped and answered 504; None or 0: no limit",
    )
    attribution_window_hours: int = Field(
        24,
        ge=1,
        le=24 * 90,
        description="A conversion sent without a search_id counts for the user's latest search "
        "in which they clicked one of its products at most this many hours before it",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Delete events older than this many days, at start and then daily; "
        "None keeps them forever",
    )
    bots: Literal["drop", "keep"] = Field(
        "drop",
        description="Events sent by known crawlers (by User-Agent): drop them (counted in "
        "/health), or keep them like any other event",
    )
