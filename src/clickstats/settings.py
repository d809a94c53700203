"""Every setting, defined once; read from CLICKSTATS_* environment variables or CLI flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = "duckdb://data/clickstats.duckdb"
DEFAULT_EXPERIMENTS = "data/experiments.json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLICKSTATS_", frozen=True)

    store: str = Field(
        DEFAULT_STORE,
        description="Where events live: duckdb:///abs/path.duckdb, duckdb://relative/path.duckdb, "
        "mongodb://host/database or mongodb+srv://... (docs/SCALING.md)",
    )
    experiments: str = Field(
        DEFAULT_EXPERIMENTS,
        description="JSON file of experiment definitions; created with search_ranking if absent",
    )
    allow_reset: bool = Field(
        False, description="Allow DELETE /analytics/reset to delete every stored event"
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes"
    )
