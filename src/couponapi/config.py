"""Settings: one typed object read from environment variables and validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service can be told. Each field is `COUPONAPI_<NAME>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="COUPONAPI_", frozen=True, extra="ignore", populate_by_name=True
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "COUPONAPI_DATABASE_URL"),
        description="PostgreSQL to use; when unset, `serve` starts the private one.",
    )
    data_dir: Path = Field(
        default=Path(".couponapi"),
        description="Where the private PostgreSQL keeps its data (kept across restarts).",
    )
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(default=1323, ge=1, le=65535, description="Port `serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes for `serve`.")
    pool_size: int = Field(
        default=10, ge=1, le=200, description="PostgreSQL connections per server process."
    )
    pool_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a request waits for a free connection."
    )
    enable_naive: bool = Field(
        default=True,
        description="Serve the unsafe read-then-write give route (a demonstration: it oversells).",
    )
    max_body_bytes: int = Field(
        default=16_384, ge=256, description="Largest request body accepted (larger: 413)."
    )
