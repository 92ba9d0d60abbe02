"""Settings: one typed object read from environment variables and validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
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
    direct_database_url: str | None = Field(
        default=None,
        description="PostgreSQL itself when DATABASE_URL is a pooler (PgBouncer): where "
        "migrations, creating the database and the role's timeouts go; default DATABASE_URL.",
    )
    statement_cache_size: int = Field(
        default=100,
        ge=0,
        description="Prepared statements asyncpg keeps per connection; 0 behind PgBouncer "
        "in transaction mode older than 1.21 (Debian 12's is 1.18): each query is then "
        "parsed every time, one more round trip (docs/scaling.md).",
    )
    data_dir: Path = Field(
        default=Path(".couponapi"),
        description="Where the private PostgreSQL keeps its data (kept across restarts).",
    )
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(default=1323, ge=1, le=65535, description="Port `serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes for `serve`.")
    server: Literal["uvicorn", "granian"] = Field(
        default="granian", description="HTTP server `serve` runs (measured: docs/performance.md)."
    )
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
    enable_race: bool = Field(
        default=True,
        description="Let the dashboard's button run the race demo (one request starts "
        "thousands of claims from this server against itself; switch off when exposed).",
    )
    max_body_bytes: int = Field(
        default=16_384, ge=256, description="Largest request body accepted (larger: 413)."
    )
    # Reliability and operations: bounds, logs, metrics, abuse limits.
    lock_timeout_ms: int = Field(
        default=2_000,
        ge=0,
        description="PostgreSQL lock_timeout of the service's role in its database (0: none).",
    )
    statement_timeout_ms: int = Field(
        default=5_000,
        ge=0,
        description="PostgreSQL statement_timeout of the service's role in its database.",
    )
    log_level: str = Field(default="info", description="Log level of the JSON logs.")
    access_log: bool = Field(default=False, description="Log one JSON line per request.")
    metrics: bool = Field(default=True, description="Count requests and claims for /metrics.")
    rate_limit: float = Field(
        default=0, ge=0, description="Claims per second per client and process (0: off)."
    )
    rate_limit_burst: int = Field(default=20, ge=1, description="Claims a client may burst.")
    rate_limit_key: str = Field(
        default="client", pattern="^(client|user)$", description="Rate-limit by client or user."
    )
    trusted_proxies: str = Field(
        default="", description="Comma-separated proxy addresses whose X-Forwarded-For counts."
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed by CORS (empty: CORS closed)."
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the v2 admin routes; `serve` makes one when unset.",
    )
    protect_v1_create: bool = Field(
        default=False, description="Put v1's create route behind the admin token too."
    )
    # Identity (docs/identity.md): user tokens, server keys, who may do what.
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 secret of user tokens (32+ characters); `serve` makes one when "
        "neither it nor COUPONAPI_JWT_PUBLIC_KEY is set.",
    )
    jwt_public_key: Path | None = Field(
        default=None,
        description="PEM file of the key that verifies user tokens: RSA (RS256), P-256 (ES256) "
        "or Ed25519 (EdDSA); the key's type decides the one algorithm accepted.",
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of user tokens.")
    jwt_audience: str | None = Field(
        default=None, description="Required `aud` of user tokens (one of it, if a list)."
    )
    jwt_leeway_s: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat."
    )
    open_reads: bool = Field(
        default=True,
        description="Anyone may read coupons and their counts (false: a credential is needed).",
    )
    dashboard_public: bool = Field(
        default=False,
        description="Open the dashboard's data read-only to anyone (the race stays admin-only).",
    )
    v1_access: Literal["open", "admin", "off"] = Field(
        default="open",
        description="v1 (no identity): open as the original, behind the admin credential, or off.",
    )
    supervisor_state: Path | None = Field(
        default=None,
        description="Set by `serve` when it supervises its private PostgreSQL: the file where "
        "the supervisor notes restarts (for /metrics).",
    )
    # Webhooks (docs/api-v2.md#webhooks): where deliveries may go and how they are retried.
    webhook_hosts: str = Field(
        default="",
        description="Comma-separated hosts webhook URLs may name (exact names or addresses; "
        "empty: any host). Checked when an endpoint is registered and before every delivery.",
    )
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Seconds a webhook delivery may take in all."
    )
    webhook_retry_s: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        pattern=r"^[0-9]+(\.[0-9]+)?(,[0-9]+(\.[0-9]+)?)*$",
        description="Seconds before each retry of a failed delivery (comma-separated); an "
        "endpoint still failing after the last one (about a day) is disabled.",
    )
    # Checked against couponapi.strategies.CLAIM_STRATEGIES at start-up (cli, create_app):
    # the settings import nothing of ours.
    claim_strategy: str = Field(
        default="group_commit",  # the fastest safe one, measured: docs/performance.md
        description="The v2 claim strategy when a request names none (`?strategy=`).",
    )

    @model_validator(mode="after")
    def _one_token_key(self) -> Settings:
        """One way to verify user tokens, and an HS256 secret long enough to resist guessing."""
        if self.jwt_secret is not None and self.jwt_public_key is not None:
            raise ValueError("set COUPONAPI_JWT_SECRET or COUPONAPI_JWT_PUBLIC_KEY, not both")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("COUPONAPI_JWT_SECRET must be at least 32 characters")
        return self
